"""The delivery worker: sends each webhook its events, in outbox order, at least once.

One worker per deployment: every process runs the loop, but only the one holding a
PostgreSQL advisory lock (on a connection of its own) sends; if it dies, its connection
closes, the lock is released and another process takes over within ``ELECTION_SECONDS``.

Per webhook, events go strictly in (transaction, id) order and the next one waits until
the previous one is delivered, so a household's events always arrive in order. A failed
attempt is retried after ``base * 2^(attempt-1)`` seconds (at most an hour) with ±50 %
jitter; a webhook failing for ``pause_after`` seconds (24 h) is paused until resumed.
Nothing is lost while a receiver is down: its events wait in the outbox. Events every
webhook has are deleted after ``keep_days`` (hourly, with their delivery log).

Each request is ``POST`` of the event as JSON with ``X-Congdongso-Event-Id`` (stable: the
same for every attempt), ``X-Congdongso-Timestamp`` (Unix seconds of this attempt) and
``X-Congdongso-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>``.
Receivers reject old timestamps (replays) and deduplicate by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import httpx
import msgspec
from litestar import Litestar

from api.events import webhooks as q
from api.events.addresses import Refused, pinned

log = logging.getLogger("congdongso.events")

LOCK_KEY = 0x43445357  # the advisory lock the sending process holds ("CDSW")
ELECTION_SECONDS = 5.0
TIMEOUT_SECONDS = 10.0
BATCH = 100
MAX_RETRY_SECONDS = 3600.0
PRUNE_EVERY_SECONDS = 3600.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def event_body(event: q.Event, include_answers: bool) -> bytes:
    body: dict[str, Any] = {
        "id": str(event.event_id),
        "type": event.type,
        "occurredAt": event.occurred_at.isoformat(),
        **event.body,
    }
    if include_answers and event.answers is not None:
        body["data"] = {**body.get("data", {}), **event.answers}
    return msgspec.json.encode(body)


def retry_delay(attempt: int, base: float) -> float:
    """Exponential back-off with ±50 % jitter, so failed receivers are not hit in step."""
    delay: float = min(MAX_RETRY_SECONDS, base * 2.0 ** max(0, attempt - 1))
    jitter: float = random.uniform(0.5, 1.5)  # noqa: S311 - spreading retries, not security
    return delay * jitter


async def send(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    event: q.Event,
    include_answers: bool,
    *,
    private_ok: bool,
) -> tuple[int | None, str | None, int]:
    """(status code, error, milliseconds) of one attempt, sent to the address the host
    resolves to now, checked (api/events/addresses.py)."""
    body = event_body(event, include_answers)
    timestamp = int(time.time())
    started = time.perf_counter()
    aim = await pinned(url, private_ok)
    if isinstance(aim, Refused):
        return None, aim.reason, int((time.perf_counter() - started) * 1000)
    try:
        response = await client.post(
            aim.url,
            content=body,
            extensions=aim.extensions,
            headers={
                "Host": aim.host,
                "Content-Type": "application/json",
                "User-Agent": "congdongso-webhooks/1",
                "X-Congdongso-Event": event.type,
                "X-Congdongso-Event-Id": str(event.event_id),
                "X-Congdongso-Timestamp": str(timestamp),
                "X-Congdongso-Signature": signature(secret, timestamp, body),
            },
        )
    except httpx.HTTPError as exc:
        return None, type(exc).__name__, int((time.perf_counter() - started) * 1000)
    elapsed = int((time.perf_counter() - started) * 1000)
    if 200 <= response.status_code < 300:
        return response.status_code, None, elapsed
    return response.status_code, f"HTTP {response.status_code}", elapsed


class Worker:
    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        *,
        retry_base: float,
        pause_after: float,
        poll: float,
        private_ok: bool = False,
        keep_days: float = 30.0,
    ) -> None:
        self.dsn = dsn
        self.pool = pool
        self.private_ok = private_ok  # CONGDONGSO_WEBHOOK_PRIVATE_TARGETS
        self.keep_days = keep_days  # CONGDONGSO_OUTBOX_KEEP_DAYS
        self.next_prune = 0.0  # monotonic time of the next pruning (the first: at once)
        self.retry_base = retry_base
        self.pause_after = pause_after
        self.poll = poll
        self.wake = asyncio.Event()
        self.leader = False

    async def run(self) -> None:
        while True:
            try:
                await self._lead()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                log.warning("webhook worker lost its connection; electing again", exc_info=True)
            self.leader = False
            await asyncio.sleep(ELECTION_SECONDS)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
                return
            self.leader = True
            await conn.add_listener("outbox", lambda *_: self.wake.set())
            async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
                while not conn.is_closed():
                    if time.monotonic() >= self.next_prune:
                        await self.prune()
                    await self.round(client)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.poll)
                    self.wake.clear()
        finally:
            await conn.close()

    async def prune(self) -> None:
        """Delete old events every webhook has (hourly, by the leading process)."""
        self.next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
        async with self.pool.acquire() as proxy:
            deleted = await q.prune(cast(asyncpg.Connection, proxy), self.keep_days)
        if deleted:
            log.info("outbox pruned", extra={"events": deleted, "keepDays": self.keep_days})

    async def round(self, client: httpx.AsyncClient) -> None:
        """Deliver what is due for every webhook (each in order, one event at a time)."""
        async with self.pool.acquire() as proxy:
            targets = await q.due(cast(asyncpg.Connection, proxy))
        await asyncio.gather(*(self._deliver(client, target) for target in targets))

    async def _deliver(self, client: httpx.AsyncClient, target: q.Target) -> None:
        async with self.pool.acquire() as proxy:
            conn = cast(asyncpg.Connection, proxy)
            events = await q.next_events(conn, target, BATCH)
            attempts = target.attempts
            for event in events:
                status, error, elapsed = await send(
                    client,
                    target.url,
                    target.secret,
                    event,
                    target.include_answers,
                    private_ok=self.private_ok,
                )
                attempts += 1
                ok = error is None
                async with conn.transaction():
                    await q.log_attempt(
                        conn,
                        target.id,
                        event,
                        attempts,
                        manual=False,
                        status_code=status,
                        error=error,
                        delivered=ok,
                        duration_ms=elapsed,
                    )
                    if ok:
                        await q.delivered(conn, target.id, event)
                    else:
                        paused = await q.failed(
                            conn,
                            target.id,
                            retry_delay(attempts, self.retry_base),
                            self.pause_after,
                        )
                        if paused:
                            log.warning("webhook %s paused after failing too long", target.id)
                if not ok:
                    return
                attempts = 0


def lifespan(
    dsn: str,
    *,
    retry_base: float,
    pause_after: float,
    poll: float,
    private_ok: bool = False,
    keep_days: float = 30.0,
) -> Any:
    """Runs the worker while the app runs (after the pool exists: app.state.pool)."""

    @asynccontextmanager
    async def running(app: Litestar) -> AsyncGenerator[None, None]:
        worker = Worker(
            dsn,
            app.state.pool,
            retry_base=retry_base,
            pause_after=pause_after,
            poll=poll,
            private_ok=private_ok,
            keep_days=keep_days,
        )
        app.state.webhook_worker = worker
        task = asyncio.create_task(worker.run(), name="webhook-worker")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return running
