"""Webhooks and their delivery log: SQL beside each function."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg
import msgspec

from schemas.events import Delivery, Webhook


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What the worker needs of a webhook."""

    id: uuid.UUID
    url: str
    secret: str
    province_id: int | None
    include_answers: bool
    after_xid: int
    after_id: int
    attempts: int
    failing_since: datetime | None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    body: dict[str, object]
    answers: dict[str, object] | None
    xid: int


_WEBHOOK = """SELECT w.id, w.url, p.code AS province_code, w.include_answers, w.created_at,
                     w.paused_at, w.failing_since
              FROM webhook w LEFT JOIN area p ON p.id = w.province_id"""


async def insert_webhook(
    conn: asyncpg.Connection,
    *,
    webhook_id: uuid.UUID,
    url: str,
    secret: str,
    province_id: int | None,
    include_answers: bool,
    created_by: uuid.UUID,
) -> None:
    # A new webhook starts at the end of the outbox: it hears of what happens from now on.
    await conn.execute(
        """INSERT INTO webhook (id, url, secret, province_id, include_answers, created_by,
                                after_xid, after_id)
           SELECT $1, $2, $3, $4, $5, $6,
                  coalesce(max(change_xid), '0'::xid8), coalesce(max(id), 0)
           FROM outbox""",
        webhook_id,
        url,
        secret,
        province_id,
        include_answers,
        created_by,
    )


async def get_webhook(
    conn: asyncpg.Connection, webhook_id: uuid.UUID
) -> tuple[Webhook, int | None] | None:
    """The webhook and its province id."""
    row = await conn.fetchrow(
        f"{_WEBHOOK.replace('SELECT ', 'SELECT w.province_id, ', 1)} WHERE w.id = $1", webhook_id
    )
    if row is None:
        return None
    return msgspec.convert(row, Webhook, from_attributes=True), row["province_id"]


async def list_webhooks(
    conn: asyncpg.Connection, province_id: int | None, everywhere: bool
) -> list[Webhook]:
    rows = await conn.fetch(
        f"{_WEBHOOK} WHERE $1 OR w.province_id = $2 ORDER BY w.created_at, w.id",
        everywhere,
        province_id,
    )
    return [msgspec.convert(row, Webhook, from_attributes=True) for row in rows]


async def resume(conn: asyncpg.Connection, webhook_id: uuid.UUID) -> None:
    await conn.execute(
        """UPDATE webhook SET paused_at = NULL, failing_since = NULL, attempts = 0,
                              next_attempt_at = now()
           WHERE id = $1""",
        webhook_id,
    )


async def deliveries(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, before: int | None, limit: int
) -> list[Delivery]:
    rows = await conn.fetch(
        """SELECT d.id, d.event_id, o.type, d.attempt, d.manual, d.status_code, d.error,
                  d.delivered, d.duration_ms, d.attempted_at
           FROM webhook_delivery d JOIN outbox o ON o.id = d.outbox_id
           WHERE d.webhook_id = $1 AND ($2::bigint IS NULL OR d.id < $2)
           ORDER BY d.id DESC LIMIT $3""",
        webhook_id,
        before,
        limit,
    )
    return [msgspec.convert(row, Delivery, from_attributes=True) for row in rows]


# The worker -------------------------------------------------------------------------------

# A submission event's answers, read from the submission, for webhooks registered for them
# (none once the household was deleted: its answers are gone).
_ANSWERS = """CASE WHEN {wanted}::boolean AND o.submission_id IS NOT NULL THEN
                  (SELECT jsonb_build_object('answers', s.answers, 'members', s.members)
                   FROM submission s WHERE s.id = o.submission_id)
              END"""


async def due(conn: asyncpg.Connection) -> list[Target]:
    rows = await conn.fetch(
        """SELECT id, url, secret, province_id, include_answers,
                  after_xid::text::bigint AS after_xid, after_id, attempts, failing_since
           FROM webhook WHERE paused_at IS NULL AND next_attempt_at <= now()
           ORDER BY next_attempt_at"""
    )
    return [msgspec.convert(row, Target, from_attributes=True) for row in rows]


async def next_events(conn: asyncpg.Connection, target: Target, limit: int) -> list[Event]:
    """The webhook's next events in outbox order, among those every earlier transaction has
    finished writing (so none can appear before them later)."""
    rows = await conn.fetch(
        f"""SELECT o.id, o.event_id, o.type, o.occurred_at, o.body,
                   {_ANSWERS.format(wanted="$5")} AS answers,
                   o.change_xid::text::bigint AS xid
            FROM outbox o
            WHERE (o.change_xid, o.id) > ($1::text::xid8, $2)
              AND o.change_xid < pg_snapshot_xmin(pg_current_snapshot())
              AND ($3::integer IS NULL OR o.province_id = $3)
            ORDER BY o.change_xid, o.id LIMIT $4""",
        str(target.after_xid),
        target.after_id,
        target.province_id,
        limit,
        target.include_answers,
    )
    return [msgspec.convert(row, Event, from_attributes=True) for row in rows]


async def event_by_id(
    conn: asyncpg.Connection, event_id: uuid.UUID, include_answers: bool
) -> Event | None:
    row = await conn.fetchrow(
        f"""SELECT o.id, o.event_id, o.type, o.occurred_at, o.body,
                   {_ANSWERS.format(wanted="$2")} AS answers,
                   o.change_xid::text::bigint AS xid
            FROM outbox o WHERE o.event_id = $1""",
        event_id,
        include_answers,
    )
    return None if row is None else msgspec.convert(row, Event, from_attributes=True)


async def log_attempt(
    conn: asyncpg.Connection,
    webhook_id: uuid.UUID,
    event: Event,
    attempt: int,
    *,
    manual: bool,
    status_code: int | None,
    error: str | None,
    delivered: bool,
    duration_ms: int,
) -> None:
    await conn.execute(
        """INSERT INTO webhook_delivery (webhook_id, outbox_id, event_id, attempt, manual,
                                         status_code, error, delivered, duration_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        webhook_id,
        event.id,
        event.event_id,
        attempt,
        manual,
        status_code,
        error,
        delivered,
        duration_ms,
    )


async def delivered(conn: asyncpg.Connection, webhook_id: uuid.UUID, event: Event) -> None:
    await conn.execute(
        """UPDATE webhook SET after_xid = $2::text::xid8, after_id = $3, attempts = 0,
                              failing_since = NULL, next_attempt_at = now()
           WHERE id = $1""",
        webhook_id,
        str(event.xid),
        event.id,
    )


async def failed(
    conn: asyncpg.Connection, webhook_id: uuid.UUID, retry_in: float, pause_after: float
) -> bool:
    """Schedule the next attempt; pause the webhook once it has failed for ``pause_after``
    seconds. True when it was paused."""
    paused: bool = await conn.fetchval(
        """UPDATE webhook
           SET attempts = attempts + 1,
               failing_since = coalesce(failing_since, now()),
               next_attempt_at = now() + make_interval(secs => $2),
               paused_at = CASE WHEN now() - coalesce(failing_since, now())
                                     >= make_interval(secs => $3)
                                THEN now() END
           WHERE id = $1 RETURNING paused_at IS NOT NULL""",
        webhook_id,
        retry_in,
        pause_after,
    )
    return paused


async def targets(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[Target]:
    rows = await conn.fetch(
        """SELECT id, url, secret, province_id, include_answers,
                  after_xid::text::bigint AS after_xid, after_id, attempts, failing_since
           FROM webhook WHERE id = ANY($1::uuid[])""",
        ids,
    )
    return [msgspec.convert(row, Target, from_attributes=True) for row in rows]


async def event_in_province(conn: asyncpg.Connection, outbox_id: int, province_id: int) -> bool:
    found: bool = await conn.fetchval(
        "SELECT province_id = $2 FROM outbox WHERE id = $1", outbox_id, province_id
    )
    return bool(found)


# Pruning --------------------------------------------------------------------------------------

PRUNE_BATCH = 5_000  # events per statement: short transactions, however much is due

# Events older than $1 days that every webhook they go to has passed (its position is at or
# after them, in the order it delivers: a province's webhook never gets other provinces' or
# national events, so those do not wait for it); their delivery log goes with them. A paused
# or failing webhook keeps what it has not received: nothing is lost while a receiver is down.
_PRUNE_SQL = """
WITH gone AS (
    DELETE FROM outbox WHERE id IN (
        SELECT o.id FROM outbox o
        WHERE o.occurred_at < now() - make_interval(secs => $1 * 86400)
          AND NOT EXISTS (
              SELECT FROM webhook w
              WHERE (o.change_xid, o.id) > (w.after_xid, w.after_id)
                AND (w.province_id IS NULL OR w.province_id = o.province_id))
        ORDER BY o.id LIMIT $2)
    RETURNING id
), attempts AS (
    DELETE FROM webhook_delivery d USING gone WHERE d.outbox_id = gone.id
)
SELECT count(*) FROM gone"""


async def prune(conn: asyncpg.Connection, keep_days: float) -> int:
    """Delete what :data:`_PRUNE_SQL` allows, a batch per transaction; events deleted."""
    total = 0
    while True:
        deleted: int = await conn.fetchval(_PRUNE_SQL, keep_days, PRUNE_BATCH)
        total += deleted
        if deleted < PRUNE_BATCH:
            return total
