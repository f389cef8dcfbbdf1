"""Administrative areas: provinces, wards and the hamlets below them."""

from __future__ import annotations

from typing import Literal

from schemas.base import Schema

AreaLevel = Literal["province", "ward", "hamlet"]
DivisionType = Literal["municipality", "province", "ward", "commune", "special_zone", "hamlet"]


class Area(Schema):
    code: str
    name: str
    division_type: DivisionType
    level: AreaLevel
    parent_code: str | None
