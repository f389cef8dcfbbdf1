"""Where a pushed and a single submission's time goes (issue 15): shares of the API workers'
CPU samples by part of the write path, and of PostgreSQL's client backends by what they are
doing, under the load of ``bench write`` (8 push clients × 100 per batch; 64 single clients).

- **API**: py-spy (a sampling profiler, a bench dependency) attached to every worker of a
  granian server for the measured seconds. Each sample is given to the part of the write
  path of its innermost frame that has one (decode, validation, content hash, counter
  deltas, database driver, sign-in, logs and metrics), else to the web framework and the
  server (Litestar, granian, the event loop). Idle samples are not taken.
- **PostgreSQL**: ``pg_stat_activity`` read every 20 ms; each busy client backend counts as
  working on the CPU (no wait event), waiting for a lock, for the disk (WAL flushes) or for
  the API within its transaction (``ClientRead`` while idle in transaction).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from api.db import connect
from bench import Result
from bench.env import DATA_DIR, Context, Server, serve
from bench.sync import (
    PASSWORD,
    PUSH_CLIENTS,
    PUSH_WARD,
    SINGLE_CLIENTS,
    _clients,
    _collector,
    _push_check,
    _single_check,
    push_bodies,
    single_bodies,
)
from bench.write_path import Pool

T = TypeVar("T")
NAME = "write_profile"
TITLE = "Where the write path's time goes: API profile and PostgreSQL activity shares"
PHONE = "+84910000031"

# Parts of the write path, by a frame's file or function. A sample goes to the part of its
# innermost frame that has one: the work it was doing. Middleware frames (metrics, the card
# cache) match none: they wrap every request, and a sample stopped at their ``await`` is the
# event loop resuming the request, not their own work.
PARTS: list[tuple[str, Callable[[str], bool]]] = [
    ("decode (msgspec, per item)", lambda f: "decode_item" in f or "_decode_error" in f),
    ("validation (compiled rules)", lambda f: "api/answers.py" in f),
    ("content hash", lambda f: "content_hash" in f),
    ("counter deltas (catalog rules)", lambda f: "<indicator catalog>" in f or "Tally" in f),
    ("database driver (asyncpg)", lambda f: "asyncpg" in f),
    ("sign-in (JWT)", lambda f: "jwt" in f or "api/auth.py" in f),
    (
        "logs and metrics",
        lambda f: "prometheus_client" in f or "api/logs.py" in f or "logging/" in f,
    ),
    ("ingest's own Python (classify, rows, results)", lambda f: "api/ingest.py" in f),
    ("queries' own Python (arguments, rows)", lambda f: "api/queries/" in f),
    ("push envelope and route", lambda f: "api/routes/sync.py" in f),
]
FRAMEWORK = "web framework, server and event loop"


def part_of(stack: str) -> str:
    """The part of the innermost frame that has one; else the framework's (Litestar, granian,
    the event loop, and native code with no Python frame at all)."""
    for frame in reversed(stack.split(";")):
        for name, matches in PARTS:
            if matches(frame):
                return name
    return FRAMEWORK


def shares(path: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    if not path.exists():
        return found
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            found[part_of(stack)] += int(count)
    return found


def workers(server: Server) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == server.pid:
                    found.append(int(entry.name))
    return found


ACTIVITY = """
    SELECT CASE
             WHEN state = 'idle in transaction' THEN 'waiting for the API in a transaction'
             WHEN wait_event_type IS NULL THEN 'on the CPU'
             WHEN wait_event_type = 'Lock' THEN 'waiting for a lock (' || wait_event || ')'
             WHEN wait_event IN ('WALSync', 'WALWrite', 'WalSync') THEN 'writing the WAL (disk)'
             WHEN wait_event_type = 'LWLock' THEN 'internal lock (' || wait_event || ')'
             ELSE wait_event_type || ':' || wait_event
           END
    FROM pg_stat_activity
    WHERE datname = current_database() AND backend_type = 'client backend'
      AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')
      AND application_name = 'congdongso'"""


async def activity(dsn: str, stop: asyncio.Event) -> Counter[str]:
    found: Counter[str] = Counter()
    conn = await connect(dsn)
    try:
        while not stop.is_set():
            found.update(row[0] for row in await conn.fetch(ACTIVITY))
            await asyncio.sleep(0.02)
    finally:
        await conn.close()
    return found


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


async def profiled(
    ctx: Context, server: Server, seconds: float, load: Awaitable[T], folder: Path
) -> tuple[T, Counter[str], Counter[str]]:
    """``load``'s result, and the API's and PostgreSQL's shares while it ran (py-spy's raw
    stacks are left in ``folder``, one file per worker, for a flame graph)."""
    spy = py_spy()
    assert spy is not None
    await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
    await asyncio.to_thread(folder.mkdir, parents=True)
    spies = [
        await asyncio.create_subprocess_exec(
            spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
            "--format", "raw", "--nonblocking", "-o", str(folder / f"{pid}.txt"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for pid in workers(server)
    ]  # fmt: skip
    stop = asyncio.Event()
    sampler = asyncio.create_task(activity(ctx.dsn, stop))
    result = await load
    stop.set()
    database = await sampler
    for process in spies:
        await process.wait()
    api: Counter[str] = Counter()
    for path in await asyncio.to_thread(lambda: list(folder.glob("*.txt"))):
        api += shares(path)
    return result, api, database


def as_results(kind: str, side: str, found: Counter[str]) -> list[Result]:
    total = sum(found.values()) or 1
    return [
        Result(
            label=f"{kind}, {side}: {name}",
            value=100 * count / total,
            unit="%",
            note=f"{count} of {total} samples",
        )
        for name, count in found.most_common()
    ]


async def run(ctx: Context) -> list[Result]:
    if py_spy() is None:
        raise RuntimeError("py-spy is missing: make install (it is a bench dependency)")
    seconds = ctx.seconds(10, 3)
    rng = random.Random(31)
    conn: asyncpg.Connection = await connect(ctx.dsn)
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", PUSH_WARD)
        if not await conn.fetchval("SELECT 1 FROM app_user WHERE phone = $1", PHONE):
            await _collector(conn, area, PHONE)
    finally:
        await conn.close()
    pool = Pool(ctx.dsn, area)
    results: list[Result] = []
    async with serve(ctx, "granian", label="write-profile") as server:
        token = await server.login(PHONE, PASSWORD)
        fresh = await pool.top_up(int(15_000 * (seconds + 2)))

        push_body = push_bodies(fresh, rng)

        single_body = single_bodies(fresh, rng)

        for kind, path, body, check, clients in (
            ("push", "/api/v1/sync/push", push_body, _push_check, PUSH_CLIENTS),
            ("single", "/api/v1/submissions", single_body, _single_check, SINGLE_CLIENTS),
        ):
            await _clients(server, token, path, body, check, connections=2, duration=1)
            started = time.perf_counter()
            load = _clients(server, token, path, body, check, connections=clients, duration=seconds)
            folder = DATA_DIR / f"profile-{kind}"
            (_, stored), api, database = await profiled(ctx, server, seconds, load, folder)
            rate = stored / (time.perf_counter() - started)
            print(f"  {kind}: {stored:,} stored ({rate:,.0f}/s) while profiled; stacks in {folder}")
            results += as_results(kind, "API workers", api)
            results += as_results(kind, "PostgreSQL backends", database)
    return results
