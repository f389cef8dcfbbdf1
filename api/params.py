"""Constrained query and path parameters.

Litestar ignores msgspec ``Meta`` constraints on ``FromQuery``/``FromPath`` parameters, so
parameters carry their limits in ``Parameter`` (which it both enforces and documents).
"""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter, Parameter

from schemas.base import NO_NUL

Limit = Annotated[int, Parameter(ge=1, le=200, description="Page size (1–200).")]
Cursor = Annotated[
    str | None,
    Parameter(
        max_length=500,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="The `nextCursor` of the previous page, as the server wrote it; any "
        "other value is refused with 400 `invalid_cursor` (start again without one).",
    ),
]
AreaCode = Annotated[str, Parameter(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z._-]+$")]
OptionalAreaCode = Annotated[
    str | None, Parameter(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z._-]+$")
]
Search = Annotated[
    str | None,
    Parameter(max_length=100, pattern=NO_NUL, description="Ignores case and accents."),
]
IfNoneMatch = Annotated[str | None, HeaderParameter(name="If-None-Match", max_length=2000)]
