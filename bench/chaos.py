"""``python -m bench.chaos`` (``make chaos``): the API under faults and hostile clients.

Loopback only, one command, about five minutes. ``congdongso serve`` (granian, two workers,
respawn on) runs against a fresh ``cds_chaos`` database on the embedded PostgreSQL
(bench/env.py). Each scenario runs with its own fault while clients push and a probe reads
``GET /me``; then it reports:

- items **sent**, **acknowledged** (a 200 whose result says accepted or duplicate),
  **stored** (of those sent, found in the database), **lost** (acknowledged, not stored)
  and **duplicated** (stored more than once: the same item under two ids, or counted twice,
  which the final counters-versus-rebuild check also catches);
- **503** answers (expected while the database is down) and **other 5xx** (never expected),
  as the clients saw them, and **500** lines in the server's access log;
- connections **idle in transaction** (for over a second) 2 s after the clients left;
- the probe's **p99** and the scenario's own figure (downtime, worker back after, …).

Pushing clients retry a batch (same ids) after a 503 or a broken connection, as the app
does, so every item ends acknowledged unless the run ends first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from api import embedded
from api.db import connect
from api.passwords import Passwords
from bench.env import BIN, CELL_KEY_SECRET, DATA_DIR, PGDATA, ROOT, Context, free_port, setup
from bench.loadgen import Target, fetch, read_response
from bench.sync import submission

DATABASE = "cds_chaos"
WARD = "14797"  # Phường Hạc Thành: the pushing teams' ward
PASSWORD = "chaos-password-1"
WORKERS = 2
PUSHERS = 8
BATCH = 20
EXPORTERS = 15  # admins, two national exports each: 30 exports
RESULTS = ROOT / "bench" / "results" / "chaos.md"


# The service ---------------------------------------------------------------------------


@dataclass
class Service:
    proc: asyncio.subprocess.Process
    port: int
    log: Path

    def target(
        self, method: str, path: str, token: str | None = None, body: bytes | None = None
    ) -> Target:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return Target(self.port, method, path, headers, body)

    def workers(self) -> list[int]:
        """Live worker processes of the serving process (zombies excluded)."""
        alive = []
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        for child in path.read_text().split():
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(int(child))
        return alive

    def log_offset(self) -> int:
        return self.log.stat().st_size

    def statuses_since(self, offset: int) -> dict[int, int]:
        """Access-log statuses written since ``offset`` (one JSON object per line)."""
        counts: dict[int, int] = {}
        with self.log.open("rb") as f:
            f.seek(offset)
            for line in f:
                if b'"congdongso.access"' not in line:
                    continue
                with contextlib.suppress(ValueError):
                    status = int(json.loads(line)["status"])
                    counts[status] = counts.get(status, 0) + 1
        return counts


async def start_service(ctx: Context) -> Service:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONGDONGSO_")}
    env |= {
        "DATABASE_URL": ctx.dsn,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "CONGDONGSO_WORKERS": str(WORKERS),
        "CONGDONGSO_LOG_LEVEL": "INFO",  # the access log: statuses as the server saw them
        "CONGDONGSO_DATA_DIR": str(DATA_DIR),
        "CONGDONGSO_CELL_KEY_SECRET": CELL_KEY_SECRET,
        "CONGDONGSO_ARGON2_TIME_COST": "1",
        "CONGDONGSO_ARGON2_MEMORY_KIB": "1024",
        "CONGDONGSO_ARGON2_PARALLELISM": "1",
    }
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    log = DATA_DIR / "chaos.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            str(BIN / "congdongso"),
            "serve",
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Service(proc, port, log)
    give_up = time.monotonic() + 60
    while not (await ready(service) and len(service.workers()) == WORKERS):
        if proc.returncode is not None or time.monotonic() > give_up:
            raise RuntimeError(f"the service did not start; see {log}")
        await asyncio.sleep(0.2)
    return service


async def stop_service(service: Service) -> None:
    if service.proc.returncode is None:
        service.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(service.proc.wait(), 20)
        except TimeoutError:
            service.proc.kill()
            await service.proc.wait()


async def ready(service: Service) -> bool:
    try:
        status, _ = await asyncio.wait_for(fetch(service.target("GET", "/readyz")), 3)
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
        return False
    return status == 200


# The database ---------------------------------------------------------------------------


def pg_ctl(*args: str) -> None:
    """Run pg_ctl on the embedded server (as the user it runs as), then let this process's
    handle follow the new postmaster so it still stops it at exit."""
    from pgserver._commands import pg_ctl as run
    from pgserver.utils import PostmasterInfo

    server = embedded._servers[PGDATA.resolve()]
    run([*args, "-l", str(server.log)], pgdata=server.pgdata, user=server.system_user, timeout=120)
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)


async def idle_in_transaction(dsn: str) -> int:
    """Sessions sitting idle inside a transaction for over a second: left behind. (A push
    being stored is idle in transaction for milliseconds between its statements; the
    server may still be working through what the clients sent before they left.)"""
    conn = await asyncpg.connect(dsn)
    try:
        found: int = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND state LIKE 'idle in transaction%'
                 AND now() - state_change > interval '1 second'"""
        )
        return found
    finally:
        await conn.close()


async def stored_of(dsn: str, ids: list[uuid.UUID]) -> tuple[int, int]:
    """How many of ``ids`` are stored, and how many household states were stored twice
    (two submissions with the same content for one household: an item stored under two
    ids)."""
    conn = await asyncpg.connect(dsn)
    try:
        stored: int = await conn.fetchval(
            "SELECT count(*) FROM submission WHERE id = ANY($1::uuid[])", ids
        )
        twice: int = await conn.fetchval(
            """SELECT coalesce(sum(n - 1), 0) FROM (
                   SELECT count(*) AS n FROM submission
                   WHERE id = ANY($1::uuid[]) GROUP BY household_id, content_hash) AS s
               WHERE n > 1""",
            ids,
        )
        return stored, twice
    finally:
        await conn.close()


async def prepare(ctx: Context, households: int) -> tuple[list[uuid.UUID], list[str], str, str]:
    """Fresh households in the pushing ward, a team member per pusher (and one for the
    probe), and the exporting admins. Returns households, pusher phones, probe phone and
    the first admin's phone."""
    conn = await connect(ctx.dsn)
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", WARD)
        ids = [uuid.uuid4() for _ in range(households)]
        await conn.copy_records_to_table(
            "household",
            records=[(i, area["id"], area["province_id"]) for i in ids],
            columns=["id", "ward_id", "province_id"],
        )
        team = uuid.uuid4()
        await conn.execute(
            "INSERT INTO team (id, ward_id, province_id, name) VALUES ($1, $2, $3, 'Chaos')",
            team,
            area["id"],
            area["province_id"],
        )
        cheap = await Passwords(1, 1024, 1).hash(PASSWORD)
        phones = [f"+8491{n:07d}" for n in range(PUSHERS + 1)]
        await conn.executemany(
            """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id, team_id)
               VALUES ($1, $2, $3, 'team_member', $4, $5, $6)""",
            [(uuid.uuid4(), p, cheap, area["id"], area["province_id"], team) for p in phones],
        )
        admins = [f"+8492{n:07d}" for n in range(EXPORTERS)]
        await conn.executemany(
            "INSERT INTO app_user (id, phone, password_hash, role) VALUES ($1, $2, $3, 'admin')",
            [(uuid.uuid4(), p, cheap) for p in admins],
        )
    finally:
        await conn.close()
    # The households went in by COPY, past the counters: count them once, as the API would
    # have when they were registered.
    await counters_match_rebuild(ctx, report=False)
    return ids, phones[:-1], phones[-1], admins[0]


# Clients -----------------------------------------------------------------------------------


@dataclass
class Tally:
    sent: set[uuid.UUID] = field(default_factory=set)
    acked: set[uuid.UUID] = field(default_factory=set)
    unavailable: int = 0  # 503 answers
    other_5xx: int = 0
    broken: int = 0  # connections refused, reset or cut
    latencies: list[float] = field(default_factory=list)


async def call(service: Service, payload: bytes, wait: float = 30) -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", service.port), 5)
    try:
        try:
            writer.write(payload)
        except RuntimeError as error:  # uvloop: the server closed it already (a killed worker)
            raise ConnectionResetError(str(error)) from error
        status, body, _ = await asyncio.wait_for(read_response(reader), wait)
        return status, body
    finally:
        writer.close()


class Households:
    def __init__(self, ids: list[uuid.UUID]) -> None:
        self.left = iter(ids)
        self.rng = random.Random(12)

    def batch(self, size: int) -> list[dict[str, Any]]:
        return [submission(h, self.rng) for _, h in zip(range(size), self.left, strict=False)]


async def push_until(
    service: Service,
    token: str,
    households: Households,
    tally: Tally,
    stop: asyncio.Event,
    batch: int = BATCH,
) -> None:
    """Push new batches until ``stop``; retry each batch (same ids) until it is answered."""
    while not stop.is_set():
        items = households.batch(batch)
        if not items:
            return
        tally.sent |= {uuid.UUID(i["id"]) for i in items}
        body = msgspec.json.encode({"submissions": items})
        payload = service.target("POST", "/api/v1/sync/push", token, body).request_bytes()
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            started = time.perf_counter()
            try:
                status, answer = await call(service, payload)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                tally.broken += 1
                await asyncio.sleep(0.2)
                continue
            tally.latencies.append(time.perf_counter() - started)
            if status == 200:
                for result in msgspec.json.decode(answer)["results"]:
                    if result["status"] in ("accepted", "duplicate"):
                        tally.acked.add(uuid.UUID(result["id"]))
                break
            if status == 503:
                tally.unavailable += 1
            elif status >= 500:
                tally.other_5xx += 1
            await asyncio.sleep(0.2)


async def probe(service: Service, token: str, stop: asyncio.Event, tally: Tally) -> None:
    """``GET /me`` every 50 ms on a fresh connection; latency of each answer."""
    payload = service.target("GET", "/api/v1/me", token).request_bytes()
    while not stop.is_set():
        started = time.perf_counter()
        try:
            status, _ = await call(service, payload, wait=30)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            tally.broken += 1
        else:
            tally.latencies.append(time.perf_counter() - started)
            if status == 503:
                tally.unavailable += 1
            elif status >= 500:
                tally.other_5xx += 1
        await asyncio.sleep(0.05)


def p99_ms(latencies: list[float]) -> float:
    if not latencies:
        return float("nan")
    ordered = sorted(latencies)
    return 1000 * ordered[max(1, math.ceil(0.99 * len(ordered))) - 1]


# Scenarios -----------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    sent: int
    acked: int
    stored: int
    lost: int
    duplicated: int
    unavailable: int
    other_5xx: int
    logged_500: int
    idle_in_tx: int
    probe_p99: float
    figure: str


@dataclass
class Run:
    ctx: Context
    service: Service
    households: Households
    tokens: list[str]
    probe_token: str
    admin_tokens: list[str]
    rows: list[Row] = field(default_factory=list)

    async def scenario(
        self,
        name: str,
        fault: Callable[[], Awaitable[str]],
        *,
        pushers: int = PUSHERS,
        batch: int = BATCH,
        seconds: float = 12,
    ) -> None:
        """Pushers and the probe run for ``seconds`` while ``fault`` runs; then the pushers
        finish their batch, the clients leave, and the figures are taken."""
        print(f"\n== {name}", flush=True)
        offset = self.service.log_offset()
        stop = asyncio.Event()
        pushed, probed = Tally(), Tally()
        clients = [
            asyncio.create_task(
                push_until(
                    self.service,
                    self.tokens[i % len(self.tokens)],
                    self.households,
                    pushed,
                    stop,
                    batch,
                )
            )
            for i in range(pushers)
        ]
        prober = asyncio.create_task(probe(self.service, self.probe_token, stop, probed))
        started = time.monotonic()
        figure = await fault()
        while (left := seconds - (time.monotonic() - started)) > 0:
            print(f"  {len(pushed.acked):,} acknowledged, {left:.0f} s left", flush=True)
            await asyncio.sleep(min(left, 3))
        stop.set()
        await asyncio.gather(*clients, prober)
        await asyncio.sleep(2)  # the clients have left: nothing may stay open
        idle = await idle_in_transaction(self.ctx.dsn)
        stored, twice = await stored_of(self.ctx.dsn, list(pushed.sent))
        lost = len(pushed.acked - await _stored_set(self.ctx.dsn, list(pushed.acked)))
        statuses = self.service.statuses_since(offset)
        row = Row(
            scenario=name,
            sent=len(pushed.sent),
            acked=len(pushed.acked),
            stored=stored,
            lost=lost,
            duplicated=twice,
            unavailable=pushed.unavailable + probed.unavailable,
            other_5xx=pushed.other_5xx + probed.other_5xx,
            logged_500=sum(n for s, n in statuses.items() if s >= 500 and s != 503),
            idle_in_tx=idle,
            probe_p99=p99_ms(probed.latencies),
            figure=figure,
        )
        self.rows.append(row)
        print(f"  {_line(row)}", flush=True)


async def _stored_set(dsn: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id FROM submission WHERE id = ANY($1::uuid[])", ids)
        return {row["id"] for row in rows}
    finally:
        await conn.close()


async def no_fault() -> str:
    return "baseline, no fault"


def restart(mode: str, run: Run) -> Callable[[], Awaitable[str]]:
    async def fault() -> str:
        await asyncio.sleep(3)
        began = time.monotonic()
        await asyncio.to_thread(pg_ctl, "-w", "-m", mode, "restart")
        while not await ready(run.service):  # noqa: ASYNC110  (polling a server)
            await asyncio.sleep(0.05)
        return f"answering again {time.monotonic() - began:.1f} s after the restart began"

    return fault


def terminate(run: Run) -> Callable[[], Awaitable[str]]:
    async def fault() -> str:
        killed = 0
        conn = await asyncpg.connect(run.ctx.dsn)
        try:
            for _ in range(4):
                await asyncio.sleep(2)
                killed += await conn.fetchval(
                    """SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
                       FROM pg_stat_activity
                       WHERE datname = current_database() AND pid <> pg_backend_pid()
                         AND application_name LIKE 'congdongso%'"""
                )
        finally:
            await conn.close()
        return f"{killed} backends terminated in 4 rounds"

    return fault


def kill_worker(run: Run) -> Callable[[], Awaitable[str]]:
    async def fault() -> str:
        await asyncio.sleep(3)  # batches of 100 are in flight
        victim = run.service.workers()[0]
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        while victim in run.service.workers() or len(run.service.workers()) < WORKERS:
            if time.monotonic() - killed > 30:
                return "worker NOT replaced within 30 s"
            await asyncio.sleep(0.05)
        while not await ready(run.service):  # noqa: ASYNC110  (polling a server)
            await asyncio.sleep(0.05)
        return f"worker replaced, service ready {time.monotonic() - killed:.1f} s after SIGKILL"

    return fault


def table_lock(run: Run) -> Callable[[], Awaitable[str]]:
    async def fault() -> str:
        await asyncio.sleep(2)
        conn = await asyncpg.connect(run.ctx.dsn)
        try:
            async with conn.transaction():
                await conn.execute("LOCK TABLE household IN ACCESS EXCLUSIVE MODE")
                # The pushers' answers while the lock is held: 503 within the lock timeout.
                began = time.perf_counter()
                status, _ = await call(
                    run.service,
                    run.service.target(
                        "POST",
                        "/api/v1/sync/push",
                        run.tokens[0],
                        msgspec.json.encode({"submissions": run.households.batch(1)}),
                    ).request_bytes(),
                )
                answered = time.perf_counter() - began
                await asyncio.sleep(max(0.0, 8 - answered))
        finally:
            await conn.close()
        return f"LOCK TABLE household for 8 s: a push answered {status} in {answered:.1f} s"

    return fault


async def disconnects(run: Run, clients: int) -> None:
    """Half the clients send half a push and leave; the other half send a whole push and
    leave without reading the answer. Then every whole push is retried, read this time."""
    print(f"\n== {clients:,} clients that leave", flush=True)
    offset = run.service.log_offset()
    stop = asyncio.Event()
    probed = Tally()
    prober = asyncio.create_task(probe(run.service, run.probe_token, stop, probed))
    whole: list[bytes] = []
    sent: set[uuid.UUID] = set()
    limit = asyncio.Semaphore(100)

    async def leave(index: int) -> None:
        items = run.households.batch(5)
        body = msgspec.json.encode({"submissions": items})
        payload = run.service.target(
            "POST", "/api/v1/sync/push", run.tokens[index % len(run.tokens)], body
        ).request_bytes()
        cut = index % 2 == 0
        if not cut:
            whole.append(payload)
            sent.update(uuid.UUID(i["id"]) for i in items)
        async with limit:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", run.service.port)
            except OSError:
                return
            writer.write(payload[: len(payload) - len(body) // 2] if cut else payload)
            with contextlib.suppress(OSError):
                await writer.drain()
            if not cut:
                await asyncio.sleep(0.02)  # the push is on its way; the reply is not read
            writer.transport.abort()  # a reset, as a phone losing its signal

    began = time.monotonic()
    await asyncio.gather(*(leave(i) for i in range(clients)))
    left_after = time.monotonic() - began
    print(
        f"  {clients:,} clients left in {left_after:.1f} s; retrying the whole pushes", flush=True
    )
    await asyncio.sleep(2)
    idle = await idle_in_transaction(run.ctx.dsn)
    tally = Tally()
    for payload in whole:
        status, answer = await call(run.service, payload)
        if status == 200:
            for result in msgspec.json.decode(answer)["results"]:
                if result["status"] in ("accepted", "duplicate"):
                    tally.acked.add(uuid.UUID(result["id"]))
        elif status >= 500:
            tally.other_5xx += 1
    stop.set()
    await prober
    stored, twice = await stored_of(run.ctx.dsn, list(sent))
    statuses = run.service.statuses_since(offset)
    row = Row(
        scenario=f"{clients:,} clients leave mid-body / before the reply",
        sent=len(sent),
        acked=len(tally.acked),
        stored=stored,
        lost=len(tally.acked - await _stored_set(run.ctx.dsn, list(tally.acked))),
        duplicated=twice,
        unavailable=probed.unavailable,
        other_5xx=tally.other_5xx + probed.other_5xx,
        logged_500=sum(n for s, n in statuses.items() if s >= 500 and s != 503),
        idle_in_tx=idle,
        probe_p99=p99_ms(probed.latencies),
        figure=f"{statuses.get(499, 0):,} logged as 499",
    )
    run.rows.append(row)
    print(f"  {_line(row)}", flush=True)


async def exports(run: Run, streaming: int, stalled: int, seconds: float) -> None:
    """National CSV exports: ``streaming`` read as fast as they can, ``stalled`` read the
    headers and stop; a probe reads /me meanwhile. Then every client leaves."""
    print(f"\n== {streaming + stalled} national exports ({stalled} stalled)", flush=True)
    offset = run.service.log_offset()
    quiet = Tally()  # the same probe with nothing else running: the baseline
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(run.service, run.probe_token, stop, quiet))
    await asyncio.sleep(5)
    stop.set()
    await prober
    stop = asyncio.Event()
    probed, pushed = Tally(), Tally()
    prober = asyncio.create_task(probe(run.service, run.probe_token, stop, probed))
    received = [0] * (streaming + stalled)
    statuses: list[int] = []
    writers: list[asyncio.StreamWriter] = []

    async def export(index: int) -> None:
        token = run.admin_tokens[index % len(run.admin_tokens)]
        payload = run.service.target(
            "GET", "/api/v1/stats/areas/VN/export.csv", token
        ).request_bytes()
        reader, writer = await asyncio.open_connection("127.0.0.1", run.service.port, limit=1 << 16)
        if index >= streaming:  # a stalled reader: a small window that nobody empties
            sock = writer.get_extra_info("socket")
            sock.setsockopt(__import__("socket").SOL_SOCKET, __import__("socket").SO_RCVBUF, 4096)
        writers.append(writer)
        writer.write(payload)
        head = await reader.readuntil(b"\r\n\r\n")
        statuses.append(int(head[9:12]))
        if index >= streaming:
            writer.transport.pause_reading()
            await stop.wait()
            return
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while not stop.is_set() and (chunk := await reader.read(1 << 16)):
                received[index] += len(chunk)

    tasks = [asyncio.create_task(export(i)) for i in range(streaming + stalled)]
    began = time.monotonic()
    while (left := seconds - (time.monotonic() - began)) > 0:
        mb = sum(received) / 1e6
        print(
            f"  {mb:,.0f} MB exported, /me p99 so far {p99_ms(probed.latencies):.0f} ms, "
            f"{left:.0f} s left",
            flush=True,
        )
        await asyncio.sleep(min(left, 3))
    stop.set()
    for writer in writers:
        writer.transport.abort()
    await asyncio.gather(*tasks, prober, return_exceptions=True)
    await asyncio.sleep(2)
    idle = await idle_in_transaction(run.ctx.dsn)
    busy = await _export_backends(run.ctx.dsn)
    logged = run.service.statuses_since(offset)
    stored, twice = await stored_of(run.ctx.dsn, list(pushed.sent))
    refused = sum(s == 429 for s in statuses)
    row = Row(
        scenario=f"{streaming + stalled} national exports, {stalled} stalled",
        sent=len(pushed.sent),
        acked=len(pushed.acked),
        stored=stored,
        lost=len(pushed.acked - await _stored_set(run.ctx.dsn, list(pushed.acked))),
        duplicated=twice,
        unavailable=probed.unavailable + pushed.unavailable,
        other_5xx=probed.other_5xx + pushed.other_5xx + sum(s >= 500 for s in statuses),
        logged_500=sum(n for s, n in logged.items() if s >= 500 and s != 503),
        idle_in_tx=idle,
        probe_p99=p99_ms(probed.latencies),
        figure=f"/me p99 {p99_ms(quiet.latencies):.0f} ms with nothing else running; "
        f"{sum(received) / 1e6:,.0f} MB streamed in {seconds:.0f} s, "
        f"{refused} refused (429), "
        f"{busy} export connections busy 2 s after",
    )
    run.rows.append(row)
    print(f"  {_line(row)}", flush=True)


async def _export_backends(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        found: int = await conn.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE application_name = 'congdongso-export' AND state <> 'idle'"""
        )
        return found
    finally:
        await conn.close()


async def counters_match_rebuild(ctx: Context, *, report: bool = True) -> bool:
    """The counters the pushes kept equal those recomputed from every stored submission:
    nothing was counted twice or missed."""
    from api.config import Settings
    from api.stats.catalog import load_catalog
    from api.stats.counters import rebuild
    from api.stats.keys import record_keys

    conn = await connect(ctx.dsn, work="rebuild")
    try:
        # Pushes spread each counter over shards; the rebuild writes one row: compare sums.
        snapshot = """
            SELECT area_id, measure, sum(numerator), sum(denominator),
                   sum(numerator_key), sum(denominator_key)
            FROM stat_current GROUP BY 1, 2
            HAVING sum(numerator) <> 0 OR sum(denominator) <> 0
                OR sum(numerator_key) <> 0 OR sum(denominator_key) <> 0
            ORDER BY 1, 2"""
        before = [tuple(r) for r in await conn.fetch(snapshot)]
        catalog = await load_catalog(conn, record_keys(Settings(cell_key_secret=CELL_KEY_SECRET)))
        await rebuild(conn, catalog)
        after = [tuple(r) for r in await conn.fetch(snapshot)]
        if before != after and report:
            differ = set(before) ^ set(after)
            print(f"  {len(differ)} counters differ, e.g. {sorted(differ, key=str)[:4]}")
        return before == after
    finally:
        await conn.close()


# The report --------------------------------------------------------------------------------

COLUMNS = (
    "Scenario", "Sent", "Acked", "Stored", "Lost", "Dup.", "503", "Other 5xx",
    "500 logged", "Idle in tx", "/me p99", "Figure",
)  # fmt: skip


def _cells(row: Row) -> list[str]:
    return [
        row.scenario,
        f"{row.sent:,}",
        f"{row.acked:,}",
        f"{row.stored:,}",
        str(row.lost),
        str(row.duplicated),
        str(row.unavailable),
        str(row.other_5xx),
        str(row.logged_500),
        str(row.idle_in_tx),
        f"{row.probe_p99:.0f} ms",
        row.figure,
    ]


def _line(row: Row) -> str:
    return ", ".join(f"{c.lower()} {v}" for c, v in zip(COLUMNS[1:], _cells(row)[1:], strict=True))


def markdown(rows: list[Row], info: dict[str, str], verdict: list[str]) -> str:
    lines = ["| Machine | |", "|---|---|", *[f"| {k} | {v} |" for k, v in info.items()], ""]
    lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    return "\n".join([*lines, "", *[f"- {v}" for v in verdict], ""])


def print_table(rows: list[Row]) -> None:
    cells = [list(COLUMNS), *[_cells(row) for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS) - 1)]
    for r in cells:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=False))
            )
            + "  "
            + r[-1]
        )


async def main_async(quick: bool) -> int:
    from bench.__main__ import machine

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    print("setting up the chaos database …", flush=True)
    ctx = await setup(quick, database=DATABASE)
    if os.environ.get("DATABASE_URL"):
        print("DATABASE_URL is set: the restart scenarios need the embedded server; skipped")
    ids, pushers, prober, _ = await prepare(ctx, 200_000)
    households = Households(ids)
    service = await start_service(ctx)
    try:
        tokens = [await _login(service, p) for p in pushers]
        admin_tokens = [await _login(service, f"+8492{n:07d}") for n in range(EXPORTERS)]
        run = Run(ctx, service, households, tokens, await _login(service, prober), admin_tokens)
        seconds = 6 if quick else 12
        await run.scenario("baseline (no fault)", no_fault, seconds=seconds)
        await disconnects(run, 200 if quick else 1000)
        if not os.environ.get("DATABASE_URL"):
            await run.scenario("PostgreSQL fast restart", restart("fast", run), seconds=seconds + 3)
            await run.scenario(
                "PostgreSQL immediate restart", restart("immediate", run), seconds=seconds + 3
            )
        await run.scenario("backends terminated", terminate(run), seconds=seconds)
        await run.scenario("worker SIGKILL mid-batch", kill_worker(run), batch=100, seconds=seconds)
        await exports(run, 6 if quick else 20, 3 if quick else 10, 10 if quick else 30)
        await run.scenario("outside LOCK TABLE household", table_lock(run), seconds=seconds)
        print("\n== counters against a full rebuild", flush=True)
        matched = await counters_match_rebuild(ctx)
    finally:
        await stop_service(service)
    rows = run.rows
    took = time.perf_counter() - started
    info = machine(ctx, load_before) | {"Total time": f"{took:.0f} s"}
    info["Servers"] = f"congdongso serve (granian), {WORKERS} workers, respawn on"
    export_row = next(r for r in rows if "exports" in r.scenario)
    verdict = [
        f"acknowledged items lost: {sum(r.lost for r in rows)}",
        f"items stored twice: {sum(r.duplicated for r in rows)}",
        f"counters equal a full rebuild: {'yes' if matched else 'NO'}",
        f"5xx other than 503: {sum(r.other_5xx for r in rows)} seen by clients, "
        f"{sum(r.logged_500 for r in rows)} in the access log",
        "connections idle in transaction 2 s after the clients left: "
        f"{sum(r.idle_in_tx for r in rows)}",
        f"GET /me p99 during the export storm: {export_row.probe_p99:.0f} ms (goal < 200 ms)",
    ]
    print("\n== Summary")
    for key, value in info.items():
        print(f"  {key + ':':<14}{value}")
    print()
    print_table(rows)
    print()
    for v in verdict:
        print(f"  {v}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("# Chaos results\n\n" + markdown(rows, info, verdict))
    print(f"\ntotal {took:.0f} s; written to {RESULTS}")
    failed = (
        any(r.lost or r.duplicated or r.other_5xx or r.idle_in_tx for r in rows)
        or not matched
        or export_row.probe_p99 >= 200
    )
    return 1 if failed else 0


async def _login(service: Service, phone: str) -> str:
    body = msgspec.json.encode({"phone": phone, "password": PASSWORD})
    status, answer = await fetch(service.target("POST", "/api/v1/auth/login", body=body))
    if status != 200:
        raise RuntimeError(f"login failed with {status}: {answer[:300]!r}")
    token: str = msgspec.json.decode(answer)["accessToken"]
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer clients, shorter scenarios")
    args = parser.parse_args(argv)
    print(f"chaos run, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, loopback only", flush=True)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main_async(args.quick))
    return uvloop.run(main_async(args.quick))


if __name__ == "__main__":
    sys.exit(main())
