"""Set-based SQL for accepting a batch of submissions in one transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

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
    # Positionally: the columns are the struct's fields in order (a twentieth of convert's cost).
    return {row[0]: HouseholdHead(*row) for row in rows}


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
    return {row[0]: Stored(*row) for row in rows}  # the columns are the fields in order


class NewRow(NamedTuple):
    """One accepted submission, as stored (a tuple: a batch's rows are turned into the
    statement's columns by one ``zip``)."""

    id: uuid.UUID
    household_id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: int
    province_id: int
    ward_id: int
    collected_at: datetime
    counted_at: datetime
    notice_version: str
    supersedes: uuid.UUID | None
    answers: dict[str, Any]
    members: Sequence[object]  # the roster as given (Structs or plain dicts): stored as JSON
    content_hash: bytes


# Both store statements below insert these columns and return what the rest of the
# statement reads of the new rows (``new``).
INSERT_SUBMISSION = """INSERT INTO submission (id, household_id, survey_id, survey_version,
                                province_id, ward_id, collected_at, submitted_by,
                                notice_version, supersedes, answers, members, content_hash,
                                counted_at)"""
RETURNING_NEW = """RETURNING id, household_id, survey_id, survey_version, province_id, ward_id,
                  collected_at, supersedes"""

# The body of a ``submission.accepted`` event, from a new submission ``s`` (both statements
# below write it; api/events/outbox.py has the others). The area codes are looked up row by
# row: a join would read the whole area table to hash it, for the two or three of a batch.
SUBMISSION_EVENT = """jsonb_build_object(
                   'provinceCode', (SELECT code FROM area WHERE id = s.province_id),
                   'wardCode', (SELECT code FROM area WHERE id = s.ward_id),
                   'householdId', s.household_id,
                   'data', jsonb_build_object(
                       'submissionId', s.id, 'surveyId', s.survey_id,
                       'surveyVersion', s.survey_version, 'collectedAt', s.collected_at,
                       'supersedes', s.supersedes))"""

# What counts changed, one row per ward, month and measure (api/stats/counters.py).
LogRow = tuple[int, int, date, str, int, int, int, int]

# The accepted rows, the heads they move, their events and their counters' log in one
# statement: no shared row is updated, and the statement is the same for every batch.
STORE_SQL = f"""
    WITH new AS (
        {INSERT_SUBMISSION}
        SELECT id, household_id, survey_id, survey_version, province_id, ward_id,
               collected_at, $8::uuid, notice_version, supersedes, answers,
               members::jsonb, content_hash, counted_at
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[],
                    $6::int[], $7::timestamptz[], $14::timestamptz[], $9::text[],
                    $10::uuid[], $11::jsonb[], $12::text[], $13::bytea[])
             AS r(id, household_id, survey_id, survey_version, province_id, ward_id,
                  collected_at, counted_at, notice_version, supersedes, answers,
                  members, content_hash)
        ON CONFLICT (id) DO NOTHING
        {RETURNING_NEW}
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
               {SUBMISSION_EVENT},
               s.id
        -- From the arguments, in their order: every row is new, or the caller rolls back.
        FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[], $6::int[],
                    $7::timestamptz[], $10::uuid[]) WITH ORDINALITY
             AS s(id, household_id, survey_id, survey_version, province_id, ward_id,
                  collected_at, supersedes, position)
        WHERE $20::boolean
        ORDER BY s.position
    ), logged AS (
        INSERT INTO stat_log (ward_id, province_id, month, measure, numerator, denominator,
                              numerator_key, denominator_key)
        SELECT * FROM unnest($21::int[], $22::int[], $23::date[], $24::text[], $25::bigint[],
                             $26::bigint[], $27::bigint[], $28::bigint[])
    )
    -- No NOTIFY here: the writing process wakes the outbox's worker after the commit
    -- (api/events/outbox.py says why).
    SELECT count(*) FROM new"""


async def store(
    conn: asyncpg.Connection,
    rows: list[NewRow],
    submitted_by: uuid.UUID,
    heads: dict[uuid.UUID, uuid.UUID],
    campaign_heads: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID],
    log: list[LogRow],
    events: bool,
) -> int:
    """Store accepted rows, point each household (and campaign chain) at its new head (and
    mark it changed for sync), write their events (when ``events``) and append what they
    change in the counters to the log, in one statement; returns how many rows were new
    (fewer: a concurrent batch stored some, and the caller rolls back)."""
    (ids, households, surveys, versions, provinces, wards, collected, counted, notices,
     supersedes, answers, members, hashes) = zip(*rows, strict=True)  # fmt: skip
    inserted: int = await conn.fetchval(
        STORE_SQL,
        ids,
        households,
        surveys,
        versions,
        provinces,
        wards,
        collected,
        submitted_by,
        notices,
        supersedes,
        answers,
        # As JSON text: asyncpg would read a list of lists as a two-dimensional array.
        [msgspec.json.encode(roster).decode() for roster in members],
        hashes,
        counted,
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


# A single submission of a household's state, decided and stored by one statement: the lock,
# the idempotency check, the insert, the head move, the event and the counters' log, so a
# first visit is one round trip. The decision is the one a one-item batch makes
# (api/ingest.py: _store_once), in the same order; tests/test_single.py holds them equal.
#
# The household row is locked, and if the statement waited for it, read again at its latest
# version; everything else it reads is as of the statement's start. So when the household was
# changed by a transaction this statement cannot see (it committed while we waited), the
# answer is 'retry': the caller runs the statement again, with a snapshot that sees it.
STORE_ONE_SQL = f"""
    WITH h AS (
        SELECT id, ward_id, province_id, created_at, current_submission_id,
               pg_visible_in_snapshot(change_xid, pg_current_snapshot()) AS settled
        FROM household WHERE id = $2 FOR UPDATE
    ), decision AS (
        SELECT CASE
                 WHEN (SELECT closed_at IS NOT NULL FROM survey WHERE id = $3)
                   THEN 'survey_closed'
                 WHEN h.id IS NOT NULL AND NOT h.settled THEN 'retry'
                 WHEN prior.content_hash = $11 THEN 'duplicate'
                 WHEN prior.content_hash IS NOT NULL THEN 'content_differs'
                 WHEN h.id IS NULL OR h.ward_id <> coalesce($12, h.ward_id)
                      OR h.id <> coalesce($13, h.id) THEN 'household_not_found'
                 WHEN h.current_submission_id IS DISTINCT FROM $8
                   THEN CASE WHEN $8 IS NULL THEN 'not_head' ELSE 'stale_supersedes' END
                 -- the state it replaces was not committed when the caller read it
                 WHEN $8 IS NOT NULL AND NOT $15 THEN 'retry'
                 ELSE 'accepted'
               END AS status,
               h.id AS household_id, h.ward_id, h.province_id, h.created_at,
               h.current_submission_id
        FROM (SELECT 1) AS one
        LEFT JOIN h ON true
        LEFT JOIN submission prior ON prior.id = $1
    ), new AS (
        {INSERT_SUBMISSION}
        SELECT $1, household_id, $3, $4, province_id, ward_id, $5, $6, $7, $8, $9,
               $10::text::jsonb, $11, $14
        FROM decision WHERE status = 'accepted'
        ON CONFLICT (id) DO NOTHING
        {RETURNING_NEW}
    ), moved AS (
        UPDATE household h
        SET current_submission_id = new.id, updated_at = now(),
            change_xid = pg_current_xact_id()
        FROM new WHERE h.id = new.household_id
    ), events AS (
        INSERT INTO outbox (event_id, type, province_id, household_id, body, submission_id)
        SELECT gen_random_uuid(), 'submission.accepted', s.province_id, s.household_id,
               {SUBMISSION_EVENT},
               s.id
        FROM new s
        WHERE $16::boolean
    ), logged AS (
        INSERT INTO stat_log (ward_id, province_id, month, measure, numerator, denominator,
                              numerator_key, denominator_key)
        SELECT new.ward_id, new.province_id, m.month, m.measure, m.n, m.d, m.nk, m.dk
        FROM new, unnest($17::date[], $18::text[], $19::bigint[], $20::bigint[],
                         $21::bigint[], $22::bigint[]) AS m(month, measure, n, d, nk, dk)
        UNION ALL
        -- A first visit before the household's creation: registered from the visit.
        SELECT new.ward_id, new.province_id, c.month, 'COVERAGE', 0, c.sign, 0, c.sign * $23
        FROM new JOIN decision d ON true
        CROSS JOIN LATERAL (VALUES
            (date_trunc('month', d.created_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, -1),
            (date_trunc('month', $14::timestamptz AT TIME ZONE 'Asia/Ho_Chi_Minh')::date, 1)
        ) AS c(month, sign)
        WHERE $8::uuid IS NULL AND $14 < d.created_at
    )
    SELECT d.status, d.current_submission_id, d.province_id,
           (SELECT count(*) FROM new) AS inserted
    FROM decision d"""


class OneRow(msgspec.Struct, frozen=True):
    """A single submission as the caller sends it to be stored: its ward and province are
    the locked household's, taken by the statement."""

    id: uuid.UUID
    household_id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: int
    collected_at: datetime
    counted_at: datetime  # if it is accepted (the caller read the state it replaces)
    submitted_by: uuid.UUID
    notice_version: str
    supersedes: uuid.UUID | None
    answers: dict[str, Any]
    members: Sequence[object]
    content_hash: bytes


OneLogRow = tuple[date, str, int, int, int, int]  # month, measure and the cell's four sums


class OneStored(msgspec.Struct, frozen=True):
    status: str  # accepted, duplicate, content_differs, household_not_found, not_head,
    # stale_supersedes, survey_closed, retry, or raced (a concurrent insert of this id)
    current_submission_id: uuid.UUID | None  # the head before this statement
    province_id: int | None


async def store_one(
    conn: asyncpg.Connection,
    row: OneRow,
    *,
    ward_scope: int | None,
    household_scope: uuid.UUID | None,
    replaced_read: bool,
    log: list[OneLogRow],
    household_key: int,
    events: bool,
) -> OneStored:
    """Decide and store one household-state submission in one statement (outside any
    transaction: it commits by itself). The scope (a ward, or a resident's household) is
    checked against the locked household."""
    found = await conn.fetchrow(
        STORE_ONE_SQL,
        row.id,
        row.household_id,
        row.survey_id,
        row.survey_version,
        row.collected_at,
        row.submitted_by,
        row.notice_version,
        row.supersedes,
        row.answers,
        msgspec.json.encode(row.members).decode(),
        row.content_hash,
        ward_scope,
        household_scope,
        row.counted_at,
        replaced_read,
        events,
        *([entry[i] for entry in log] for i in range(6)),
        household_key,
    )
    assert found is not None  # the decision always has one row
    status = found["status"]
    if status == "accepted" and found["inserted"] == 0:
        status = "raced"
    return OneStored(status, found["current_submission_id"], found["province_id"])


async def replaced_submission(
    conn: asyncpg.Connection, submission_id: uuid.UUID, household_id: uuid.UUID
) -> Stored | None:
    """The stored submission an edit names (submissions never change), if it is this
    household's."""
    row = await conn.fetchrow(
        """SELECT id, content_hash, counted_at, collected_at, answers, members
           FROM submission WHERE id = $1 AND household_id = $2""",
        submission_id,
        household_id,
    )
    return None if row is None else msgspec.convert(row, Stored, from_attributes=True)
