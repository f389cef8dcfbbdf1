"""Users, teams, refresh tokens and login throttling."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from schemas.accounts import Role, Team, User


class UserRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    phone: str
    password_hash: str | None  # None while pending activation
    role: Role
    area_id: int | None
    area_code: str | None
    area_level: str | None
    province_id: int | None
    team_id: uuid.UUID | None
    household_id: uuid.UUID | None
    display_name: str | None
    disabled: bool
    created_at: datetime
    activation_expires_at: datetime | None

    @property
    def pending(self) -> bool:
        """Created by someone else and not yet activated by its holder."""
        return self.password_hash is None

    def public(self) -> User:
        return User(
            id=self.id,
            phone=self.phone,
            role=self.role,
            area_code=self.area_code,
            display_name=self.display_name,
            team_id=self.team_id,
            disabled=self.disabled,
            pending_activation=self.pending,
            activation_expires_at=self.activation_expires_at if self.pending else None,
        )


_USER = """SELECT u.id, u.phone, u.password_hash, u.role, u.area_id, a.code AS area_code,
                  a.level AS area_level, u.province_id, u.team_id, u.household_id,
                  u.display_name, u.disabled, u.created_at, u.activation_expires_at
           FROM app_user u LEFT JOIN area a ON a.id = u.area_id"""


def _user(row: asyncpg.Record | None) -> UserRecord | None:
    return None if row is None else msgspec.convert(row, UserRecord, from_attributes=True)


async def get_user(conn: asyncpg.Connection, user_id: uuid.UUID) -> UserRecord | None:
    return _user(await conn.fetchrow(f"{_USER} WHERE u.id = $1", user_id))


async def get_user_by_phone(conn: asyncpg.Connection, phone: str) -> UserRecord | None:
    return _user(await conn.fetchrow(f"{_USER} WHERE u.phone = $1", phone))


async def list_users(
    conn: asyncpg.Connection,
    *,
    province_id: int | None,
    area_id: int | None,
    role: str | None,
    team_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[UserRecord]:
    """Users filtered by scope (province / area), newest first, keyset on (created_at, id)."""
    rows = await conn.fetch(
        f"""{_USER}
            WHERE ($1::int IS NULL OR u.province_id = $1)
              AND ($2::int IS NULL OR u.area_id = $2)
              AND ($3::text IS NULL OR u.role = $3)
              AND ($4::uuid IS NULL OR u.team_id = $4)
              AND ($5::timestamptz IS NULL OR (u.created_at, u.id) < ($5, $6::uuid))
            ORDER BY u.created_at DESC, u.id DESC
            LIMIT $7""",
        province_id,
        area_id,
        role,
        team_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [msgspec.convert(row, UserRecord, from_attributes=True) for row in rows]


async def insert_user(
    conn: asyncpg.Connection,
    *,
    user_id: uuid.UUID,
    phone: str,
    password_hash: str | None,
    role: str,
    area_id: int | None,
    province_id: int | None,
    team_id: uuid.UUID | None,
    display_name: str | None,
    household_id: uuid.UUID | None = None,
    activation_hash: bytes | None = None,
    activation_ttl: int = 0,
) -> bool:
    """False when the phone is already registered. Without a password hash, the account is
    pending activation with the code of digest ``activation_hash`` (``activation_ttl``
    seconds)."""
    inserted = await conn.fetchval(
        """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id, team_id,
                                 display_name, household_id, activation_hash,
                                 activation_expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                   CASE WHEN $10::bytea IS NOT NULL
                        THEN now() + make_interval(secs => $11) END)
           ON CONFLICT (phone) DO NOTHING
           RETURNING true""",
        user_id,
        phone,
        password_hash,
        role,
        area_id,
        province_id,
        team_id,
        display_name,
        household_id,
        activation_hash,
        activation_ttl,
    )
    return bool(inserted)


_UPDATABLE = frozenset(
    {"role", "area_id", "province_id", "team_id", "display_name", "disabled", "password_hash"}
)


async def update_user(
    conn: asyncpg.Connection, user_id: uuid.UUID, changes: dict[str, Any]
) -> None:
    columns = [name for name in changes if name in _UPDATABLE]
    if not columns:
        return
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    await conn.execute(
        f"UPDATE app_user SET {assignments}, updated_at = now() WHERE id = $1",
        user_id,
        *(changes[name] for name in columns),
    )


# Activation ----------------------------------------------------------------------------------


async def issue_activation(
    conn: asyncpg.Connection, user_id: uuid.UUID, code_hash: bytes, ttl_seconds: int
) -> None:
    """Make the account pending with a new code: the password and any earlier code stop
    working (end its sessions too: :func:`revoke_user_tokens`)."""
    await conn.execute(
        """UPDATE app_user SET password_hash = NULL, activation_hash = $2,
                               activation_expires_at = now() + make_interval(secs => $3),
                               activation_used_at = NULL, updated_at = now()
           WHERE id = $1""",
        user_id,
        code_hash,
        ttl_seconds,
    )


class ActivationRecord(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    province_id: int | None
    code_hash: bytes | None
    expired: bool
    used: bool
    disabled: bool


async def lock_activation(conn: asyncpg.Connection, phone: str) -> ActivationRecord | None:
    """The phone's account and its latest code, locked until the end of the transaction (a
    code works once)."""
    row = await conn.fetchrow(
        """SELECT id AS user_id, province_id, activation_hash AS code_hash,
                  coalesce(activation_expires_at <= now(), false) AS expired,
                  activation_used_at IS NOT NULL AS used, disabled
           FROM app_user WHERE phone = $1 FOR UPDATE""",
        phone,
    )
    return None if row is None else msgspec.convert(row, ActivationRecord, from_attributes=True)


async def activate(conn: asyncpg.Connection, user_id: uuid.UUID, password_hash: str) -> None:
    """Set the holder's password and use up the code (kept as a digest, to tell a used code
    from a wrong one)."""
    await conn.execute(
        """UPDATE app_user SET password_hash = $2, activation_used_at = now(), updated_at = now()
           WHERE id = $1""",
        user_id,
        password_hash,
    )


# Teams ---------------------------------------------------------------------------------------


class TeamRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    ward_id: int
    ward_code: str
    province_id: int
    name: str
    member_count: int
    created_at: datetime

    def public(self) -> Team:
        return Team(
            id=self.id, ward_code=self.ward_code, name=self.name, member_count=self.member_count
        )


_TEAM = """SELECT t.id, t.ward_id, a.code AS ward_code, t.province_id, t.name, t.created_at,
                  (SELECT count(*) FROM app_user m WHERE m.team_id = t.id)::int AS member_count
           FROM team t JOIN area a ON a.id = t.ward_id"""


async def get_team(conn: asyncpg.Connection, team_id: uuid.UUID) -> TeamRecord | None:
    row = await conn.fetchrow(f"{_TEAM} WHERE t.id = $1", team_id)
    return None if row is None else msgspec.convert(row, TeamRecord, from_attributes=True)


async def insert_team(
    conn: asyncpg.Connection, *, team_id: uuid.UUID, ward_id: int, province_id: int, name: str
) -> bool:
    """False when a team with this id already exists."""
    inserted = await conn.fetchval(
        """INSERT INTO team (id, ward_id, province_id, name) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO NOTHING RETURNING true""",
        team_id,
        ward_id,
        province_id,
        name,
    )
    return bool(inserted)


async def list_teams(
    conn: asyncpg.Connection,
    *,
    province_id: int | None,
    ward_id: int | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[TeamRecord]:
    rows = await conn.fetch(
        f"""{_TEAM}
            WHERE ($1::int IS NULL OR t.province_id = $1)
              AND ($2::int IS NULL OR t.ward_id = $2)
              AND ($3::timestamptz IS NULL OR (t.created_at, t.id) < ($3, $4::uuid))
            ORDER BY t.created_at DESC, t.id DESC
            LIMIT $5""",
        province_id,
        ward_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [msgspec.convert(row, TeamRecord, from_attributes=True) for row in rows]


# Refresh tokens ------------------------------------------------------------------------------


class RefreshRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    family_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None


async def insert_refresh_token(
    conn: asyncpg.Connection,
    *,
    family_id: uuid.UUID,
    user_id: uuid.UUID,
    token_hash: bytes,
    ttl_seconds: int,
) -> None:
    await conn.execute(
        """INSERT INTO refresh_token (id, family_id, user_id, token_hash, expires_at)
           VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5))""",
        uuid.uuid4(),
        family_id,
        user_id,
        token_hash,
        ttl_seconds,
    )


async def lock_refresh_token(conn: asyncpg.Connection, token_hash: bytes) -> RefreshRecord | None:
    """The token row, locked until the end of the transaction (rotation is one-shot)."""
    row = await conn.fetchrow(
        """SELECT id, family_id, user_id, expires_at, used_at, revoked_at
           FROM refresh_token WHERE token_hash = $1 FOR UPDATE""",
        token_hash,
    )
    return None if row is None else msgspec.convert(row, RefreshRecord, from_attributes=True)


async def mark_refresh_used(conn: asyncpg.Connection, token_id: uuid.UUID) -> None:
    await conn.execute("UPDATE refresh_token SET used_at = now() WHERE id = $1", token_id)


async def revoke_family(conn: asyncpg.Connection, family_id: uuid.UUID) -> int:
    result: str = await conn.execute(
        "UPDATE refresh_token SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id,
    )
    return int(result.split()[-1])


async def revoke_user_tokens(conn: asyncpg.Connection, user_id: uuid.UUID) -> None:
    await conn.execute(
        "UPDATE refresh_token SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        user_id,
    )


# Login throttling ----------------------------------------------------------------------------


async def locked_for(conn: asyncpg.Connection, keys: list[str]) -> float:
    """Seconds until every given key is unlocked (0 when none is locked)."""
    seconds = await conn.fetchval(
        """SELECT coalesce(max(extract(epoch FROM locked_until - now())), 0)
           FROM login_throttle WHERE key = ANY($1::text[]) AND locked_until > now()""",
        keys,
    )
    return float(seconds)


async def record_failure(
    conn: asyncpg.Connection, key: str, max_failures: int, window_seconds: int
) -> None:
    """Count a failure in the key's window; lock the key for a window at ``max_failures``."""
    await conn.execute(
        """INSERT INTO login_throttle AS t (key, failures, window_start) VALUES ($1, 1, now())
           ON CONFLICT (key) DO UPDATE SET
               failures = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                               THEN 1 ELSE t.failures + 1 END,
               window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                                   THEN now() ELSE t.window_start END""",
        key,
        window_seconds,
    )
    await conn.execute(
        """UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2),
                                     failures = 0, window_start = now()
           WHERE key = $1 AND failures >= $3""",
        key,
        window_seconds,
        max_failures,
    )


async def take_attempt(
    conn: asyncpg.Connection, limits: list[tuple[str, int]], window_seconds: int
) -> float:
    """Count a sign-in attempt against each key *before* the password is checked: seconds
    to wait if a key is locked, or has no attempt left in its window (which locks it for a
    window), else 0. One upsert per key serialises concurrent attempts on its row, so 40
    guesses sent at once for one phone get at most its limit of password checks."""
    ordered = sorted(limits)  # rows always taken in the same order: no deadlock
    async with conn.transaction():  # the rows stay locked until the lock is written
        rows = await conn.fetch(
            """INSERT INTO login_throttle AS t (key, failures, window_start)
               SELECT key, 1, now() FROM unnest($1::text[]) AS key
               ON CONFLICT (key) DO UPDATE SET
                   failures = CASE
                       WHEN t.locked_until > now() THEN t.failures
                       WHEN t.window_start < now() - make_interval(secs => $2) THEN 1
                       ELSE t.failures + 1 END,
                   window_start = CASE
                       WHEN t.locked_until > now() THEN t.window_start
                       WHEN t.window_start < now() - make_interval(secs => $2) THEN now()
                       ELSE t.window_start END
               RETURNING key, failures,
                         coalesce(extract(epoch FROM locked_until - now()), 0)::float8 AS wait""",
            [key for key, _ in ordered],
            window_seconds,
        )
        limit = dict(ordered)
        wait = max((row["wait"] for row in rows), default=0.0)
        used_up = [r["key"] for r in rows if r["wait"] <= 0 and r["failures"] > limit[r["key"]]]
        if used_up:
            await conn.execute(
                """UPDATE login_throttle SET locked_until = now() + make_interval(secs => $2),
                                             failures = 0, window_start = now()
                   WHERE key = ANY($1::text[])""",
                used_up,
                window_seconds,
            )
            wait = max(wait, float(window_seconds))
    return max(wait, 0.0)


async def give_back_attempt(conn: asyncpg.Connection, key: str) -> None:
    """A successful sign-in does not use up the address's attempts (many people sign in
    from behind one address)."""
    await conn.execute(
        "UPDATE login_throttle SET failures = greatest(failures - 1, 0) WHERE key = $1", key
    )


async def clear_failures(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("DELETE FROM login_throttle WHERE key = $1", key)
