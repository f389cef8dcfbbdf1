"""Opaque keyset cursors: the sort key of the last row of a page, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from api.errors import invalid
from api.i18n import N_
from schemas.base import Page

T = TypeVar("T")
Item = TypeVar("Item", covariant=True)


def encode_cursor(values: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, shape: type[T]) -> T | None:
    """Decode a cursor into ``shape`` (a tuple type); a bad cursor is a 400 on ``cursor``.

    Its code, ``invalid_cursor``, names a rule rather than a form error: the document says
    a cursor's alphabet and length, but which strings the server wrote it cannot say."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=shape)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise bad_cursor() from None


def bad_cursor() -> Exception:
    """The 400 of a cursor the server did not write (also for a part that decodes but
    cannot be what the server wrote there)."""
    return invalid(
        "cursor", "invalid_cursor", N_("This cursor is not valid; start again without it.")
    )


class Listed(Protocol[Item]):
    def public(self) -> Item: ...


def page_of(
    rows: Sequence[Listed[Item]], limit: int, cursor_of: Callable[[Any], tuple[Any, ...]]
) -> Page[Item]:
    """A page from ``limit + 1`` fetched rows: the extra row only says there is more."""
    shown = rows[:limit]
    more = len(rows) > limit
    return Page(
        items=[row.public() for row in shown],
        next_cursor=encode_cursor(cursor_of(shown[-1])) if more else None,
    )
