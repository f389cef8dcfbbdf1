"""Areas: browse and search the 2025 provinces and wards."""

from __future__ import annotations

from typing import NamedTuple

import asyncpg
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from api.errors import NotFound, problems
from api.i18n import N_
from api.pagination import decode_cursor, encode_cursor
from api.params import AreaCode, Cursor, Limit, OptionalAreaCode, Search
from api.queries import areas as area_queries
from api.textkeys import search_key
from schemas.areas import Area
from schemas.base import Page


class AreaNotFound(NotFound):
    code = "area_not_found"
    default_detail = N_("No area has this code.")


class AreaCursor(NamedTuple):
    sort_key: str
    code: str


class AreaRoutes(Controller):
    path = "/areas"
    tags = ["areas"]

    @get("/", responses=problems(400, 401, 404))
    async def list_areas(
        self,
        conn: NamedDependency[asyncpg.Connection],
        parent: FromQuery[OptionalAreaCode] = None,
        q: FromQuery[Search] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[Area]:
        """Provinces, or the children of ``parent``; ``q`` searches ignoring case and accents.

        Results are in Vietnamese alphabetical order. Without ``parent``, a search covers
        every province and ward.
        """
        parent_id = None
        if parent is not None:
            parent_area = await area_queries.get_area(conn, parent)
            if parent_area is None:
                raise AreaNotFound()
            parent_id = parent_area.id
        key = search_key(q) if q else None
        rows = await area_queries.list_areas(
            conn,
            parent_id=parent_id,
            query_key=key or None,
            after=decode_cursor(cursor, AreaCursor),
            limit=limit + 1,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[row.public() for row in rows],
            next_cursor=encode_cursor((rows[-1].sort_key, rows[-1].code)) if more else None,
        )

    @get("/{code:str}", responses=problems(401, 404))
    async def get_area(
        self, conn: NamedDependency[asyncpg.Connection], code: FromPath[AreaCode]
    ) -> Area:
        area = await area_queries.get_area(conn, code)
        if area is None:
            raise AreaNotFound()
        return area.public()
