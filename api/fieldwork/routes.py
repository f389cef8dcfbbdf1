"""Field work endpoints: a ward's visit plan and its settings."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.security.jwt import Token

from api.auth import Principal, Role, requires_role
from api.errors import NotFound, invalid, problems
from api.fieldwork import settings as ward_settings
from api.fieldwork.visit_plan import PlanCursor, visit_plan
from api.i18n import N_, negotiate
from api.pagination import decode_cursor
from api.params import AreaCode, Cursor, Limit
from api.queries import audit
from api.routes.auth import client_addr
from api.stats.places import Place
from schemas.base import Page
from schemas.fieldwork import NewWardSettings, VisitPlanItem, WardSettings

# Residents are refused (403); any other account outside the ward gets 404.
STAFF: tuple[Role, ...] = ("admin", "province_official", "ward_official", "team_member")
Member = Annotated[
    uuid.UUID | None,
    Parameter(
        description=(
            "The team member (user id) the plan is for; default: the caller when a team "
            "member. The households of their hamlets come first: accounts and teams carry no "
            "hamlet, so these are the hamlets of the households the member registered or "
            "whose current survey they collected."
        )
    ),
]


class WardNotFound(NotFound):
    code = "area_not_found"
    default_detail = N_("No ward with this code in your area.")


async def _ward(state: State, conn: asyncpg.Connection, code: str) -> Place:
    place: Place | None = await state.places.find(conn, code)
    if place is None or place.level != "ward" or place.id is None:
        raise WardNotFound()
    return place


def _works_in(principal: Principal, place: Place) -> bool:
    """The ward's team members and officials: they already read its households and their
    current answers, and see its figures exactly."""
    return principal.role in ("team_member", "ward_official") and principal.area_id == place.id


async def _settings(conn: asyncpg.Connection, place: Place) -> WardSettings:
    assert place.id is not None
    months = await ward_settings.stale_after_months(conn, place.id)
    return WardSettings(ward_code=place.code, stale_after_months=months)


class FieldworkRoutes(Controller):
    path = "/areas"
    tags = ["fieldwork"]
    guards = [requires_role(*STAFF)]

    @get("/{wardCode:str}/visit-plan", responses=problems(400, 401, 403, 404))
    async def get_visit_plan(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        wardCode: FromPath[AreaCode],
        member: FromQuery[Member] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[VisitPlanItem]:
        """The ward's households in the order a visit would move the ward most towards its
        lagging targets (its indicators below target, by gap on its exact card), for the
        ward's team members and officials (residents: 403; anyone else: 404).

        1. `never_surveyed`: registered, never surveyed (the longest registered first);
        2. `stale`: last surveyed longer ago than the ward's `staleAfterMonths` (default 6;
           `PUT /areas/{wardCode}/settings`), the longest ago first;
        3. `help_wanted`: members asked for help (`help_wanted`: vneid → ADULT_EID,
           signature → ADULT_DIGSIG, cloud → ADULT_CLOUD, epay → ADULT_EPAY,
           eps → ADULT_EPS, scams → DIGSKILL) with a lagging indicator they are not yet
           counted in: the furthest-behind indicator first, then the most members;
        4. `misses_indicator`: the current answers are not counted in a lagging
           indicator's numerator (the household, or members of the indicator's age), ordered
           like 3.

        Households surveyed within the cut-off that neither ask for help with nor miss a
        lagging indicator are left out (a visit would not move a lagging target). With a
        `member`, the households of their hamlets come first (`ownHamlet`), each part in
        the order above. Each row says why it is there (`reason`, `reasonText` in the
        caller's language); counts and reasons only, never the members' answers. A team
        member's `GET /sync/pull` carries the first page of their own plan.
        """
        caller = request.user
        place = await _ward(state, conn, wardCode)
        if not _works_in(caller, place):
            raise WardNotFound()
        assert place.id is not None
        assert place.province_id is not None
        chosen = member
        if chosen is None and caller.role == "team_member":
            chosen = caller.user_id
        elif chosen is not None and not await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM app_user
                              WHERE id = $1 AND role = 'team_member' AND area_id = $2)""",
            chosen,
            place.id,
        ):
            raise invalid(
                "member", "unknown_member", N_("No team member of this ward has this id.")
            )
        return await visit_plan(
            conn,
            await state.indicators.get(conn),
            ward_id=place.id,
            province_id=place.province_id,
            member=chosen,
            language=negotiate(request.headers.get("accept-language")),
            after=decode_cursor(cursor, PlanCursor),
            limit=limit,
        )

    @get("/{wardCode:str}/settings", responses=problems(401, 403, 404))
    async def get_ward_settings(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        wardCode: FromPath[AreaCode],
    ) -> WardSettings:
        """The ward's field-work settings (defaults when never set), for its team members and
        officials and admins."""
        place = await _ward(state, conn, wardCode)
        if not (_works_in(request.user, place) or request.user.role == "admin"):
            raise WardNotFound()
        return await _settings(conn, place)

    @put(
        "/{wardCode:str}/settings",
        guards=[requires_role("ward_official", "admin")],
        responses=problems(400, 401, 403, 404),
    )
    async def set_ward_settings(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        wardCode: FromPath[AreaCode],
        data: JSONBody[NewWardSettings],
    ) -> WardSettings:
        """Set the ward's field-work settings (its officials; admins); audited.

        `staleAfterMonths` (1–60): a household whose last survey is older is `stale` in the
        visit plan."""
        caller = request.user
        place = await _ward(state, conn, wardCode)
        if not (caller.role == "admin" or _works_in(caller, place)):
            raise WardNotFound()
        assert place.id is not None
        assert place.province_id is not None
        async with conn.transaction():
            previous = await ward_settings.set_stale_after_months(
                conn,
                ward_id=place.id,
                province_id=place.province_id,
                months=data.stale_after_months,
                user_id=caller.user_id,
            )
            await audit.record(
                conn,
                "ward_settings.set",
                "area",
                place.code,
                actor_id=caller.user_id,
                province_id=place.province_id,
                client_addr=client_addr(request),
                detail={"staleAfterMonths": data.stale_after_months, "previous": previous},
            )
        return await _settings(conn, place)
