"""Signing in and out: login, refresh-token rotation, logout, and the caller's own account."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.security.jwt import Token

from api.auth import Principal
from api.errors import TooManyRequests, Unauthorized, problems
from api.i18n import N_
from api.phone import require_phone
from api.queries import accounts, audit
from api.sessions import digest, issue_tokens
from schemas.accounts import LoginRequest, LogoutRequest, RefreshRequest, Tokens, User


class BadCredentials(Unauthorized):
    code = "invalid_credentials"
    title = N_("Sign-in failed")
    default_detail = N_("The phone number or password is incorrect.")


class BadRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    title = N_("Session ended")
    default_detail = N_("This refresh token is invalid, expired or revoked. Sign in again.")


class LockedOut(TooManyRequests):
    code = "login_locked"
    default_detail = N_("Too many failed sign-ins. Try again in %(minutes)s minutes.")


async def refuse_if_locked(conn: asyncpg.Connection, keys: list[str]) -> None:
    """429 while any of the throttle keys (phone, client address) is locked out."""
    wait = await accounts.locked_for(conn, keys)
    if wait > 0:
        raise LockedOut(
            params={"minutes": max(1, round(wait / 60))},
            headers={"Retry-After": str(int(wait) + 1)},
        )


def client_addr(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


@post(
    "/auth/login",
    status_code=200,
    exclude_from_auth=True,
    tags=["auth"],
    responses=problems(400, 401, 429),
)
async def login(
    request: Request[Any, Any, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[LoginRequest],
) -> Tokens:
    """Sign in with a phone number and password. Repeated failures lock the phone and address."""
    settings = state.settings
    phone = require_phone(data.phone)
    addr = client_addr(request)
    keys = [f"phone:{phone}", f"addr:{addr}"]
    await refuse_if_locked(conn, keys)

    user = await accounts.get_user_by_phone(conn, phone)
    verified = await state.passwords.verify(user.password_hash if user else None, data.password)
    if user is None or not verified or user.disabled:
        async with conn.transaction():
            await accounts.record_failure(
                conn, keys[0], settings.login_max_failures, settings.login_window
            )
            await accounts.record_failure(
                conn, keys[1], settings.login_max_failures_per_addr, settings.login_window
            )
            await audit.record(
                conn,
                "login_failed",
                "user",
                user.id if user else None,
                actor_id=None,
                province_id=user.province_id if user else None,
                client_addr=addr,
            )
        raise BadCredentials()

    async with conn.transaction():
        await accounts.clear_failures(conn, keys[0])
        if state.passwords.needs_rehash(user.password_hash):
            new_hash = await state.passwords.hash(data.password)
            await accounts.update_user(conn, user.id, {"password_hash": new_hash})
        tokens = await issue_tokens(conn, state, user)
        await audit.record(
            conn,
            "login",
            "user",
            user.id,
            actor_id=user.id,
            province_id=user.province_id,
            client_addr=addr,
        )
    return tokens


@post(
    "/auth/refresh",
    status_code=200,
    exclude_from_auth=True,
    tags=["auth"],
    responses=problems(400, 401),
)
async def refresh(
    request: Request[Any, Any, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[RefreshRequest],
) -> Tokens:
    """Exchange a refresh token for new tokens. Each refresh token works once: presenting a
    used one again revokes every token of its login (a stolen token is then useless)."""
    reused = False
    async with conn.transaction():
        token = await accounts.lock_refresh_token(conn, digest(data.refresh_token))
        if token is None:
            raise BadRefreshToken()
        if token.used_at is not None or token.revoked_at is not None:
            if await accounts.revoke_family(conn, token.family_id):
                await audit.record(
                    conn,
                    "refresh_token_reused",
                    "user",
                    token.user_id,
                    actor_id=None,
                    client_addr=client_addr(request),
                    detail={"family": str(token.family_id)},
                )
            reused = True
        else:
            user = await accounts.get_user(conn, token.user_id)
            expired = token.expires_at <= datetime.now(UTC)
            if user is None or user.disabled or expired:
                raise BadRefreshToken()
            await accounts.mark_refresh_used(conn, token.id)
            tokens = await issue_tokens(conn, state, user, family_id=token.family_id)
    if reused:
        raise BadRefreshToken()  # after the commit, so the revocation stands
    return tokens


@post("/auth/logout", status_code=204, tags=["auth"], responses=problems(400, 401))
async def logout(
    request: Request[Principal, Token, Any],
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[LogoutRequest],
) -> None:
    """End the session of the given refresh token; with ``{}``, every session of the caller."""
    user_id = request.user.user_id
    async with conn.transaction():
        if data.refresh_token:
            token = await accounts.lock_refresh_token(conn, digest(data.refresh_token))
            if token is not None and token.user_id == user_id:
                await accounts.revoke_family(conn, token.family_id)
        else:
            await accounts.revoke_user_tokens(conn, user_id)
        await audit.record(
            conn, "logout", "user", user_id, actor_id=user_id, province_id=request.user.province_id
        )


@get("/me", tags=["auth"], responses=problems(401))
async def me(
    request: Request[Principal, Token, Any], conn: NamedDependency[asyncpg.Connection]
) -> User:
    """The signed-in user's own account."""
    user = await accounts.get_user(conn, request.user.user_id)
    if user is None or user.disabled:
        raise Unauthorized()
    return user.public()
