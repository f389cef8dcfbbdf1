"""Issuing and rotating a user's tokens (used by login, refresh, registration and
activation), and the one-time activation codes of accounts created by someone else."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import asyncpg
from litestar.datastructures import State

from api.auth import Principal, issue_access_token
from api.queries import accounts
from schemas.accounts import Tokens


def digest(refresh_token: str) -> bytes:
    # Refresh tokens are 256-bit random strings, so a fast hash is enough to store them.
    return hashlib.sha256(refresh_token.encode()).digest()


# Activation codes are printed, shown as QR codes or typed on a phone: only characters of the
# QR alphanumeric mode, none that look alike (no 0/O, 1/I/L). 20 characters of 31 ≈ 99 bits.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 20


def new_activation_code() -> str:
    """``ABCD-EFGH-JKMN-PQRS-TUVW``: read in groups of four."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def activation_digest(code: str) -> bytes:
    # Case, spaces and dashes do not matter; ~99 random bits make a fast hash enough.
    normalized = code.upper().replace("-", "").replace(" ", "")
    return hashlib.sha256(normalized.encode()).digest()


def principal_of(user: accounts.UserRecord) -> Principal:
    return Principal(
        user_id=user.id,
        role=user.role,
        area_id=user.area_id,
        province_id=user.province_id,
        team_id=user.team_id,
        household_id=user.household_id,
    )


async def issue_tokens(
    conn: asyncpg.Connection,
    state: State,
    user: accounts.UserRecord,
    family_id: uuid.UUID | None = None,
) -> Tokens:
    """A new access token and a new refresh token in ``family_id`` (a new family at login)."""
    settings = state.settings
    refresh_token = secrets.token_urlsafe(32)
    await accounts.insert_refresh_token(
        conn,
        family_id=family_id or uuid.uuid4(),
        user_id=user.id,
        token_hash=digest(refresh_token),
        ttl_seconds=settings.refresh_token_ttl,
    )
    return Tokens(
        access_token=issue_access_token(
            state.jwt_secret, settings.access_token_ttl, principal_of(user)
        ),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl,
        user=user.public(),
    )
