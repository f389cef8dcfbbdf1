"""Field work endpoints: a ward's visit plan and its settings."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from litestar import Controller, Request, get, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.security.jwt import Token

from api.auth import Principal, Role, requires_role
from api.errors import FieldError, NotFound, ValidationFailed, invalid, problems
from api.events import outbox
from api.fieldwork import assignments as work
from api.fieldwork import review
from api.fieldwork import settings as ward_settings
from api.fieldwork.assignments import VIETNAM
from api.fieldwork.visit_plan import PlanCursor, visit_plan
from api.i18n import N_, negotiate
from api.pagination import decode_cursor
from api.params import AreaCode, Cursor, Limit
from api.queries import audit
from api.queries.accounts import TeamRecord, get_team
from api.routes.auth import client_addr
from api.stats.places import Place
from schemas.base import Page
from schemas.fieldwork import (
    Assignments,
    NewAssignments,
    NewReview,
    NewWardSettings,
    Review,
    TeamProgress,
    VisitPlanItem,
    WardSettings,
)

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


class TeamNotFound(NotFound):
    code = "team_not_found"
    default_detail = N_("No team with this id in your area.")


class SubmissionNotFound(NotFound):
    code = "submission_not_found"
    default_detail = N_("No submission with this id in your area.")


Period = Annotated[
    str | None,
    Parameter(
        pattern=r"^\d{4}-(0[1-9]|1[0-2])$",
        description="A month, YYYY-MM (default: the current month, Vietnam time).",
    ),
]


async def _team(
    conn: asyncpg.Connection, caller: Principal, team_id: uuid.UUID, *, members_too: bool
) -> TeamRecord:
    """The team, if the caller is one of its ward's officials (or, when ``members_too``,
    one of its members); otherwise 404."""
    team = await get_team(conn, team_id)
    if team is None:
        raise TeamNotFound()
    official = caller.role == "ward_official" and caller.area_id == team.ward_id
    member = members_too and caller.role == "team_member" and caller.team_id == team.id
    if not (official or member):
        raise TeamNotFound()
    return team


class TeamWorkRoutes(Controller):
    """Who visits whom in a ward's team, and how the work goes. The team id is the
    ``team`` entity's (``POST /teams``); its members are the team members whose
    ``teamId`` it is."""

    path = "/teams"
    tags = ["fieldwork"]

    @get(
        "/{team_id:uuid}/assignments",
        guards=[requires_role("ward_official", "team_member")],
        responses=problems(401, 403, 404),
    )
    async def get_assignments(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        team_id: FromPath[uuid.UUID],
    ) -> Assignments:
        """The team's assignments (the ward's officials and the team's members)."""
        await _team(conn, request.user, team_id, members_too=True)
        return Assignments(team_id=team_id, assignments=await work.assignments(conn, team_id))

    @put(
        "/{team_id:uuid}/assignments",
        guards=[requires_role("ward_official")],
        responses=problems(400, 401, 403, 404),
    )
    async def set_assignments(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        team_id: FromPath[uuid.UUID],
        data: JSONBody[NewAssignments],
    ) -> Assignments:
        """Replace the team's assignments (the ward's officials; audited): each gives a
        team member a hamlet of the ward (every household in it, also those registered
        later) or a single household; within a team a hamlet or a household has one member.

        A member's first `GET /sync/pull` then sends their assigned households before the
        rest of the ward, and its last page lists their `assignments`. The whole ward stays
        readable to every member of the ward's teams (pull, `GET /households`): an
        assignment orders the work, it does not hide households."""
        caller = request.user
        team = await _team(conn, caller, team_id, members_too=False)
        members = await work.team_members(conn, team_id)
        errors: list[FieldError] = []
        hamlets: set[uuid.UUID] = set()
        households: set[uuid.UUID] = set()
        for index, given in enumerate(data.assignments):
            field = f"assignments[{index}]"
            if given.member_id not in members:
                errors.append(FieldError(f"{field}.memberId", "invalid", NOT_A_MEMBER))
            if (given.hamlet_id is None) == (given.household_id is None):
                errors.append(FieldError(field, "invalid", ONE_TARGET))
            elif given.hamlet_id is not None:
                if given.hamlet_id in hamlets:
                    errors.append(FieldError(f"{field}.hamletId", "duplicate", GIVEN_TWICE))
                hamlets.add(given.hamlet_id)
            elif given.household_id is not None:
                if given.household_id in households:
                    errors.append(FieldError(f"{field}.householdId", "duplicate", GIVEN_TWICE))
                households.add(given.household_id)
        bad_hamlets, bad_households = await work.outside_ward(
            conn, team.ward_id, list(hamlets), list(households)
        )
        for index, given in enumerate(data.assignments):
            if given.hamlet_id in bad_hamlets:
                errors.append(
                    FieldError(f"assignments[{index}].hamletId", "not_found", NOT_IN_WARD)
                )
            if given.household_id in bad_households:
                errors.append(
                    FieldError(f"assignments[{index}].householdId", "not_found", NOT_IN_WARD)
                )
        if errors:
            raise ValidationFailed(errors)
        async with conn.transaction():
            await work.replace_assignments(
                conn, team_id, team.ward_id, data.assignments, caller.user_id
            )
            await audit.record(
                conn,
                "team_assignments.set",
                "team",
                team_id,
                actor_id=caller.user_id,
                province_id=team.province_id,
                client_addr=client_addr(request),
                detail={"hamlets": len(hamlets), "households": len(households)},
            )
        return Assignments(team_id=team_id, assignments=await work.assignments(conn, team_id))

    @get(
        "/{team_id:uuid}/progress",
        guards=[requires_role("ward_official")],
        responses=problems(400, 401, 403, 404),
    )
    async def get_team_progress(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        team_id: FromPath[uuid.UUID],
        period: FromQuery[Period] = None,
    ) -> TeamProgress:
        """Per team member: households visited this week and in the month (distinct
        households with a submission they collected; the week is the current one, or the
        period's last), their current submissions waiting for review, and their assigned
        households never visited; and the ward's never-visited households nobody is given.
        For the ward's officials."""
        team = await _team(conn, request.user, team_id, members_too=False)
        today = datetime.now(VIETNAM).date()
        if period is not None and period > f"{today.year:04d}-{today.month:02d}":
            raise invalid("period", "future_period", N_("This period has not started yet."))
        return await work.team_progress(conn, team_id, team.ward_id, period, today)


class ReviewRoutes(Controller):
    path = "/submissions"
    tags = ["fieldwork"]

    @put(
        "/{submission_id:uuid}/review",
        guards=[requires_role("ward_official")],
        responses=problems(400, 401, 403, 404),
    )
    async def review_submission(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        submission_id: FromPath[uuid.UUID],
        data: JSONBody[NewReview],
    ) -> Review:
        """Mark a submission of the ward `approved` or `needs_fix` (a comment says what to
        fix; required for `needs_fix`). Audited. `needs_fix` reaches whoever collected it in
        their next pull (`fixRequests`) until their corrected edit supersedes it; the edit
        is pending review again. A later decision replaces the earlier one."""
        caller = request.user
        submission = await review.reviewable(conn, submission_id)
        if submission is None or submission.ward_id != caller.area_id:
            raise SubmissionNotFound()
        if data.status == "needs_fix" and data.comment is None:
            raise invalid("comment", "required", N_("Say what needs fixing."))
        async with conn.transaction():
            decided = await review.record_review(
                conn, submission, data.status, data.comment, caller.user_id
            )
            await audit.record(
                conn,
                "submission_reviewed",
                "submission",
                submission_id,
                actor_id=caller.user_id,
                province_id=caller.province_id,
                client_addr=client_addr(request),
                detail={"status": data.status},
            )
            await outbox.review_decided(
                conn,
                submission.id,
                submission.household_id,
                submission.ward_id,
                caller.province_id,
                data.status,
            )
        return decided


NOT_A_MEMBER = N_("This account is not a member of the team.")
ONE_TARGET = N_("Give either a hamlet or a household.")
GIVEN_TWICE = N_("This is given to another member already.")
NOT_IN_WARD = N_("Not found in the team's ward.")
