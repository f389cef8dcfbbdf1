"""The areas statistics are read for (the nation, provinces, wards), read once per process,
and who may read which, exactly or protected."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Final, Literal

import asyncpg

from api.auth import Principal
from api.i18n import N_, translate
from api.stats import counters as q
from schemas.stats import StatArea

NATION_CODE: Final = "VN"
NATION_NAME: Final = N_("Viet Nam")

# Areas and scope --------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """An area statistics are read for: the nation, a province or a ward."""

    id: int | None  # None for the nation
    code: str
    name: str
    level: Literal["nation", "province", "ward"]
    parent_id: int | None
    province_id: int | None

    def public(self, language: str) -> StatArea:
        name = translate(language, self.name) if self.level == "nation" else self.name
        return StatArea(code=self.code, name=name, level=self.level)

    @property
    def chain(self) -> list[int]:
        """Where targets are looked for, nearest first (NATION last)."""
        if self.level == "ward":
            assert self.id is not None
            assert self.province_id is not None
            return [self.id, self.province_id, q.NATION]
        if self.level == "province":
            assert self.id is not None
            return [self.id, q.NATION]
        return [q.NATION]


NATION: Final = Place(None, NATION_CODE, NATION_NAME, "nation", None, None)


class Places:
    """Provinces and wards come from migrations and never change while the app runs, so
    each process reads them once (3,355 rows) instead of once per card."""

    def __init__(self) -> None:
        self._by_code: dict[str, Place] = {}
        self._children: dict[int | None, list[Place]] = {}
        self._loading = asyncio.Lock()

    async def _load(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        if self._by_code:
            return
        # The first requests after a start arrive together: one reads, the others wait
        # (two loads into the same lists once listed every ward twice).
        async with self._loading:
            if self._by_code:
                return
            by_code: dict[str, Place] = {}
            children: dict[int | None, list[Place]] = {}
            for row in await q.areas(db):
                level: Literal["province", "ward"] = (
                    "province" if row.level == "province" else "ward"
                )
                place = Place(row.id, row.code, row.name, level, row.parent_id, row.province_id)
                by_code[place.code] = place
                children.setdefault(place.parent_id, []).append(place)
            self._children = children
            self._by_code = by_code  # last: a non-empty map means loaded

    async def find(self, db: asyncpg.Connection | asyncpg.Pool, code: str) -> Place | None:
        if code.upper() == NATION_CODE:
            return NATION
        await self._load(db)
        return self._by_code.get(code)

    async def children(
        self, db: asyncpg.Connection | asyncpg.Pool, parent_id: int | None
    ) -> list[Place]:
        """In Vietnamese order; the provinces for the nation (None)."""
        await self._load(db)
        return self._children.get(parent_id, [])


def may_read(principal: Principal, place: Place) -> bool:
    if principal.role == "admin":
        return True
    if principal.role == "province_official":
        return place.level != "nation" and place.province_id == principal.province_id
    if principal.role in ("ward_official", "team_member"):
        return place.id is not None and place.id == principal.area_id
    return False


def sees_exact(principal: Principal | None, area_id: int | None) -> bool:
    """Only the people who work with a ward's households see its small numbers."""
    return (
        principal is not None
        and principal.role in ("ward_official", "team_member")
        and area_id is not None
        and area_id == principal.area_id
    )
