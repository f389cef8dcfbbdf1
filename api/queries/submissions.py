"""Set-based SQL for accepting a batch of submissions in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import asyncpg
import msgspec


class HouseholdHead(msgspec.Struct, frozen=True):
    id: uuid.UUID
    ward_id: int
    province_id: int
    created_at: datetime
    current_submission_id: uuid.UUID | None


async def lock_households(
    conn: asyncpg.Connection, household_ids: list[uuid.UUID]
) -> dict[uuid.UUID, HouseholdHead]:
    """Lock the households a batch touches, in id order so concurrent batches never deadlock.

    Only the locked rows themselves are read here: a row this statement waited for is read
    again at its latest version, but anything else it read would be as of before the wait.
    What the heads hold is read by the next statement (:func:`stored`), which sees them."""
    rows = await conn.fetch(
        """SELECT id, ward_id, province_id, created_at, current_submission_id
           FROM household WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE""",
        household_ids,
    )
    return {row["id"]: msgspec.convert(row, HouseholdHead, from_attributes=True) for row in rows}


class Stored(msgspec.Struct, frozen=True):
    """A stored submission a batch needs: its hash (idempotency), when it counts from (a
    head), and for a head about to be replaced, what it counted (its answers)."""

    id: uuid.UUID
    content_hash: bytes
    counted_at: datetime
    collected_at: datetime
    answers: dict[str, Any] | None
    members: list[dict[str, Any]] | None


async def stored(
    conn: asyncpg.Connection,
    submission_ids: list[uuid.UUID],
    heads: list[uuid.UUID],
    replaced: list[uuid.UUID],
) -> dict[uuid.UUID, Stored]:
    """The batch's ids already stored, and the households' heads (with their answers for the
    ``replaced`` ones), in one statement."""
    rows = await conn.fetch(
        """SELECT id, content_hash, counted_at, collected_at,
                  CASE WHEN id = ANY($3::uuid[]) THEN answers END AS answers,
                  CASE WHEN id = ANY($3::uuid[]) THEN members END AS members
           FROM submission WHERE id = ANY($1::uuid[]) OR id = ANY($2::uuid[])""",
        submission_ids,
        heads,
        replaced,
    )
    return {row["id"]: msgspec.convert(row, Stored, from_attributes=True) for row in rows}


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


# What counts changed, one row per ward, month and measure (api/stats/counters.py).
LogRow = tuple[int, int, date, str, int, int, int, int]

# The accepted rows, the heads they move, their events and their counters' log in one
# statement: no shared row is updated, and the statement is the same for every batch.
STORE_SQL = """
    WITH new AS (
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
        RETURNING id, household_id, survey_id, survey_version, province_id, ward_id,
                  collected_at, supersedes
    ), moved AS (
        UPDATE household h
        SET current_submission_id = u.submission_id, updated_at = now(),
            change_xid = pg_current_xact_id()
        FROM unnest($15::uuid[], $16::uuid[]) AS u(household_id, submission_id)
        WHERE h.id = u.household_id
    ), campaigns AS (
        INSERT INTO survey_head (household_id, survey_id, submission_id)
        SELECT * FROM unnest($17::uuid[], $18::uuid[], $19::uuid[])
        ON CONFLICT (household_id, survey_id) DO UPDATE SET submission_id = excluded.submission_id
    ), events AS (
        INSERT INTO outbox (event_id, type, province_id, household_id, body, submission_id)
        SELECT gen_random_uuid(), 'submission.accepted', s.province_id, s.household_id,
               jsonb_build_object(
                   'provinceCode', p.code, 'wardCode', w.code, 'householdId', s.household_id,
                   'data', jsonb_build_object(
                       'submissionId', s.id, 'surveyId', s.survey_id,
                       'surveyVersion', s.survey_version, 'collectedAt', s.collected_at,
                       'supersedes', s.supersedes)),
               s.id
        FROM unnest($1::uuid[]) WITH ORDINALITY AS n(id, position)
        JOIN new s ON s.id = n.id
        JOIN area p ON p.id = s.province_id JOIN area w ON w.id = s.ward_id
        WHERE $20::boolean
        ORDER BY n.position
    ), logged AS (
        INSERT INTO stat_log (ward_id, province_id, month, measure, numerator, denominator,
                              numerator_key, denominator_key)
        SELECT * FROM unnest($21::int[], $22::int[], $23::date[], $24::text[], $25::bigint[],
                             $26::bigint[], $27::bigint[], $28::bigint[])
    )
    -- The outbox's worker wakes at commit without polling (it also polls, as a fallback).
    SELECT (SELECT count(*) FROM new), CASE WHEN $20 THEN pg_notify('outbox', '') END"""


async def store(
    conn: asyncpg.Connection,
    rows: list[NewRow],
    heads: dict[uuid.UUID, uuid.UUID],
    campaign_heads: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID],
    log: list[LogRow],
    events: bool,
) -> int:
    """Store accepted rows, point each household (and campaign chain) at its new head (and
    mark it changed for sync), write their events (when ``events``) and append what they
    change in the counters to the log, in one statement; returns how many rows were new
    (fewer: a concurrent batch stored some, and the caller rolls back)."""
    inserted: int = await conn.fetchval(
        STORE_SQL,
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
        [household for household, _ in campaign_heads],
        [survey for _, survey in campaign_heads],
        list(campaign_heads.values()),
        events,
        *([row[i] for row in log] for i in range(8)),
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
