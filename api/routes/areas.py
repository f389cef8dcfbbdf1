"""Areas: browse and search the 2025 provinces and wards."""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.security.jwt import Token

from api.auth import Principal, requires_role
from api.errors import Conflict, NotFound, problems
from api.i18n import N_
from api.pagination import decode_cursor, page_of
from api.params import AreaCode, Cursor, Limit, OptionalAreaCode, Search
from api.queries import areas as area_queries
from api.queries import audit
from api.scope import covers
from api.textkeys import clean_text, search_key, sort_key
from schemas.areas import Area
from schemas.base import Page
from schemas.households import NewHamlet


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
        key = search_key(q) if q else None
        if parent is not None:
            parent_area = await area_queries.get_area(conn, parent)
            if parent_area is None:
                raise AreaNotFound()
            if parent_area.level == "ward":  # below a ward: its hamlets
                hamlets = await area_queries.list_hamlets(
                    conn,
                    ward_id=parent_area.id,
                    query_key=key or None,
                    after=decode_cursor(cursor, AreaCursor),
                    limit=limit + 1,
                )
                return page_of(hamlets, limit, lambda row: (row.sort_key, str(row.id)))
            parent_id = parent_area.id
        rows = await area_queries.list_areas(
            conn,
            parent_id=parent_id,
            query_key=key or None,
            after=decode_cursor(cursor, AreaCursor),
            limit=limit + 1,
        )
        return page_of(rows, limit, lambda row: (row.sort_key, row.code))

    @get("/{code:str}", responses=problems(401, 404))
    async def get_area(
        self, conn: NamedDependency[asyncpg.Connection], code: FromPath[AreaCode]
    ) -> Area:
        area = await area_queries.get_area(conn, code)
        if area is not None:
            return area.public()
        try:
            hamlet = await area_queries.get_hamlet(conn, uuid.UUID(code))
        except ValueError:
            hamlet = None
        if hamlet is None:
            raise AreaNotFound()
        return hamlet.public()

    @post(
        "/{ward_code:str}/hamlets",
        guards=[requires_role("ward_official", "admin")],
        responses={
            200: ResponseSpec(Area, description="Already added (a retry)", generate_examples=False),
            **problems(401, 403, 404, 409),
        },
    )
    async def create_hamlet(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        ward_code: FromPath[AreaCode],
        data: JSONBody[NewHamlet],
    ) -> Response[Area]:
        """Add a hamlet / residential group (thôn, ấp, tổ dân phố) to the caller's ward (201);
        sending the same ``id`` and name again returns it (200)."""
        caller = request.user
        ward = await area_queries.get_area(conn, ward_code)
        if ward is None or ward.level != "ward" or not covers(caller, ward):
            raise AreaNotFound()
        name = clean_text(data.name, "name")
        hamlet_id = data.id or uuid.uuid4()
        async with conn.transaction():
            created = await area_queries.insert_hamlet(
                conn,
                hamlet_id=hamlet_id,
                ward_id=ward.id,
                province_id=ward.province_id,
                name=name,
                search_key=search_key(name),
                sort_key=sort_key(name),
            )
            if created:
                await audit.record(
                    conn,
                    "hamlet_created",
                    "hamlet",
                    hamlet_id,
                    actor_id=caller.user_id,
                    province_id=ward.province_id,
                    detail={"ward": ward.code},
                )
        hamlet = await area_queries.get_hamlet(conn, hamlet_id)
        if hamlet is None or hamlet.ward_id != ward.id or hamlet.name != name:
            raise Conflict(N_("This ward already has a hamlet with this name, or the id is taken."))
        return Response(hamlet.public(), status_code=201 if created else 200)
