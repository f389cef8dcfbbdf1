"""Visit plan: GET /areas/{wardCode}/visit-plan for a ward of 5,000 households, and a team
member's incremental pull, which carries the first 200 rows of the plan.

The ward (Phường Hàm Rồng) has 20 hamlets; 8 % of its households were never surveyed, the
others were surveyed once at a uniformly random time over the last 18 months (a third
stale at the default 6 months), 1–6 members each, 15 % of adults asking for help with one
or two topics. The team member registered the households of two hamlets (theirs come
first). 19 other wards of Thanh Hóa hold as many households, with their facts computed, so
that the plan reads its ward out of tables 20 times bigger. Rows go in by COPY, then the
counters are rebuilt, as in bench/stats.py.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import msgspec

from api.db import connect
from api.fieldwork.visit_plan import PULL_ROWS, statements, visit_plan
from api.stats.catalog import load_catalog
from api.stats.counters import rebuild
from api.stats.keys import RecordKeys
from api.textkeys import search_key, sort_key
from bench import Result
from bench.env import Context, Server, serve, setup
from bench.loadgen import LoadResult, fetch, load
from bench.sync import NOTICE, PASSWORD, SUBMISSION_COLUMNS, SURVEY, _collector, _sequential

NAME = "visits"
TITLE = "Visit plan: a ward of 5,000 households, and the pull that carries it (granian)"

WARD = "14758"  # Phường Hàm Rồng, Thanh Hóa
DATABASE = "cds_bench_visits"  # its own, so that it runs beside other benchmarks
SECRET = "bench-visits-cell-key-secret"  # the servers' and the rebuild's, so keys agree
MEMBER_PHONE = "+84930000001"
OFFICIAL_PHONE = "+84930000002"
HAMLETS = 20
OWN_HAMLETS = 2  # registered by the benchmark's team member
CLIENTS = 8  # a ward's team syncing at once
OTHER_WARDS = 19  # as many households each, so the tables hold 20 wards
TOPICS = ["vneid", "signature", "cloud", "epay", "eps", "scams"]


def _members(rng: random.Random, year: int) -> list[dict[str, Any]]:
    people = []
    for _ in range(rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5, 6))):
        adult = rng.random() < 0.78
        answers: dict[str, Any] = {
            "birth_year": year - (rng.randint(15, 90) if adult else rng.randint(0, 14)),
            "smartphone": rng.random() < (0.82 if adult else 0.3),
            "vneid": rng.choices(["none", "level1", "level2"], (1, 2, 7))[0],
            "cloud_accounts": rng.choice((0, 0, 1, 1, 1, 2, 3)),
            "digital_signature": rng.random() < 0.35,
            "epay": rng.random() < 0.7,
            "eps_used": rng.random() < 0.45,
            "skills_trained": rng.random() < 0.5,
        }
        if adult and rng.random() < 0.15:
            answers["help_wanted"] = rng.sample(TOPICS, rng.choice((1, 1, 2)))
        people.append({"memberId": str(uuid.uuid4()), "answers": answers})
    return people


def _ward_rows(
    ward: asyncpg.Record,
    count: int,
    rng: random.Random,
    member: uuid.UUID,
    hamlets: list[uuid.UUID],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``count`` households of one ward (in ``hamlets`` if any) and their submissions."""
    now = datetime.now(UTC)
    households, submissions = [], []
    for n in range(count):
        household_id = uuid.uuid4()
        hamlet = n % len(hamlets) if hamlets else None
        own = hamlet is not None and hamlet < OWN_HAMLETS  # registered and surveyed by member
        created_at = now - timedelta(days=rng.uniform(540, 600))
        head = None
        if rng.random() >= 0.08:
            head = uuid.uuid4()
            collected_at = now - timedelta(days=rng.uniform(1, 540))
            members = _members(rng, collected_at.year)
            answers = {
                "hh_size": len(members),
                "hh_broadband": rng.choices(
                    ["fibre", "other_fixed", "mobile_only", "none"], (6, 1, 2, 1)
                )[0],
                "hh_smart_devices": rng.choice((0, 1, 2, 2, 3, 4)),
            }
            submissions.append(
                (
                    head, household_id, SURVEY, 1, ward["province_id"], ward["id"],
                    collected_at, member if own else None, NOTICE, None, answers, members,
                    hashlib.blake2b(head.bytes, digest_size=16).digest(), collected_at,
                )
            )  # fmt: skip
        households.append(
            (
                household_id,
                ward["id"],
                ward["province_id"],
                None if hamlet is None else hamlets[hamlet],
                f"Nhà số {n + 1}",
                member if own else None,
                created_at,
                head,
            )
        )
    return households, submissions


async def _seed(
    conn: asyncpg.Connection, count: int, others: int, rng: random.Random
) -> tuple[asyncpg.Record, uuid.UUID]:
    """The ward's hamlets, team member, ward official, households and submissions; as many
    households in ``others`` other wards of the province, with their facts computed, so
    that the plan reads its ward out of tables holding more."""
    ward = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", WARD)
    member = await _collector(conn, ward, MEMBER_PHONE)
    await conn.execute(
        """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id)
           SELECT $1, $2, password_hash, 'ward_official', area_id, province_id
           FROM app_user WHERE id = $3""",
        uuid.uuid4(),
        OFFICIAL_PHONE,
        member,
    )
    hamlets = [uuid.uuid4() for _ in range(HAMLETS)]
    names = [f"Tổ dân phố {n + 1}" for n in range(HAMLETS)]
    await conn.executemany(
        """INSERT INTO hamlet (id, ward_id, province_id, name, search_key, sort_key)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        [
            (h, ward["id"], ward["province_id"], name, search_key(name), sort_key(name))
            for h, name in zip(hamlets, names, strict=True)
        ],
    )
    other_wards = await conn.fetch(
        """SELECT id, province_id FROM area
           WHERE parent_id = $1 AND id <> $2 ORDER BY code LIMIT $3""",
        ward["province_id"],
        ward["id"],
        others,
    )
    catalog = await load_catalog(conn, RecordKeys(SECRET.encode()))
    fill = statements(catalog)
    for index, area in enumerate([ward, *other_wards]):
        households, submissions = _ward_rows(
            area, count, rng, member, hamlets if index == 0 else []
        )
        async with conn.transaction():
            await conn.copy_records_to_table(
                "household",
                records=households,
                columns=[
                    "id", "ward_id", "province_id", "hamlet_id", "label", "created_by",
                    "created_at", "current_submission_id",
                ],
            )  # fmt: skip
            await conn.copy_records_to_table(
                "submission", records=submissions, columns=SUBMISSION_COLUMNS
            )
        if index > 0:  # the bench's own ward keeps its first plan for the figures
            await conn.execute(fill.fill, area["id"], fill.key)
    await rebuild(conn, catalog)
    for table in ("household", "submission", "hamlet", "visit_fact", "stat_current", "stat_delta"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    return ward, member


def _p99(seconds: list[float]) -> float:
    ordered = sorted(seconds)
    rank = max(1, int(-(-len(ordered) * 99 // 100)))  # nearest rank
    return 1000 * ordered[rank - 1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a local process (the PostgreSQL backend), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Direct(NamedTuple):
    """``visit_plan`` on one connection, without HTTP."""

    cold_ms: float  # the ward's first plan, computing every household's facts
    median_ms: float
    p99_ms: float
    database_cpu_ms: float  # the backend's CPU per plan: what a busy machine cannot hide
    python_cpu_ms: float  # this process's CPU per plan (asyncpg, building the rows)
    rows: int  # in the whole plan


async def _direct(ctx: Context, ward: asyncpg.Record, member: uuid.UUID, count: int) -> Direct:
    conn = await connect(ctx.dsn)
    try:
        catalog = await load_catalog(conn, RecordKeys(SECRET.encode()))
        backend = await conn.fetchval("SELECT pg_backend_pid()")

        async def page(limit: int) -> int:
            found = await visit_plan(
                conn,
                catalog,
                ward_id=ward["id"],
                province_id=ward["province_id"],
                member=member,
                language="vi",
                after=None,
                limit=limit,
            )
            return len(found.items)

        started = time.perf_counter()
        await page(50)
        cold = 1000 * (time.perf_counter() - started)
        for _ in range(5):  # the generic plan of each prepared statement
            await page(50)
        seconds = []
        database, python = _cpu_seconds(backend), time.process_time()
        for _ in range(count):
            started = time.perf_counter()
            await page(50)
            seconds.append(time.perf_counter() - started)
        database = 1000 * (_cpu_seconds(backend) - database) / count
        python = 1000 * (time.process_time() - python) / count
        return Direct(
            cold,
            1000 * statistics.median(seconds),
            _p99(seconds),
            database,
            python,
            await page(1_000_000),
        )
    finally:
        await conn.close()


async def _cursor_after(server: Server, plan: str, token: str, rows: int = 1_000) -> str:
    """The plan's cursor after its first ``rows`` rows (pages of 200), through the API."""
    cursor = ""
    for _ in range(rows // 200):
        query = f"?limit=200&cursor={cursor}" if cursor else "?limit=200"
        status, answer = await fetch(server.target("GET", plan + query, token=token))
        if status != 200:
            raise RuntimeError(f"visit plan: {status} {answer[:300]!r}")
        cursor = msgspec.json.decode(answer)["nextCursor"]
    return cursor


async def _last_cursor(server: Server, token: str) -> str:
    """Pull the whole ward once, as a team member's first sync; the cursor to keep."""
    since = ""
    while True:
        target = server.target("GET", f"/api/v1/sync/pull?limit=1000{since}", token=token)
        status, answer = await fetch(target)
        if status != 200:
            raise RuntimeError(f"pull: {status} {answer[:300]!r}")
        page = msgspec.json.decode(answer)
        if not page["more"]:
            return str(page["nextCursor"])
        since = f"&cursor={page['nextCursor']}"


def _sequential_result(label: str, seconds: list[float], baseline: Result | None = None) -> Result:
    return Result(
        label=label,
        value=_p99(seconds),
        unit="ms",
        baseline=baseline,
        note=f"p50 {1000 * statistics.median(seconds):.1f} ms; {len(seconds)} requests, one client",
    )


async def run(shared: Context) -> list[Result]:
    ctx = await setup(shared.quick, DATABASE)
    count = ctx.count(5_000, 1_000)
    others = ctx.count(OTHER_WARDS, 2)
    rng = random.Random(11)
    conn = await connect(ctx.dsn)
    try:
        print(f"  seeding {others + 1} wards of {count:,} households …")
        ward, member = await _seed(conn, count, others, rng)
    finally:
        await conn.close()
    repeats = ctx.count(300, 30)
    skip = ctx.count(1_000, 400)  # rows before the later page measured
    direct = await _direct(ctx, ward, member, ctx.count(200, 20))
    print(f"  {direct}")

    results: list[Result] = []
    async with serve(ctx, "granian", {"CONGDONGSO_CELL_KEY_SECRET": SECRET}) as server:
        member_token = await server.login(MEMBER_PHONE, PASSWORD)
        official_token = await server.login(OFFICIAL_PHONE, PASSWORD)
        plan = f"/api/v1/areas/{WARD}/visit-plan"
        first = server.target("GET", f"{plan}?limit=50", token=member_token)
        page_200 = server.target("GET", f"{plan}?limit={PULL_ROWS}", token=member_token)
        later = server.target(
            "GET",
            f"{plan}?limit=50&cursor={await _cursor_after(server, plan, member_token, skip)}",
            token=member_token,
        )
        cursor = await _last_cursor(server, member_token)
        pull_path = f"/api/v1/sync/pull?cursor={cursor}"
        member_pull = server.target("GET", pull_path, token=member_token)
        official_pull = server.target("GET", pull_path, token=official_token)
        health = server.target("GET", "/healthz")

        measured: dict[str, tuple[list[float], int]] = {}
        for name, target in (
            ("health", health),
            ("first", first),
            ("later", later),
            ("page_200", page_200),
            ("official_pull", official_pull),
            ("member_pull", member_pull),
        ):
            await _sequential(target, 5)  # warm-up: connections, caches, prepared statements
            measured[name] = await _sequential(target, repeats)
            print(f"  {name}: median {1000 * statistics.median(measured[name][0]):.1f} ms")

        await load(first, connections=CLIENTS, duration=ctx.seconds(2, 0.5), label="warm-up")
        loaded: LoadResult = await load(
            first, connections=CLIENTS, duration=ctx.seconds(10, 2), label="visit plan"
        )
        print(f"  {CLIENTS} clients: {loaded.summary()}")
        if loaded.errors:
            raise RuntimeError(f"visit plan under load: {loaded.errors} errors")

    health_result = Result(
        label="GET /healthz, p99",
        value=_p99(measured["health"][0]),
        unit="ms",
        note=f"p50 {1000 * statistics.median(measured['health'][0]):.2f} ms",
    )
    pull_without = _sequential_result(
        "incremental pull, no changes, ward official (no plan), p99", measured["official_pull"][0]
    )
    results += [
        Result(
            label=f"first plan of the ward: facts of its {count:,} households",
            value=direct.cold_ms,
            unit="ms",
            note="once: later plans only compute the facts of new submissions",
        ),
        Result(
            label="visit_plan() on one connection, 50 rows, p99",
            value=direct.p99_ms,
            unit="ms",
            note=f"median {direct.median_ms:.1f} ms; {direct.rows:,} of {count:,} households "
            "in the plan",
        ),
        Result(
            label="visit_plan(): PostgreSQL CPU per plan",
            value=direct.database_cpu_ms,
            unit="ms",
            note=f"+ {direct.python_cpu_ms:.1f} ms Python CPU; the floor of its latency on "
            "an idle core",
        ),
        health_result,
        _sequential_result(
            f"GET visit-plan, 50 rows, {count:,} households, p99", measured["first"][0]
        ),
        _sequential_result(
            f"GET visit-plan, 50 rows after the first {skip:,} (cursor), p99",
            measured["later"][0],
        ),
        _sequential_result(
            f"GET visit-plan, {PULL_ROWS} rows, p99",
            measured["page_200"][0],
        ),
        Result(
            label=f"GET visit-plan, 50 rows, {CLIENTS} clients, p99",
            value=loaded.p99_ms,
            unit="ms",
            note=f"{loaded.rps:,.0f} req/s; p50 {loaded.p50_ms:.1f} ms",
        ),
        pull_without,
        _sequential_result(
            f"incremental pull, no changes, team member (+ plan of {PULL_ROWS}), p99",
            measured["member_pull"][0],
            pull_without,
        ),
        Result(
            label="pull answer with the plan",
            value=measured["member_pull"][1] / 1024,
            unit="KiB",
            note=f"{PULL_ROWS} rows, uncompressed",
        ),
    ]
    return results
