"""Accounts: officials manage users and teams inside their own area.

An official only sees users and teams of their area (others answer 404) and only assigns
roles below their own; admins manage everything.

Whoever creates an account never knows its password: the account waits for its holder, who
sets the password with a one-time activation code (``POST /auth/activate``). Otherwise an
official could sign in as a ward official or team member they created and read the ward's
exact figures and raw answers in their name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.security.jwt import Token
from msgspec import UNSET

from api.auth import OFFICIALS, RANK, Principal, requires_role
from api.errors import (
    PASSWORD_NOT_ALLOWED,
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    invalid,
    problems,
)
from api.i18n import N_
from api.pagination import decode_cursor, page_of
from api.params import Cursor, Limit, OptionalAreaCode
from api.phone import require_phone
from api.queries import accounts, audit
from api.queries.areas import AreaRecord, get_area
from api.routes.areas import AreaNotFound
from api.routes.auth import client_addr
from api.scope import covers
from api.sessions import activation_digest, new_activation_code
from api.textkeys import clean_text, optional_text
from schemas.accounts import NewTeam, NewUser, PendingUser, Role, Team, User, UserChange
from schemas.base import Page


class UserCursor(NamedTuple):
    """Users and teams are listed newest first."""

    created_at: datetime
    id: uuid.UUID


class UserNotFound(NotFound):
    code = "user_not_found"
    default_detail = N_("No user with this id in your area.")


class TeamNotFound(NotFound):
    code = "team_not_found"
    default_detail = N_("No team with this id in your area.")


class PhoneTaken(Conflict):
    code = "phone_taken"
    default_detail = N_("This phone number already has an account.")


class RoleTooHigh(Forbidden):
    code = "role_not_allowed"
    default_detail = N_("You can only manage accounts with a role below your own.")


class OwnAccount(Forbidden):
    code = "own_account"
    default_detail = N_("You cannot change your own role, area, team or status.")


class UserDisabled(Conflict):
    code = "user_disabled"
    default_detail = N_("This account is disabled: enable it before issuing an activation code.")


def password_not_allowed() -> ValidationFailed:
    return invalid("password", "password_not_allowed", PASSWORD_NOT_ALLOWED)


# Which level of area each role is placed in.
_ROLE_LEVEL = {"province_official": "province", "ward_official": "ward", "team_member": "ward"}
_LEVEL_NAMES = {"province": N_("a province"), "ward": N_("a ward or commune")}


def user_visible(caller: Principal, user: accounts.UserRecord) -> bool:
    if caller.role == "admin" or user.id == caller.user_id:
        return True
    if caller.role == "province_official":
        return user.province_id == caller.province_id
    return caller.role == "ward_official" and user.area_id == caller.area_id


def team_visible(caller: Principal, team: accounts.TeamRecord) -> bool:
    if caller.role == "admin":
        return True
    if caller.role == "province_official":
        return team.province_id == caller.province_id
    return team.ward_id == caller.area_id


async def area_in_scope(conn: asyncpg.Connection, caller: Principal, code: str) -> AreaRecord:
    area = await get_area(conn, code)
    if area is None or not covers(caller, area):
        raise AreaNotFound()
    return area


async def place(
    conn: asyncpg.Connection,
    caller: Principal,
    role: Role,
    area_code: str | None,
    team_id: uuid.UUID | None,
) -> tuple[int | None, int | None, uuid.UUID | None]:
    """Check that ``caller`` may give this role, area and team; return (area, province, team)."""
    if caller.role != "admin" and RANK[role] >= RANK[caller.role]:
        raise RoleTooHigh()
    if role == "resident":  # a resident's own account, moved (none is given the role here)
        raise invalid(
            "role", "resident_by_invite", N_("Residents join with an invite from their team.")
        )
    if role == "admin":
        if area_code is not None:
            raise invalid("areaCode", "not_allowed", N_("Admins are not tied to an area."))
        if team_id is not None:
            raise invalid("teamId", "not_allowed", N_("Only team members belong to a team."))
        return None, None, None
    if area_code is None:
        raise invalid("areaCode", "required", N_("This field is required."))
    area = await area_in_scope(conn, caller, area_code)
    level = _ROLE_LEVEL[role]
    if area.level != level:
        raise invalid(
            "areaCode",
            "level",
            N_("This role must be placed in %(level)s."),
            level=_LEVEL_NAMES[level],
        )
    if role != "team_member":
        if team_id is not None:
            raise invalid("teamId", "not_allowed", N_("Only team members belong to a team."))
        return area.id, area.province_id, None
    if team_id is None:
        raise invalid("teamId", "required", N_("A team member needs a team."))
    team = await accounts.get_team(conn, team_id)
    if team is None or team.ward_id != area.id:
        raise invalid("teamId", "invalid", N_("The team must belong to the same ward."))
    return area.id, area.province_id, team.id


class UserRoutes(Controller):
    path = "/users"
    tags = ["accounts"]
    guards = [requires_role(*OFFICIALS)]

    @post("/", responses=problems(400, 401, 403, 404, 409))
    async def create_user(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewUser],
    ) -> PendingUser:
        """Create an account with a role below the caller's, inside the caller's area. It is
        pending until its holder activates it with the one-time ``activationCode`` of this
        answer (shown only here) and chooses their password; a ``password`` is refused."""
        caller = request.user  # a password cannot get this far (null-only: api/errors.py)
        phone = require_phone(data.phone)
        area_id, province_id, team_id = await place(
            conn, caller, data.role, data.area_code, data.team_id
        )
        code = new_activation_code()
        user_id = uuid.uuid4()
        addr = client_addr(request)
        async with conn.transaction():
            created = await accounts.insert_user(
                conn,
                user_id=user_id,
                phone=phone,
                password_hash=None,
                role=data.role,
                area_id=area_id,
                province_id=province_id,
                team_id=team_id,
                display_name=optional_text(data.display_name, "displayName"),
                activation_hash=activation_digest(code),
                activation_ttl=state.settings.activation_ttl,
            )
            if not created:
                raise PhoneTaken()
            await audit.record(
                conn,
                "user_created",
                "user",
                user_id,
                actor_id=caller.user_id,
                province_id=province_id,
                client_addr=addr,
                detail={"role": data.role, "area": data.area_code},
            )
            await audit.record(
                conn,
                "activation_code_issued",
                "user",
                user_id,
                actor_id=caller.user_id,
                province_id=province_id,
                client_addr=addr,
                detail={"reset": False},
            )
        user = await accounts.get_user(conn, user_id)
        assert user is not None
        return pending_user(user, code)

    @get("/", responses=problems(400, 401, 403, 404))
    async def list_users(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        area: FromQuery[OptionalAreaCode] = None,
        role: FromQuery[Role | None] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[User]:
        """Users in the caller's area (optionally one area and role), newest first."""
        caller = request.user
        province_id = None if caller.role == "admin" else caller.province_id
        area_id = caller.area_id if caller.role == "ward_official" else None
        if area is not None:
            area_id = (await area_in_scope(conn, caller, area)).id
        rows = await accounts.list_users(
            conn,
            province_id=province_id,
            area_id=area_id,
            role=role,
            team_id=None,
            after=decode_cursor(cursor, UserCursor),
            limit=limit + 1,
        )
        return page_of(rows, limit, lambda row: (row.created_at, row.id))

    @get("/{user_id:uuid}", responses=problems(401, 403, 404))
    async def get_user(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        user_id: FromPath[uuid.UUID],
    ) -> User:
        user = await accounts.get_user(conn, user_id)
        if user is None or not user_visible(request.user, user):
            raise UserNotFound()
        return user.public()

    @patch("/{user_id:uuid}", responses=problems(400, 401, 403, 404))
    async def update_user(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        user_id: FromPath[uuid.UUID],
        data: JSONBody[UserChange],
    ) -> User:
        """Change a user's role, area, team, name or status, or one's own password (audited).
        Another account's password is set by its holder: ``POST /users/{id}/activation``."""
        caller = request.user
        user = await accounts.get_user(conn, user_id)
        if user is None or not user_visible(caller, user):
            raise UserNotFound()
        placement_change = any(
            value is not UNSET for value in (data.role, data.area_code, data.team_id, data.disabled)
        )
        if user.id == caller.user_id:
            if placement_change:
                raise OwnAccount()
        elif caller.role != "admin" and RANK[user.role] >= RANK[caller.role]:
            raise RoleTooHigh()
        elif data.password is not UNSET:
            raise password_not_allowed()

        changes: dict[str, Any] = {}
        if placement_change and (
            data.role is not UNSET or data.area_code is not UNSET or data.team_id is not UNSET
        ):
            role = user.role if data.role is UNSET else data.role
            area_code = user.area_code if data.area_code is UNSET else data.area_code
            team = user.team_id if data.team_id is UNSET else data.team_id
            if role != "team_member" and data.team_id is UNSET:
                team = None  # leaving the team role leaves the team
            area_id, province_id, team_id = await place(conn, caller, role, area_code, team)
            changes.update(role=role, area_id=area_id, province_id=province_id, team_id=team_id)
        if data.disabled is not UNSET:
            changes["disabled"] = data.disabled
        if data.display_name is not UNSET:
            changes["display_name"] = optional_text(data.display_name, "displayName")
        if data.password is not UNSET:
            changes["password_hash"] = await state.passwords.hash(data.password)

        async with conn.transaction():
            await accounts.update_user(conn, user.id, changes)
            if placement_change or "password_hash" in changes:
                # Sessions re-read the role at refresh; make them sign in again instead.
                await accounts.revoke_user_tokens(conn, user.id)
            # Field names only, never values: the password hash stays out of the trail.
            detail: dict[str, Any] = {
                "fields": sorted(k.removesuffix("_hash") for k in changes),
            }
            if changes.get("role", user.role) != user.role:
                detail["role"] = {"from": user.role, "to": changes["role"]}
            await audit.record(
                conn,
                "user_updated",
                "user",
                user.id,
                actor_id=caller.user_id,
                province_id=changes.get("province_id", user.province_id),
                detail=detail,
            )
        updated = await accounts.get_user(conn, user.id)
        assert updated is not None
        return updated.public()

    @post("/{user_id:uuid}/activation", responses=problems(401, 403, 404, 409))
    async def issue_activation_code(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        user_id: FromPath[uuid.UUID],
    ) -> PendingUser:
        """A new one-time activation code for an account (audited; shown only in this
        answer). Any earlier code stops working. An account already activated is reset to
        pending: its password and sessions end, and its holder chooses a new password with
        the code (a lost password)."""
        caller = request.user
        user = await accounts.get_user(conn, user_id)
        if user is None or not user_visible(caller, user):
            raise UserNotFound()
        if user.id == caller.user_id:
            raise OwnAccount()
        if caller.role != "admin" and RANK[user.role] >= RANK[caller.role]:
            raise RoleTooHigh()
        if user.disabled:
            raise UserDisabled()
        code = new_activation_code()
        async with conn.transaction():
            await accounts.issue_activation(
                conn, user.id, activation_digest(code), state.settings.activation_ttl
            )
            await accounts.revoke_user_tokens(conn, user.id)
            await audit.record(
                conn,
                "activation_code_issued",
                "user",
                user.id,
                actor_id=caller.user_id,
                province_id=user.province_id,
                client_addr=client_addr(request),
                detail={"reset": not user.pending},
            )
        updated = await accounts.get_user(conn, user.id)
        assert updated is not None
        return pending_user(updated, code)


def pending_user(user: accounts.UserRecord, code: str) -> PendingUser:
    return PendingUser(**msgspec.structs.asdict(user.public()), activation_code=code)


class TeamRoutes(Controller):
    path = "/teams"
    tags = ["accounts"]

    @post("/", guards=[requires_role(*OFFICIALS)], responses=problems(400, 401, 403, 404, 409))
    async def create_team(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewTeam],
    ) -> Team:
        """Create a ward's community digital technology team (idempotent by ``id``)."""
        caller = request.user
        ward = await area_in_scope(conn, caller, data.ward_code)
        if ward.level != "ward":
            raise invalid("wardCode", "level", N_("A team belongs to a ward or commune."))
        team_id = data.id or uuid.uuid4()
        name = clean_text(data.name, "name")
        async with conn.transaction():
            created = await accounts.insert_team(
                conn,
                team_id=team_id,
                ward_id=ward.id,
                province_id=ward.province_id,
                name=name,
            )
            if created:
                await audit.record(
                    conn,
                    "team_created",
                    "team",
                    team_id,
                    actor_id=caller.user_id,
                    province_id=ward.province_id,
                    detail={"ward": ward.code},
                )
        team = await accounts.get_team(conn, team_id)
        assert team is not None
        if not created and (team.ward_id != ward.id or team.name != name):
            raise Conflict(N_("A different team already has this id."))
        return team.public()

    @get("/", responses=problems(400, 401, 404))
    async def list_teams(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        ward: FromQuery[OptionalAreaCode] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[Team]:
        """Teams in the caller's area (optionally one ward), newest first."""
        caller = request.user
        province_id = None if caller.role == "admin" else caller.province_id
        ward_id = None if caller.role in ("admin", "province_official") else caller.area_id
        if ward is not None:
            ward_id = (await area_in_scope(conn, caller, ward)).id
        rows = await accounts.list_teams(
            conn,
            province_id=province_id,
            ward_id=ward_id,
            after=decode_cursor(cursor, UserCursor),
            limit=limit + 1,
        )
        return page_of(rows, limit, lambda row: (row.created_at, row.id))

    @get("/{team_id:uuid}", responses=problems(401, 404))
    async def get_team(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        team_id: FromPath[uuid.UUID],
    ) -> Team:
        team = await accounts.get_team(conn, team_id)
        if team is None or not team_visible(request.user, team):
            raise TeamNotFound()
        return team.public()

    @get(
        "/{team_id:uuid}/members",
        guards=[requires_role(*OFFICIALS, "team_member")],
        responses=problems(400, 401, 403, 404),
    )
    async def list_team_members(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        team_id: FromPath[uuid.UUID],
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[User]:
        team = await accounts.get_team(conn, team_id)
        if team is None or not team_visible(request.user, team):
            raise TeamNotFound()
        rows = await accounts.list_users(
            conn,
            province_id=None,
            area_id=None,
            role=None,
            team_id=team.id,
            after=decode_cursor(cursor, UserCursor),
            limit=limit + 1,
        )
        return page_of(rows, limit, lambda row: (row.created_at, row.id))
