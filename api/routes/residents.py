"""Residents: a team invites them with a one-time code; they answer for and manage their own
household's data (see it, delete it)."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import asyncpg
from litestar import Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.security.jwt import Token

from api.auth import Principal, requires_role
from api.errors import Unauthorized, problems
from api.i18n import N_
from api.phone import require_phone
from api.queries import accounts, audit
from api.queries import households as q
from api.routes.accounts import PhoneTaken
from api.routes.auth import client_addr, refuse_if_locked
from api.routes.households import HouseholdNotFound, household_visible
from api.sessions import issue_tokens
from api.stats.counters import recounting
from api.textkeys import optional_text
from schemas.accounts import Tokens
from schemas.households import Invite, MyHousehold, NewInvite, Registration

# No 0/O, 1/I/L: the code is read aloud and typed on a phone. 8 characters ≈ 40 bits.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
INVITE_TTL = 7 * 24 * 3600


def new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def code_digest(code: str) -> bytes:
    normalized = code.upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalized.encode()).digest()


@post(
    "/invites",
    guards=[requires_role("team_member", "ward_official")],
    tags=["residents"],
    responses=problems(401, 403, 404),
)
async def create_invite(
    request: Request[Principal, Token, Any],
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[NewInvite],
) -> Invite:
    """A one-time code (valid 7 days, QR-friendly) for a resident of this household."""
    caller = request.user
    household = await q.get_household(conn, data.household_id)
    if household is None or not household_visible(caller, household):
        raise HouseholdNotFound()
    code = new_code()
    async with conn.transaction():
        expires_at = await q.insert_invite(
            conn,
            code_hash=code_digest(code),
            household=household,
            created_by=caller.user_id,
            ttl_seconds=INVITE_TTL,
        )
        await audit.record(
            conn,
            "invite_created",
            "household",
            household.id,
            actor_id=caller.user_id,
            province_id=household.province_id,
        )
    return Invite(code=code, household_id=household.id, expires_at=expires_at)


@post(
    "/auth/register",
    exclude_from_auth=True,
    tags=["residents"],
    responses=problems(400, 401, 409, 429),
)
async def register(
    request: Request[Any, Any, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[Registration],
) -> Tokens:
    """Create a resident account for the invite's household and sign in."""
    settings = state.settings
    phone = require_phone(data.phone)
    addr_key = f"register:{client_addr(request)}"
    await refuse_if_locked(conn, [addr_key])
    password_hash = await state.passwords.hash(data.password)
    user_id = uuid.uuid4()
    async with conn.transaction():
        invite = await q.claim_invite(conn, code_digest(data.invite_code))
        if invite is not None:
            created = await accounts.insert_user(
                conn,
                user_id=user_id,
                phone=phone,
                password_hash=password_hash,
                role="resident",
                area_id=invite["ward_id"],
                province_id=invite["province_id"],
                team_id=None,
                display_name=optional_text(data.display_name, "displayName"),
                household_id=invite["household_id"],
            )
            if not created:
                raise PhoneTaken()
            await q.mark_invite_used(conn, invite["id"], user_id)
            await audit.record(
                conn,
                "resident_registered",
                "user",
                user_id,
                actor_id=user_id,
                province_id=invite["province_id"],
                detail={"household": str(invite["household_id"])},
            )
            user = await accounts.get_user(conn, user_id)
            assert user is not None
            return await issue_tokens(conn, state, user)
    # Guessing codes costs a lockout, like guessing passwords.
    await accounts.record_failure(
        conn, addr_key, settings.login_max_failures_per_addr, settings.login_window
    )
    # 401, like a wrong activation code: a well-formed code that opens nothing.
    raise InvalidInvite()


class InvalidInvite(Unauthorized):
    code = "invalid_invite"
    default_detail = N_("This invite code is wrong, expired or already used.")


async def own_household(conn: asyncpg.Connection, resident: Principal) -> q.HouseholdRecord:
    """The resident's household (404 once it has been deleted)."""
    household_id = resident.household_id
    household = await q.get_household(conn, household_id) if household_id else None
    if household is None:
        raise HouseholdNotFound()
    return household


@get(
    "/me/household",
    guards=[requires_role("resident")],
    tags=["residents"],
    responses=problems(401, 403, 404),
)
async def my_household(
    request: Request[Principal, Token, Any], conn: NamedDependency[asyncpg.Connection]
) -> MyHousehold:
    """Everything stored about the resident's household: its state and every submission."""
    household = await own_household(conn, request.user)
    (state,) = await q.household_states(conn, [household.id])
    return MyHousehold(
        household=state, submissions=await q.household_submissions(conn, household.id)
    )


@delete(
    "/me/household",
    guards=[requires_role("resident")],
    tags=["residents"],
    responses=problems(401, 403, 404),
)
async def delete_my_household(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
) -> None:
    """Delete the household and every answer about it (Decree 13/2023: the right to
    deletion). Statistics no longer count it; offline clients are told to forget it."""
    catalog = await state.indicators.get(conn)
    async with conn.transaction():
        household = await own_household(conn, request.user)
        async with recounting(conn, catalog, [household.id]):
            removed = await q.delete_household(conn, household)
        await audit.record(
            conn,
            "household_deleted",
            "household",
            household.id,
            actor_id=request.user.user_id,
            province_id=household.province_id,
            detail={"submissions": removed, "by": "resident"},
        )
