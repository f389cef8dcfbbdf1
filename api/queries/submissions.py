"""Set-based SQL for accepting a batch of submissions in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec


class HouseholdHead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    ward_id: int
    province_id: int
    current_submission_id: uuid.UUID | None
    counted_at: datetime | None  # of the current submission


async def lock_households(
    conn: asyncpg.Connection, household_ids: list[uuid.UUID]
) -> dict[uuid.UUID, HouseholdHead]:
    """Lock the households a batch touches, in id order so concurrent batches never deadlock."""
    rows = await conn.fetch(
        """SELECT h.id, h.ward_id, h.province_id, h.current_submission_id,
                  (SELECT counted_at FROM submission WHERE id = h.current_submission_id)
                  AS counted_at
           FROM household h
           WHERE h.id = ANY($1::uuid[]) ORDER BY h.id FOR UPDATE""",
        household_ids,
    )
    return {row["id"]: msgspec.convert(row, HouseholdHead, from_attributes=True) for row in rows}


async def stored_hashes(
    conn: asyncpg.Connection, submission_ids: list[uuid.UUID]
) -> dict[uuid.UUID, bytes]:
    rows = await conn.fetch(
        "SELECT id, content_hash FROM submission WHERE id = ANY($1::uuid[])", submission_ids
    )
    return {row["id"]: row["content_hash"] for row in rows}


class NewRow(msgspec.Struct, frozen=True):
    """One accepted submission, as stored."""

    id: uuid.UUID
    household_id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: int
    province_id: int
    ward_id: int
    collected_at: datetime
    counted_at: datetime
    submitted_by: uuid.UUID
    notice_version: str
    supersedes: uuid.UUID | None
    answers: dict[str, Any]
    members: Sequence[object]  # the roster as given (Structs or plain dicts): stored as JSON
    content_hash: bytes


async def insert_submissions(
    conn: asyncpg.Connection, rows: list[NewRow], heads: dict[uuid.UUID, uuid.UUID]
) -> int:
    """Insert accepted rows and point each household at its new current submission (and
    mark it changed for sync), in one statement; returns how many rows were new (fewer: a
    concurrent batch stored some, and the caller rolls back)."""
    inserted: int = await conn.fetchval(
        """WITH new AS (
               INSERT INTO submission (id, household_id, survey_id, survey_version, province_id,
                                       ward_id, collected_at, submitted_by, notice_version,
                                       supersedes, answers, members, content_hash, counted_at)
               SELECT id, household_id, survey_id, survey_version, province_id, ward_id,
                      collected_at, submitted_by, notice_version, supersedes, answers,
                      members::jsonb, content_hash, counted_at
               FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[],
                           $6::int[], $7::timestamptz[], $8::uuid[], $9::text[],
                           $10::uuid[], $11::jsonb[], $12::text[], $13::bytea[],
                           $14::timestamptz[])
                    AS r(id, household_id, survey_id, survey_version, province_id, ward_id,
                         collected_at, submitted_by, notice_version, supersedes, answers,
                         members, content_hash, counted_at)
               ON CONFLICT (id) DO NOTHING
               RETURNING 1
           ), moved AS (
               UPDATE household h
               SET current_submission_id = u.submission_id, updated_at = now(),
                   change_xid = pg_current_xact_id()
               FROM unnest($15::uuid[], $16::uuid[]) AS u(household_id, submission_id)
               WHERE h.id = u.household_id
           ) SELECT count(*) FROM new""",
        [r.id for r in rows],
        [r.household_id for r in rows],
        [r.survey_id for r in rows],
        [r.survey_version for r in rows],
        [r.province_id for r in rows],
        [r.ward_id for r in rows],
        [r.collected_at for r in rows],
        [r.submitted_by for r in rows],
        [r.notice_version for r in rows],
        [r.supersedes for r in rows],
        [r.answers for r in rows],
        # As JSON text: asyncpg would read a list of lists as a two-dimensional array.
        [msgspec.json.encode(r.members).decode() for r in rows],
        [r.content_hash for r in rows],
        [r.counted_at for r in rows],
        list(heads),
        list(heads.values()),
    )
    return inserted


class SurveyState(msgspec.Struct, frozen=True):
    """What a batch needs to know about a survey beyond its (immutable) versions."""

    id: uuid.UUID
    province_id: int | None  # None: national
    household_state: bool  # its submissions are the household's state (and the statistics')
    closed: bool


async def survey_states(
    conn: asyncpg.Connection, survey_ids: list[uuid.UUID]
) -> dict[uuid.UUID, SurveyState]:
    rows = await conn.fetch(
        """SELECT id, province_id, household_state, closed_at IS NOT NULL AS closed
           FROM survey WHERE id = ANY($1::uuid[])""",
        survey_ids,
    )
    return {row["id"]: msgspec.convert(row, SurveyState, from_attributes=True) for row in rows}


async def campaign_heads(
    conn: asyncpg.Connection, pairs: list[tuple[uuid.UUID, uuid.UUID]]
) -> dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]:
    """The current submission of each (household, campaign survey) pair that has one."""
    rows = await conn.fetch(
        """SELECT h.household_id, h.survey_id, h.submission_id
           FROM unnest($1::uuid[], $2::uuid[]) AS k(household_id, survey_id)
           JOIN survey_head h USING (household_id, survey_id)""",
        [household for household, _ in pairs],
        [survey for _, survey in pairs],
    )
    return {(row["household_id"], row["survey_id"]): row["submission_id"] for row in rows}


async def move_campaign_heads(
    conn: asyncpg.Connection, heads: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID]
) -> None:
    await conn.execute(
        """INSERT INTO survey_head (household_id, survey_id, submission_id)
           SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[])
           ON CONFLICT (household_id, survey_id)
           DO UPDATE SET submission_id = excluded.submission_id""",
        [household for household, _ in heads],
        [survey for _, survey in heads],
        list(heads.values()),
    )
