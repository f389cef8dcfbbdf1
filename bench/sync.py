"""Sync: POST /sync/push batches vs raw COPY, single POST /submissions, GET /sync/pull.

Every submission is a new, valid ``household_digital`` submission (3–5 members) for a fresh
household created in SQL beforehand, so each pushed item is ``accepted``. The COPY baseline
stores the same number of equivalent rows with ``copy_records_to_table`` (no HTTP, no
validation, no head move) in batches of the same size on as many connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from api.db import connect
from api.passwords import Passwords
from bench import Result
from bench.env import Context, Server, serve
from bench.loadgen import LoadResult, Target, read_response

NAME = "sync"
TITLE = "Sync: push vs raw COPY, single submissions, pull (granian)"

PUSH_WARD = "14797"  # Phường Hạc Thành: pushes and single submissions
PULL_WARD = "14758"  # Phường Hàm Rồng: 5,000 households with a current submission
SURVEY = uuid.UUID("5e000000-0000-4000-8000-000000000001")
NOTICE = "2025-1"
BATCH = 100
PUSH_CLIENTS = 8
SINGLE_CLIENTS = 64
PASSWORD = "bench-password-2"
COLLECTED = "2025-07-01T09:30:00+07:00"
COLLECTED_AT = datetime.fromisoformat(COLLECTED)
SUBMISSION_COLUMNS = [
    "id", "household_id", "survey_id", "survey_version", "province_id", "ward_id",
    "collected_at", "submitted_by", "notice_version", "supersedes", "answers", "members",
    "content_hash", "counted_at",
]  # fmt: skip


def _member(rng: random.Random) -> dict[str, Any]:
    return {
        "memberId": str(uuid.uuid4()),
        "answers": {
            "birth_year": rng.randint(1940, 2020),
            "smartphone": True,
            "vneid": "level2",
            "cloud_accounts": 1,
            "digital_signature": False,
            "epay": True,
            "eps_used": False,
            "skills_trained": False,
        },
    }


def submission(household_id: uuid.UUID, rng: random.Random) -> dict[str, Any]:
    """A valid household_digital submission (as the API takes it) with 3–5 members."""
    members = [_member(rng) for _ in range(rng.randint(3, 5))]
    return {
        "id": str(uuid.uuid4()),
        "surveyId": str(SURVEY),
        "surveyVersion": 1,
        "householdId": str(household_id),
        "collectedAt": COLLECTED,
        "consent": {"given": True, "noticeVersion": NOTICE},
        "answers": {"hh_size": len(members), "hh_broadband": "fibre", "hh_smart_devices": 3},
        "members": members,
    }


def push_bodies(fresh: Iterator[uuid.UUID], rng: random.Random) -> Callable[[], bytes | None]:
    """Push bodies of BATCH new submissions, one household of ``fresh`` each, until they run
    out (then None)."""

    def body() -> bytes | None:
        items = []
        for household_id in fresh:
            items.append(submission(household_id, rng))
            if len(items) == BATCH:
                return msgspec.json.encode({"submissions": items})
        return None

    return body


def single_bodies(fresh: Iterator[uuid.UUID], rng: random.Random) -> Callable[[], bytes | None]:
    """Single submission bodies, one household of ``fresh`` each, until they run out."""

    def body() -> bytes | None:
        household_id = next(fresh, None)
        return msgspec.json.encode(submission(household_id, rng)) if household_id else None

    return body


def record(item: dict[str, Any], area: asyncpg.Record, user_id: uuid.UUID) -> tuple[Any, ...]:
    """The submission row for ``item`` as stored (the columns of SUBMISSION_COLUMNS)."""
    return (
        uuid.UUID(item["id"]),
        uuid.UUID(item["householdId"]),
        SURVEY,
        1,
        area["province_id"],
        area["id"],
        COLLECTED_AT,
        user_id,
        NOTICE,
        None,
        item["answers"],
        item["members"],  # stored as the API takes them (msgspec.to_builtins: camelCase)
        hashlib.blake2b(item["id"].encode(), digest_size=16).digest(),
        COLLECTED_AT,  # counted from its collection: a first visit
    )


async def _households(
    conn: asyncpg.Connection, area: asyncpg.Record, count: int
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    await conn.copy_records_to_table(
        "household",
        records=[(i, area["id"], area["province_id"]) for i in ids],
        columns=["id", "ward_id", "province_id"],
    )
    return ids


async def _collector(conn: asyncpg.Connection, area: asyncpg.Record, phone: str) -> uuid.UUID:
    team_id, user_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO team (id, ward_id, province_id, name) VALUES ($1, $2, $3, 'Bench')",
        team_id,
        area["id"],
        area["province_id"],
    )
    await conn.execute(
        """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id, team_id)
           VALUES ($1, $2, $3, 'team_member', $4, $5, $6)""",
        user_id,
        phone,
        await Passwords(1, 1024, 1).hash(PASSWORD),  # cheap: logins are not measured here
        area["id"],
        area["province_id"],
        team_id,
    )
    return user_id


async def _clients(
    server: Server,
    token: str,
    path: str,
    bodies: Callable[[], bytes | None],
    check: Callable[[int, bytes], int],
    *,
    connections: int,
    duration: float,
) -> tuple[LoadResult, int]:
    """A closed loop like bench.loadgen.load, but each request gets a new body from
    ``bodies`` (None: stop). ``check`` returns how many items a response stored."""
    deadline = time.perf_counter() + duration
    latencies: list[float] = []
    stored = errors = 0

    async def one() -> None:
        nonlocal stored, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            while time.perf_counter() < deadline and (body := bodies()) is not None:
                payload = server.target("POST", path, token=token, body=body).request_bytes()
                started = time.perf_counter()
                writer.write(payload)
                status, answer, _ = await read_response(reader)
                latencies.append(time.perf_counter() - started)
                count = check(status, answer)
                stored += count
                errors += count == 0
        finally:
            writer.close()

    cpu, wall = time.process_time(), time.perf_counter()
    async with asyncio.timeout(duration + 60):
        await asyncio.gather(*(one() for _ in range(connections)))
    seconds = time.perf_counter() - wall
    result = LoadResult(
        requests=len(latencies),
        errors=errors,
        seconds=seconds,
        latencies=sorted(latencies),
        client_cpu=(time.process_time() - cpu) / seconds,
    )
    return result, stored


async def _sequential(target: Target, count: int) -> tuple[list[float], int]:
    """``count`` requests one after another on one keep-alive connection: seconds each and
    the size of the last body."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    payload, seconds, size = target.request_bytes(), [], 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            writer.write(payload)
            status, body, _ = await read_response(reader)
            seconds.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"{target.path}: {status} {body[:300]!r}")
            size = len(body)
    finally:
        writer.close()
    return seconds, size


def _push_check(status: int, answer: bytes) -> int:
    if status != 200:
        return 0
    results = msgspec.json.decode(answer)["results"]
    return sum(r["status"] == "accepted" for r in results)


def _single_check(status: int, answer: bytes) -> int:
    return 1 if status == 201 else 0


async def run(ctx: Context) -> list[Result]:
    duration = ctx.seconds(10, 2)
    pool_size = ctx.count(150_000, 30_000)  # fresh households for pushes and single posts
    pull_households = ctx.count(5_000, 500)
    rng = random.Random(3)
    conn = await connect(ctx.dsn)
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", PUSH_WARD)
        pull_area = await conn.fetchrow(
            "SELECT id, province_id FROM area WHERE code = $1", PULL_WARD
        )
        pusher = await _collector(conn, area, "+84910000001")
        puller = await _collector(conn, pull_area, "+84910000002")
        print(f"  creating {pool_size:,} + {pull_households:,} households …")
        fresh: Iterator[uuid.UUID] = iter(await _households(conn, area, pool_size))
        await _seed_pull_ward(conn, pull_area, puller, pull_households, rng)
    finally:
        await conn.close()

    results: list[Result] = []
    async with serve(ctx, "granian") as server:
        token = await server.login("+84910000001", PASSWORD)
        pull_token = await server.login("+84910000002", PASSWORD)

        # (a) push: batches of BATCH new submissions, PUSH_CLIENTS concurrent clients.
        push_body = push_bodies(fresh, rng)

        path = "/api/v1/sync/push"
        await _clients(server, token, path, push_body, _push_check, connections=2, duration=1)
        pushed, accepted = await _clients(
            server,
            token,
            path,
            push_body,
            _push_check,
            connections=PUSH_CLIENTS,
            duration=duration,
        )
        print(f"  push: {pushed.summary()}; {accepted:,} accepted")
        push_rate = accepted / pushed.seconds

        # The baseline: as many rows by COPY, batches of BATCH, PUSH_CLIENTS connections.
        copy_rate = await _copy_baseline(ctx, area, pusher, accepted, rng)
        print(f"  COPY: {copy_rate:,.0f} submissions/s")
        copy = Result(label="raw COPY, submissions", value=copy_rate, unit="subs/s")
        results += [
            copy,
            Result(
                label=f"POST /sync/push ({BATCH}/batch, {PUSH_CLIENTS} clients)",
                value=push_rate,
                unit="subs/s",
                baseline=copy,
                note=f"{pushed.rps:,.1f} batches/s; p50 {pushed.p50_ms:.0f} ms, "
                f"p99 {pushed.p99_ms:.0f} ms; client CPU {pushed.client_cpu:.0%}"
                + (f"; {pushed.errors} failed batches" if pushed.errors else ""),
            ),
        ]

        # (b) single submissions, SINGLE_CLIENTS concurrent clients.
        single_body = single_bodies(fresh, rng)

        path = "/api/v1/submissions"
        await _clients(server, token, path, single_body, _single_check, connections=8, duration=1)
        single, _ = await _clients(
            server,
            token,
            path,
            single_body,
            _single_check,
            connections=SINGLE_CLIENTS,
            duration=duration,
        )
        print(f"  single: {single.summary()}")
        results += [
            Result(
                label=f"POST /submissions ({SINGLE_CLIENTS} clients)",
                value=single.rps,
                unit="req/s",
                note=f"client CPU {single.client_cpu:.0%}"
                + (f"; {single.errors} errors" if single.errors else ""),
            ),
            Result(label="POST /submissions, p50", value=single.p50_ms, unit="ms"),
            Result(label="POST /submissions, p99", value=single.p99_ms, unit="ms"),
        ]

        # (c) the first pull page of a ward, against GET /healthz, sequentially.
        count = ctx.count(20, 5)
        health = server.target("GET", "/healthz")
        pull = server.target("GET", "/api/v1/sync/pull", token=pull_token)
        await _sequential(health, 5)
        await _sequential(pull, 2)
        health_s, _ = await _sequential(health, count)
        pull_s, size = await _sequential(pull, count)
        health_ms = Result(
            label="GET /healthz (median)", value=1000 * statistics.median(health_s), unit="ms"
        )
        results += [
            health_ms,
            Result(
                label=f"GET /sync/pull, first page of {pull_households:,} (median)",
                value=1000 * statistics.median(pull_s),
                unit="ms",
                baseline=health_ms,
                note=f"{size / 1024:,.0f} KiB per page; median of {count}",
            ),
        ]
    return results


async def _seed_pull_ward(
    conn: asyncpg.Connection,
    area: asyncpg.Record,
    user_id: uuid.UUID,
    count: int,
    rng: random.Random,
) -> None:
    """``count`` households, each with one current submission."""
    ids = await _households(conn, area, count)
    rows = [record(submission(i, rng), area, user_id) for i in ids]
    async with conn.transaction():
        await conn.copy_records_to_table("submission", records=rows, columns=SUBMISSION_COLUMNS)
        await conn.execute(
            """UPDATE household h SET current_submission_id = s.id,
                   change_xid = pg_current_xact_id(), updated_at = now()
               FROM submission s WHERE s.household_id = h.id AND h.ward_id = $1""",
            area["id"],
        )
    await conn.execute("ANALYZE household; ANALYZE submission")


async def _copy_baseline(
    ctx: Context, area: asyncpg.Record, user_id: uuid.UUID, count: int, rng: random.Random
) -> float:
    """Submissions per second for ``count`` rows by COPY (households made beforehand)."""
    count = max(count, BATCH)
    conns = [await connect(ctx.dsn) for _ in range(PUSH_CLIENTS)]
    try:
        ids = await _households(conns[0], area, count)
        rows = [record(submission(i, rng), area, user_id) for i in ids]
        batches = [rows[start : start + BATCH] for start in range(0, len(rows), BATCH)]
        queue = iter(batches)

        async def worker(conn: asyncpg.Connection) -> None:
            for batch in queue:
                await conn.copy_records_to_table(
                    "submission", records=batch, columns=SUBMISSION_COLUMNS
                )

        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        return len(rows) / (time.perf_counter() - started)
    finally:
        for c in conns:
            await c.close()
