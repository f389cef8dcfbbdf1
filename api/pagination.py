"""Opaque keyset cursors: the sort key of the last row of a page, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

import msgspec

from api.errors import invalid
from api.i18n import N_

T = TypeVar("T")


def encode_cursor(values: tuple[Any, ...]) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, shape: type[T]) -> T | None:
    """Decode a cursor into ``shape`` (a tuple type); a bad cursor is a 400 on ``cursor``."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=shape)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise invalid(
            "cursor", "format", N_("This cursor is not valid; start again without it.")
        ) from None
