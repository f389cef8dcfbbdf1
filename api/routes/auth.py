"""Signing in and out: login, first sign-in with an activation code, refresh-token rotation,
logout, and the caller's own account."""

from __future__ import annotations

import hmac
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.security.jwt import Token

from api.auth import Principal
from api.errors import (
    AppError,
    Conflict,
    Forbidden,
    TooManyRequests,
    Unauthorized,
    invalid,
    problems,
)
from api.i18n import N_
from api.phone import require_phone
from api.queries import accounts, audit
from api.sessions import activation_digest, digest, issue_tokens
from schemas.accounts import Activation, LoginRequest, LogoutRequest, RefreshRequest, Tokens, User


class BadCredentials(Unauthorized):
    code = "invalid_credentials"
    title = N_("Sign-in failed")
    default_detail = N_("The phone number or password is incorrect.")


class BadRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    title = N_("Session ended")
    default_detail = N_("This refresh token is invalid, expired or revoked. Sign in again.")


class ActivationRequired(Forbidden):
    code = "activation_required"
    title = N_("Account not activated")
    default_detail = N_(
        "This account has not been activated yet. Sign in the first time with the activation "
        "code you were given, and choose your password."
    )


class BadActivationCode(Unauthorized):
    code = "invalid_activation_code"
    title = N_("Activation failed")
    default_detail = N_("The phone number or activation code is incorrect.")


class ActivationCodeUsed(Conflict):
    code = "activation_code_used"
    default_detail = N_(
        "This activation code has already been used. Sign in with your password, or ask the "
        "official who manages your account for a new code."
    )


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


async def take_attempt(conn: asyncpg.Connection, state: State, keys: list[str]) -> None:
    """Count this attempt against the phone and the address before any password or code is
    checked (429 when either has none left), so concurrent guesses cannot outrun the limit."""
    settings = state.settings
    wait = await accounts.take_attempt(
        conn,
        [(keys[0], settings.login_max_failures), (keys[1], settings.login_max_failures_per_addr)],
        settings.login_window,
    )
    if wait > 0:
        raise LockedOut(
            params={"minutes": max(1, round(wait / 60))},
            headers={"Retry-After": str(int(wait) + 1)},
        )


async def succeeded(conn: asyncpg.Connection, keys: list[str]) -> None:
    """A success clears the phone's count and gives the address its attempt back."""
    await accounts.clear_failures(conn, keys[0])
    await accounts.give_back_attempt(conn, keys[1])


async def record_failure(
    conn: asyncpg.Connection,
    action: str,
    user_id: uuid.UUID | None,
    province_id: int | None,
    addr: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit a failed sign-in (the attempt was counted before the check)."""
    async with conn.transaction():
        await audit.record(
            conn,
            action,
            "user",
            user_id,
            actor_id=None,
            province_id=province_id,
            client_addr=addr,
            detail=detail,
        )


@post(
    "/auth/login",
    status_code=200,
    exclude_from_auth=True,
    tags=["auth"],
    responses=problems(400, 401, 403, 429),
)
async def login(
    request: Request[Any, Any, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[LoginRequest],
) -> Tokens:
    """Sign in with a phone number and password. Repeated failures lock the phone and address.
    An account created by someone else signs in the first time with ``POST /auth/activate``
    (403 ``activation_required`` here until then)."""
    phone = require_phone(data.phone)
    addr = client_addr(request)
    keys = [f"phone:{phone}", f"addr:{addr}"]
    await take_attempt(conn, state, keys)

    user = await accounts.get_user_by_phone(conn, phone)
    verified = await state.passwords.verify(user.password_hash if user else None, data.password)
    if user is None or user.password_hash is None or not verified or user.disabled:
        pending = user is not None and user.pending and not user.disabled
        await record_failure(
            conn,
            "login_failed",
            user.id if user else None,
            user.province_id if user else None,
            addr,
            {"reason": "pending_activation"} if pending else None,
        )
        raise ActivationRequired() if pending else BadCredentials()

    async with conn.transaction():
        await succeeded(conn, keys)
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
    "/auth/activate",
    status_code=200,
    exclude_from_auth=True,
    tags=["auth"],
    responses=problems(400, 401, 409, 429),
)
async def activate_account(
    request: Request[Any, Any, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[Activation],
) -> Tokens:
    """First sign-in of an account created by an official: the holder gives the one-time
    activation code they were handed, chooses their password, and is signed in. A code works
    once; wrong codes count against the same lockout as wrong passwords."""
    phone = require_phone(data.phone)
    addr = client_addr(request)
    keys = [f"phone:{phone}", f"addr:{addr}"]
    await take_attempt(conn, state, keys)
    password_hash = await state.passwords.hash(data.password)
    presented = activation_digest(data.activation_code)

    async with conn.transaction():
        account = await accounts.lock_activation(conn, phone)
        refusal = activation_refusal(account, presented)
        if refusal is None:
            assert account is not None
            await accounts.activate(conn, account.user_id, password_hash)
            await succeeded(conn, keys)
            await audit.record(
                conn,
                "user_activated",
                "user",
                account.user_id,
                actor_id=account.user_id,
                province_id=account.province_id,
                client_addr=addr,
            )
            user = await accounts.get_user(conn, account.user_id)
            assert user is not None
            return await issue_tokens(conn, state, user)
        if account is not None and not isinstance(refusal, BadActivationCode):
            # The right code, too late: no guess to count, but the attempt is on record.
            for key in keys:
                await accounts.give_back_attempt(conn, key)
            await audit.record(
                conn,
                "activation_failed",
                "user",
                account.user_id,
                actor_id=None,
                province_id=account.province_id,
                client_addr=addr,
                detail={"reason": "used" if account.used else "expired"},
            )
    if isinstance(refusal, BadActivationCode):
        await record_failure(
            conn,
            "activation_failed",
            account.user_id if account else None,
            account.province_id if account else None,
            addr,
            {"reason": "wrong_code"},
        )
    raise refusal


def activation_refusal(
    account: accounts.ActivationRecord | None, presented: bytes
) -> AppError | None:
    """Why this code cannot activate this account, or None when it can."""
    if (
        account is None
        or account.code_hash is None
        or not hmac.compare_digest(account.code_hash, presented)
        or account.disabled
    ):
        return BadActivationCode()  # one answer for all: nothing to learn about the phone
    if account.used:
        return ActivationCodeUsed()
    if account.expired:
        return invalid(
            "activationCode",
            "activation_code_expired",
            N_(
                "This activation code has expired. Ask the official who manages your account "
                "for a new one."
            ),
        )
    return None


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
            if user is None or user.disabled or user.pending or expired:
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
