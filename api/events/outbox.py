"""Writing events to the outbox, inside the caller's transaction.

An event's ``body`` never holds answers; a submission event keeps the submission's id, and
the worker reads its answers from the submission (which never changes) only for webhooks an
administrator registered for answers, so the outbox never copies them. Rows carry the
writing transaction's id (``change_xid``): the worker reads only rows below the oldest
running transaction, so an event committed late is never skipped.

Accepted submissions' events are written by the statement that stores them
(``api/queries/submissions.py``), with the same body. Their transactions do not notify the
worker: PostgreSQL serialises the commits of notifying transactions under one database-wide
lock, held through each commit's flush to disk, and concurrent single submissions waited for
one another there (``bench write_profile``: 90 % of the busy backends' samples). The writing
process wakes the worker after its commits instead, once per ``WAKE_SECONDS`` at most
(:class:`Waker`); the worker also polls. Rarer events still notify from their transaction.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any, Final

import asyncpg

log = logging.getLogger(__name__)
WAKE_SECONDS: Final = 0.1

SUBMISSION_ACCEPTED = "submission.accepted"
HOUSEHOLD_DELETED = "household.deleted"
REVIEW_DECIDED = "review.decided"
TARGET_CHANGED = "target.changed"


async def household_deleted(
    conn: asyncpg.Connection, household_id: uuid.UUID, ward_id: int, province_id: int
) -> None:
    await _one(
        conn,
        HOUSEHOLD_DELETED,
        province_id,
        household_id,
        ward_id,
        {"householdId": str(household_id)},
    )


async def review_decided(
    conn: asyncpg.Connection,
    submission_id: uuid.UUID,
    household_id: uuid.UUID,
    ward_id: int,
    province_id: int | None,
    status: str,
) -> None:
    await _one(
        conn,
        REVIEW_DECIDED,
        province_id,
        household_id,
        ward_id,
        {"submissionId": str(submission_id), "status": status},
    )


async def target_changed(
    conn: asyncpg.Connection,
    area_code: str,
    province_id: int | None,
    indicator: str,
    year: int,
    value: float,
) -> None:
    await _one(
        conn,
        TARGET_CHANGED,
        province_id,
        None,
        None,
        {"areaCode": area_code, "indicator": indicator, "year": year, "value": value},
    )


async def _one(
    conn: asyncpg.Connection,
    kind: str,
    province_id: int | None,
    household_id: uuid.UUID | None,
    ward_id: int | None,
    data: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO outbox (event_id, type, province_id, household_id, body)
           SELECT gen_random_uuid(), $1, $2, $3,
                  jsonb_build_object('provinceCode', (SELECT code FROM area WHERE id = $2),
                                     'wardCode', (SELECT code FROM area WHERE id = $4),
                                     'householdId', $3::uuid, 'data', $5::jsonb)""",
        kind,
        province_id,
        household_id,
        ward_id,
        data,
    )
    await _wake(conn)


async def _wake(conn: asyncpg.Connection) -> None:
    # Delivered at commit: the worker wakes without polling (it also polls, as a fallback).
    await conn.execute("SELECT pg_notify('outbox', '')")


class Waker:
    """Wakes the delivery worker (``NOTIFY outbox``) soon after this process's commits, one
    notification for all the commits of ``WAKE_SECONDS``, on a pool connection of its own."""

    def __init__(self, get_pool: Callable[[], asyncpg.Pool | None]) -> None:
        self._get_pool = get_pool
        self._pending: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def poke(self) -> None:
        """Events were committed: the worker hears of them within ``WAKE_SECONDS``."""
        if self._pending is None:
            self._pending = asyncio.get_running_loop().call_later(WAKE_SECONDS, self._later)

    def _later(self) -> None:
        self._pending = None
        task = asyncio.create_task(self.wake())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wake(self) -> None:
        pool = self._get_pool()
        if pool is None:
            return
        try:
            await pool.execute("SELECT pg_notify('outbox', '')", timeout=5)
        except Exception as error:  # the worker polls: it only hears of the events later
            log.warning("could not wake the webhook worker (%r)", error)
