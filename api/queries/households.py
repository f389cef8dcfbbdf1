"""Households, hamlets, resident invites and deletions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from api.events import outbox
from schemas.households import Consent, Household, HouseholdState, MemberAnswers, Submission


class HouseholdRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    ward_id: int
    ward_code: str
    province_id: int
    hamlet_id: uuid.UUID | None
    label: str | None
    current_submission_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> Household:
        return Household(
            id=self.id,
            ward_code=self.ward_code,
            hamlet_id=self.hamlet_id,
            label=self.label,
            current_submission_id=self.current_submission_id,
            updated_at=self.updated_at,
        )


_HOUSEHOLD = """SELECT h.id, h.ward_id, a.code AS ward_code, h.province_id, h.hamlet_id, h.label,
                       h.current_submission_id, h.created_at, h.updated_at
                FROM household h JOIN area a ON a.id = h.ward_id"""


def _household(row: asyncpg.Record | None) -> HouseholdRecord | None:
    return None if row is None else msgspec.convert(row, HouseholdRecord, from_attributes=True)


async def get_household(
    conn: asyncpg.Connection, household_id: uuid.UUID
) -> HouseholdRecord | None:
    return _household(await conn.fetchrow(f"{_HOUSEHOLD} WHERE h.id = $1", household_id))


async def insert_household(
    conn: asyncpg.Connection,
    *,
    household_id: uuid.UUID,
    ward_id: int,
    province_id: int,
    hamlet_id: uuid.UUID | None,
    label: str | None,
    created_by: uuid.UUID,
) -> bool:
    """False when the id is taken (or was deleted: ids are never reused)."""
    inserted = await conn.fetchval(
        """INSERT INTO household (id, ward_id, province_id, hamlet_id, label, created_by)
           SELECT $1, $2, $3, $4, $5, $6
           WHERE NOT EXISTS (SELECT 1 FROM household_tombstone WHERE household_id = $1)
           ON CONFLICT (id) DO NOTHING RETURNING true""",
        household_id,
        ward_id,
        province_id,
        hamlet_id,
        label,
        created_by,
    )
    return bool(inserted)


async def list_households(
    conn: asyncpg.Connection,
    *,
    ward_id: int,
    hamlet_id: uuid.UUID | None,
    after: tuple[datetime, uuid.UUID] | None,
    limit: int,
) -> list[HouseholdRecord]:
    rows = await conn.fetch(
        f"""{_HOUSEHOLD}
            WHERE h.ward_id = $1
              AND ($2::uuid IS NULL OR h.hamlet_id = $2)
              AND ($3::timestamptz IS NULL OR (h.created_at, h.id) > ($3, $4::uuid))
            ORDER BY h.created_at, h.id
            LIMIT $5""",
        ward_id,
        hamlet_id,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [msgspec.convert(row, HouseholdRecord, from_attributes=True) for row in rows]


# Submissions as stored ------------------------------------------------------------------------

SUBMISSION_COLUMNS = """s.id, s.survey_id, s.survey_version, s.household_id, s.collected_at,
                        s.received_at, s.notice_version, s.answers, s.members, s.supersedes"""


def submission_from_row(row: asyncpg.Record | dict[str, Any]) -> Submission:
    return Submission(
        id=row["id"],
        survey_id=row["survey_id"],
        survey_version=row["survey_version"],
        household_id=row["household_id"],
        collected_at=row["collected_at"],
        received_at=row["received_at"],
        consent=Consent(given=True, notice_version=row["notice_version"]),
        answers=row["answers"],
        members=msgspec.convert(row["members"], list[MemberAnswers]),
        supersedes=row["supersedes"],
    )


async def get_submission(
    conn: asyncpg.Connection, submission_id: uuid.UUID
) -> tuple[Submission, int] | None:
    """The submission and its ward id (for the scope check)."""
    row = await conn.fetchrow(
        f"SELECT {SUBMISSION_COLUMNS}, s.ward_id FROM submission s WHERE s.id = $1", submission_id
    )
    return None if row is None else (submission_from_row(row), row["ward_id"])


async def household_submissions(
    conn: asyncpg.Connection, household_id: uuid.UUID
) -> list[Submission]:
    rows = await conn.fetch(
        f"""SELECT {SUBMISSION_COLUMNS} FROM submission s
            WHERE s.household_id = $1 ORDER BY s.received_at, s.id""",
        household_id,
    )
    return [submission_from_row(row) for row in rows]


async def household_states(
    conn: asyncpg.Connection, household_ids: list[uuid.UUID]
) -> list[HouseholdState]:
    """Households with their current submission, in the order of ``household_ids``."""
    rows = await conn.fetch(
        f"""SELECT h.id AS hh_id, a.code AS ward_code, h.hamlet_id, h.label,
                   h.current_submission_id, h.updated_at, {SUBMISSION_COLUMNS}
            FROM unnest($1::uuid[]) WITH ORDINALITY AS k(id, n)
            JOIN household h ON h.id = k.id
            JOIN area a ON a.id = h.ward_id
            LEFT JOIN submission s ON s.id = h.current_submission_id
            ORDER BY k.n""",
        household_ids,
    )
    return [
        HouseholdState(
            id=row["hh_id"],
            ward_code=row["ward_code"],
            hamlet_id=row["hamlet_id"],
            label=row["label"],
            current_submission_id=row["current_submission_id"],
            updated_at=row["updated_at"],
            current=submission_from_row(row) if row["id"] is not None else None,
        )
        for row in rows
    ]


async def delete_household(conn: asyncpg.Connection, household: HouseholdRecord) -> int:
    """Delete a household and every submission about it, leaving only a tombstone for sync.

    Returns the number of submissions deleted.
    """
    await conn.execute("SELECT 1 FROM household WHERE id = $1 FOR UPDATE", household.id)
    deleted: int = await conn.fetchval(
        """WITH gone AS (DELETE FROM submission WHERE household_id = $1 RETURNING 1)
           SELECT count(*) FROM gone""",
        household.id,
    )
    await conn.execute(
        "UPDATE household SET current_submission_id = NULL WHERE id = $1", household.id
    )
    await conn.execute("DELETE FROM household WHERE id = $1", household.id)
    await conn.execute(
        """INSERT INTO household_tombstone (household_id, ward_id, province_id)
           VALUES ($1, $2, $3)""",
        household.id,
        household.ward_id,
        household.province_id,
    )
    await outbox.household_deleted(conn, household.id, household.ward_id, household.province_id)
    return deleted


# Invites ---------------------------------------------------------------------------------------


async def insert_invite(
    conn: asyncpg.Connection,
    *,
    code_hash: bytes,
    household: HouseholdRecord,
    created_by: uuid.UUID,
    ttl_seconds: int,
) -> datetime:
    expires_at: datetime = await conn.fetchval(
        """INSERT INTO invite (id, code_hash, household_id, ward_id, province_id, created_by,
                               expires_at)
           VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
           RETURNING expires_at""",
        uuid.uuid4(),
        code_hash,
        household.id,
        household.ward_id,
        household.province_id,
        created_by,
        ttl_seconds,
    )
    return expires_at


async def claim_invite(conn: asyncpg.Connection, code_hash: bytes) -> asyncpg.Record | None:
    """Lock a usable (unused, unexpired) invite for the rest of the transaction."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT id, household_id, ward_id, province_id FROM invite
           WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now()
           FOR UPDATE""",
        code_hash,
    )
    return row


async def mark_invite_used(
    conn: asyncpg.Connection, invite_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    await conn.execute(
        "UPDATE invite SET used_at = now(), used_by = $2 WHERE id = $1", invite_id, user_id
    )
