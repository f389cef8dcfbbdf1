"""The one base Struct and the constrained types every schema reuses."""

from __future__ import annotations

import uuid
from typing import Annotated, Generic, TypeVar

import msgspec
from msgspec import Meta


class Schema(msgspec.Struct, kw_only=True, frozen=True, rename="camel"):
    """Base of every request and response body. Unknown fields are ignored (schema evolution).

    ``frozen`` and ``rename`` are inherited; ``kw_only`` is not, so subclasses list required
    fields before fields with defaults.
    """


# Text never carries U+0000: PostgreSQL rejects it in text and jsonb.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, Meta(pattern=NO_NUL, max_length=2000)]
ShortText = Annotated[str, Meta(min_length=1, max_length=120, pattern=NO_NUL)]
Label = Annotated[str, Meta(min_length=1, max_length=60, pattern=NO_NUL)]
AreaCode = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z._-]+$")]
# A Vietnamese mobile number: 0…, 84… or +84…, then 3/5/7/8/9 and 8 digits; separators allowed.
Phone = Annotated[
    str, Meta(max_length=20, pattern=r"^(?:\+84|84|0)[ .-]?[35789](?:[ .-]?[0-9]){8}$")
]
Password = Annotated[str, Meta(min_length=8, max_length=200, pattern=NO_NUL)]
Secret = Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)]  # as typed at login
Id = uuid.UUID

T = TypeVar("T")


class Page(Schema, Generic[T]):
    """A page of a keyset-paginated list; pass ``nextCursor`` back as ``cursor``."""

    items: list[T]
    next_cursor: str | None
