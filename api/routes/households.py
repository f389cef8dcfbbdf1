"""Households: registered by the ward's team (client ids allowed), read within the ward."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.security.jwt import Token

from api.auth import Principal, Role, requires_role
from api.errors import Conflict, NotFound, invalid, problems
from api.i18n import N_
from api.pagination import decode_cursor, page_of
from api.params import Cursor, Limit, OptionalAreaCode
from api.queries import audit
from api.queries import households as q
from api.queries.areas import get_area, hamlet_ward
from api.stats.counters import recounting
from api.textkeys import household_label
from schemas.base import Page
from schemas.households import Household, HouseholdState, NewHousehold

WARD_WORKERS: tuple[Role, ...] = ("team_member", "ward_official")


class HouseholdNotFound(NotFound):
    code = "household_not_found"
    default_detail = N_("No household with this id in your area.")


class HouseholdCursor(NamedTuple):
    created_at: datetime
    id: uuid.UUID


def household_visible(principal: Principal, household: q.HouseholdRecord) -> bool:
    """Household data is for the ward that collects it and the household itself."""
    if principal.role == "resident":
        return household.id == principal.household_id
    if principal.role in WARD_WORKERS:
        return household.ward_id == principal.area_id
    return principal.role == "admin"


async def ward_of_caller(
    conn: asyncpg.Connection, principal: Principal, ward_code: str | None
) -> int:
    """The ward a team member or ward official works in (another ward: 404)."""
    if ward_code is None:
        assert principal.area_id is not None
        return principal.area_id
    ward = await get_area(conn, ward_code)
    if ward is None or ward.id != principal.area_id:
        raise NotFound(N_("No ward with this code in your area."), code="area_not_found")
    return ward.id


class HouseholdRoutes(Controller):
    path = "/households"
    tags = ["households"]

    @post(
        "/",
        guards=[requires_role(*WARD_WORKERS)],
        responses={
            200: ResponseSpec(
                Household, description="Already registered (a retry)", generate_examples=False
            ),
            **problems(401, 403, 404, 409),
        },
    )
    async def create_household(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewHousehold],
    ) -> Response[Household]:
        """Register a household in the caller's ward (201). Idempotent by ``id``: sending the
        same household again returns it unchanged (200)."""
        caller = request.user
        label = None if data.label is None else household_label(data.label)
        ward_id = await ward_of_caller(conn, caller, data.ward_code)
        if data.hamlet_id is not None and await hamlet_ward(conn, data.hamlet_id) != ward_id:
            raise invalid("hamletId", "invalid", N_("The hamlet must belong to the same ward."))
        household_id = data.id or uuid.uuid4()
        province_id = caller.province_id  # the caller's own ward (checked above)
        assert province_id is not None
        catalog = await state.indicators.get(conn)
        async with conn.transaction(), recounting(conn, catalog, [household_id]):
            created = await q.insert_household(
                conn,
                household_id=household_id,
                ward_id=ward_id,
                province_id=province_id,
                hamlet_id=data.hamlet_id,
                label=label,
                created_by=caller.user_id,
            )
            if created:
                await audit.record(
                    conn,
                    "household_created",
                    "household",
                    household_id,
                    actor_id=caller.user_id,
                    province_id=province_id,
                )
        household = await q.get_household(conn, household_id)
        if household is None:
            raise Conflict(
                N_("This household id was deleted and cannot be reused."), code="household_deleted"
            )
        if not created and (
            household.ward_id != ward_id
            or household.hamlet_id != data.hamlet_id
            or household.label != label
        ):
            raise Conflict(N_("A different household already has this id."))
        return Response(household.public(), status_code=201 if created else 200)

    @get("/", guards=[requires_role(*WARD_WORKERS)], responses=problems(401, 403, 404))
    async def list_households(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        ward: FromQuery[OptionalAreaCode] = None,
        hamlet: FromQuery[uuid.UUID | None] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[Household]:
        """Households of the caller's ward (optionally one hamlet), oldest first."""
        ward_id = await ward_of_caller(conn, request.user, ward)
        rows = await q.list_households(
            conn,
            ward_id=ward_id,
            hamlet_id=hamlet,
            after=decode_cursor(cursor, HouseholdCursor),
            limit=limit + 1,
        )
        return page_of(rows, limit, lambda row: (row.created_at, row.id))

    @get("/{household_id:uuid}", responses=problems(401, 404))
    async def get_household(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        household_id: FromPath[uuid.UUID],
    ) -> HouseholdState:
        """A household with its current answers."""
        household = await q.get_household(conn, household_id)
        if household is None or not household_visible(request.user, household):
            raise HouseholdNotFound()
        (state,) = await q.household_states(conn, [household_id])
        return state
