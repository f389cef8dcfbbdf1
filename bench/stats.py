"""Statistics: cards at 10 thousand and 1 million households, against a GROUP BY; rebuild;
push with the counters kept in the same transaction.

The dataset is 200 wards (the 166 of Thanh Hóa and 34 of Hà Nội) of 5,000 households each,
3 members on average, collected over the last 24 months; one household in ten was
re-visited (its first submission superseded). Rows go in by COPY and the counters are then
rebuilt, which is also the rebuild figure.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import statistics
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from tqdm import tqdm

from api.db import connect
from api.stats.catalog import HOUSEHOLD_KEY, load_catalog, measures_lateral
from api.stats.counters import rebuild
from api.stats.keys import RecordKeys, record_keys
from bench import Result
from bench.env import Context, Server, serve, setup
from bench.loadgen import LoadResult, load
from bench.sync import (
    BATCH,
    NOTICE,
    PASSWORD,
    PUSH_CLIENTS,
    SUBMISSION_COLUMNS,
    SURVEY,
    _clients,
    _collector,
    _households,
    _push_check,
    push_bodies,
)

NAME = "stats"
TITLE = "Statistics: cards flat in data size, rebuild, push with counters (granian)"

PROVINCE = "38"  # Thanh Hóa
CARD_WARD = "14812"  # Phường Bỉm Sơn
PUSH_WARD = "14758"  # Phường Hàm Rồng
DATABASE = "cds_bench_stats"  # its own: other benchmarks' households must not count
CLIENTS = 64
ISSUE_3_PUSH = 4_259  # submissions/s, docs/benchmarks.md at 314b51f (no counters)
PER_WARD_SMALL = 50  # 200 wards × 50 = 10,000 households
PER_WARD_FULL = 5_000  # 200 wards × 5,000 = 1,000,000 households
PHONES = {
    "ward_official": "+84920000001",
    "province_official": "+84920000002",
    "team_member": "+84920000003",
}


def _members(rng: random.Random, year: int) -> list[dict[str, Any]]:
    people = []
    for _ in range(rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5, 6))):
        adult = rng.random() < 0.78
        people.append(
            {
                "memberId": str(uuid.uuid4()),
                "answers": {
                    "birth_year": year - (rng.randint(15, 90) if adult else rng.randint(0, 14)),
                    "smartphone": rng.random() < (0.82 if adult else 0.3),
                    "vneid": rng.choices(["none", "level1", "level2"], (1, 2, 7))[0],
                    "cloud_accounts": rng.choice((0, 0, 1, 1, 1, 2, 3)),
                    "digital_signature": rng.random() < 0.35,
                    "epay": rng.random() < 0.7,
                    "eps_used": rng.random() < 0.45,
                    "skills_trained": rng.random() < 0.5,
                },
            }
        )
    return people


def _rows(
    ward: asyncpg.Record, user_id: uuid.UUID, count: int, rng: random.Random, now: datetime
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """``count`` households of one ward and their submissions (10 % re-visited)."""
    households, submissions = [], []
    for _ in range(count):
        household_id = uuid.uuid4()
        first_at = now - timedelta(days=rng.uniform(30, 720))
        visits = [first_at]
        if rng.random() < 0.1:
            visits.append(first_at + timedelta(days=rng.uniform(1, 29)))
        previous: uuid.UUID | None = None
        for collected_at in visits:
            submission_id = uuid.uuid4()
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
                    submission_id, household_id, SURVEY, 1, ward["province_id"], ward["id"],
                    collected_at, user_id, NOTICE, previous, answers, members,
                    hashlib.blake2b(submission_id.bytes, digest_size=16).digest(), collected_at,
                )
            )  # fmt: skip
            previous = submission_id
        households.append((household_id, ward["id"], ward["province_id"], first_at, previous))
    return households, submissions


@dataclass(frozen=True)
class Dataset:
    """The benchmark's wards, and who collected their households."""

    wards: list[asyncpg.Record]  # id, province_id, code: Thanh Hóa's 166, then 34 of Hà Nội
    by_code: dict[str, asyncpg.Record]
    collector: uuid.UUID  # a team member of PUSH_WARD (also the pushes' sender)


async def prepare(conn: asyncpg.Connection) -> Dataset:
    """The 200 wards, a team member of PUSH_WARD, and the two officials of PHONES (their
    password is the team member's: PASSWORD)."""
    wards = await conn.fetch(
        """(SELECT id, province_id, code FROM area WHERE parent_id =
               (SELECT id FROM area WHERE code = '38') ORDER BY code)
           UNION ALL
           (SELECT id, province_id, code FROM area WHERE parent_id =
               (SELECT id FROM area WHERE code = '01') ORDER BY code LIMIT 34)"""
    )
    by_code = {w["code"]: w for w in wards}
    collector = await _collector(conn, by_code[PUSH_WARD], PHONES["team_member"])
    for role, area in [("ward_official", CARD_WARD), ("province_official", PROVINCE)]:
        await conn.execute(
            """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id)
               SELECT $1, $2, password_hash, $3, a.id, a.province_id
               FROM app_user, area a WHERE app_user.id = $4 AND a.code = $5""",
            uuid.uuid4(),
            PHONES[role],
            role,
            collector,
            area,
        )
    return Dataset(wards, by_code, collector)


async def load_households(
    conn: asyncpg.Connection, dataset: Dataset, per_ward: int, rng: random.Random, label: str
) -> None:
    """``per_ward`` more households in each ward, with their submissions, by COPY."""
    now = datetime.now(UTC)
    wards = dataset.wards
    with tqdm(
        total=per_ward * len(wards), desc=label, unit="hh", unit_scale=True, disable=None
    ) as bar:
        for ward in wards:
            households, submissions = _rows(ward, dataset.collector, per_ward, rng, now)
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "household",
                    records=households,
                    # The head's foreign key is checked at commit, after its submission.
                    columns=["id", "ward_id", "province_id", "created_at", "current_submission_id"],
                )
                await conn.copy_records_to_table(
                    "submission", records=submissions, columns=SUBMISSION_COLUMNS
                )
            bar.update(per_ward)
    for table in ("household", "submission"):
        await conn.execute(f"VACUUM ANALYZE {table}")


async def rebuild_counters(conn: asyncpg.Connection, keys: RecordKeys) -> float:
    """``congdongso stats rebuild`` with the servers' record keys: seconds taken."""
    catalog = await load_catalog(conn, keys)
    started = time.perf_counter()
    with tqdm(total=34, desc="  rebuild", unit="province", leave=False, disable=None) as bar:
        await rebuild(conn, catalog, lambda _: bar.update())
    seconds = time.perf_counter() - started
    for table in ("stat_current", "stat_delta", "stat_parent_now", "stat_parent_month"):
        await conn.execute(f"ANALYZE {table}")
    return seconds


CARDS = [
    ("ward card (own ward)", f"/api/v1/stats/areas/{CARD_WARD}", "ward_official"),
    ("province card", f"/api/v1/stats/areas/{PROVINCE}", "province_official"),
    ("ward card seen by province", f"/api/v1/stats/areas/{CARD_WARD}", "province_official"),
]


async def _cards(ctx: Context, server: Server, tokens: dict[str, str], size: str) -> list[Result]:
    """Ward card (own ward), province card, and a ward card seen from the province."""
    duration = ctx.seconds(10, 2)
    measured: list[Result] = []
    for label, path, role in CARDS:
        target = server.target("GET", path, token=tokens[role])
        await load(target, connections=CLIENTS, duration=ctx.seconds(2, 0.5), label="warm-up")
        run: LoadResult = await load(target, connections=CLIENTS, duration=duration, label=label)
        print(f"  {size} {label}: {run.summary()}")
        if run.errors:
            raise RuntimeError(f"{label}: {run.errors} errors")
        measured += [
            Result(
                label=f"{label}, {size}",
                value=run.rps,
                unit="req/s",
                note=f"p50 {run.p50_ms:.1f} ms; client CPU {run.client_cpu:.0%}",
            ),
            Result(label=f"{label}, {size}, p99", value=run.p99_ms, unit="ms"),
        ]
    return measured


async def _group_by(
    ctx: Context, ward_id: int, catalog_sql: str, keys: RecordKeys
) -> tuple[float, float]:
    """The same ward's numbers (and the key sums a protected card needs) by GROUP BY over
    its households' current submissions, from 8 connections for a few seconds (no HTTP):
    queries/s and median ms."""
    query = f"""
        SELECT measure.code, sum(measure.numerator), sum(measure.denominator),
               sum(measure.numerator_key), sum(measure.denominator_key)
        FROM (SELECT s.*, {HOUSEHOLD_KEY} AS hk
              FROM household h JOIN submission s ON s.id = h.current_submission_id
              WHERE h.ward_id = $1) AS s
        {catalog_sql}
        GROUP BY measure.code"""
    conns = [await connect(ctx.dsn) for _ in range(8)]
    latencies: list[float] = []
    deadline = time.perf_counter() + ctx.seconds(10, 2)

    async def worker(conn: asyncpg.Connection) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await conn.fetch(query, ward_id, *keys.params)
            latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker(c) for c in conns))
        return len(latencies) / (time.perf_counter() - started), 1000 * statistics.median(latencies)
    finally:
        for conn in conns:
            await conn.close()


async def run(shared: Context) -> list[Result]:
    ctx = await setup(shared.quick, DATABASE)
    rng = random.Random(411)
    per_ward_full = ctx.count(PER_WARD_FULL, 250)
    keys = record_keys(ctx.settings)  # the servers' secret (bench.env.CELL_KEY_SECRET)
    conn = await connect(ctx.dsn)
    try:
        dataset = await prepare(conn)
        wards, by_code = dataset.wards, dataset.by_code
        await load_households(conn, dataset, PER_WARD_SMALL, rng, "  10,000 households")
        small_rebuild = await rebuild_counters(conn, keys)
        print(f"  rebuild of 10,000 households: {small_rebuild:.1f} s")
    finally:
        await conn.close()

    results: list[Result] = []
    async with serve(ctx, "granian") as server:
        tokens = {role: await server.login(phone, PASSWORD) for role, phone in PHONES.items()}
        small = await _cards(ctx, server, tokens, "10k households")

    conn = await connect(ctx.dsn)
    try:
        total = len(wards) * per_ward_full
        await load_households(
            conn, dataset, per_ward_full - PER_WARD_SMALL, rng, f"  {total:,} households"
        )
        members = await conn.fetchval(
            "SELECT sum(jsonb_array_length(members)) FROM household h "
            "JOIN submission s ON s.id = h.current_submission_id"
        )
        full_rebuild = await rebuild_counters(conn, keys)
        print(f"  rebuild of {total:,} households ({members:,} members): {full_rebuild:.1f} s")
        catalog_sql = measures_lateral((await load_catalog(conn, keys)).indicators)
        push_households = await _households(conn, by_code[PUSH_WARD], ctx.count(120_000, 20_000))
    finally:
        await conn.close()
    group_qps, group_ms = await _group_by(ctx, by_code[CARD_WARD]["id"], catalog_sql, keys)
    print(f"  GROUP BY baseline: {group_qps:,.1f} queries/s, median {group_ms:.0f} ms")

    async with serve(ctx, "granian") as server:
        tokens = {role: await server.login(phone, PASSWORD) for role, phone in PHONES.items()}
        full = await _cards(ctx, server, tokens, f"{total // 1000:,}k households")

        fresh = iter(push_households)

        push_body = push_bodies(fresh, rng)

        def pushes(connections: int, duration: float) -> Awaitable[tuple[LoadResult, int]]:
            return _clients(
                server,
                tokens["team_member"],
                "/api/v1/sync/push",
                push_body,
                _push_check,
                connections=connections,
                duration=duration,
            )

        await pushes(2, 1)  # warm-up
        pushed, accepted = await pushes(PUSH_CLIENTS, ctx.seconds(10, 2))
        print(f"  push with counters: {pushed.summary()}; {accepted:,} accepted")

        # Cards while the card ward's province takes pushes: every push drops its cards.
        _, card_path, role = CARDS[0]  # the own-ward card
        during, (pushed_during, accepted_during) = await asyncio.gather(
            load(
                server.target("GET", card_path, token=tokens[role]),
                connections=CLIENTS,
                duration=ctx.seconds(10, 2),
                label="cards during pushes",
            ),
            pushes(PUSH_CLIENTS, ctx.seconds(10, 2)),
        )
        print(f"  own-ward cards during pushes: {during.summary()}")
        print(f"  pushes meanwhile: {pushed_during.summary()}; {accepted_during:,} accepted")

    # The same cards built on every request: what the kept cards are measured against.
    async with serve(ctx, "granian", {"CONGDONGSO_CARD_CACHE": "false"}) as server:
        tokens = {role: await server.login(phone, PASSWORD) for role, phone in PHONES.items()}
        built = await _cards(ctx, server, tokens, f"{total // 1000:,}k households, cache off")

    group = Result(
        label="GROUP BY over the ward's households (SQL only, 8 connections)",
        value=group_qps,
        unit="cards/s",
        note=f"median {group_ms:.0f} ms per card; {per_ward_full:,} households in the ward",
    )
    results.append(group)
    for before, after, uncached in zip(small, full, built, strict=True):
        results.append(before)
        own_ward = after.unit == "req/s" and after.label.startswith("ward card (")
        results.append(
            Result(
                label=after.label,
                value=after.value,
                unit=after.unit,
                baseline=before,
                note="; ".join(
                    part
                    for part in (
                        after.note,
                        f"×{after.value / uncached.value:.2f} the card built every time",
                        f"×{after.value / group.value:,.0f} the GROUP BY" if own_ward else "",
                    )
                    if part
                ),
            )
        )
        results.append(uncached)
    results += [
        Result(label="rebuild, 10k households", value=small_rebuild, unit="s"),
        Result(
            label=f"rebuild, {total:,} households",
            value=full_rebuild,
            unit="s",
            note=f"{members:,} members; {total / full_rebuild:,.0f} households/s",
        ),
    ]
    issue_3 = Result(
        label="push without counters (issue 3, 314b51f)", value=ISSUE_3_PUSH, unit="subs/s"
    )
    results += [
        issue_3,
        Result(
            label=f"push with counters, {total // 1000:,}k households loaded",
            value=accepted / pushed.seconds,
            unit="subs/s",
            baseline=issue_3,
            note=f"p50 {pushed.p50_ms:.0f} ms, p99 {pushed.p99_ms:.0f} ms per batch of {BATCH}",
        ),
        Result(
            label="own-ward card while its province takes pushes",
            value=during.rps,
            unit="req/s",
            note=f"p50 {during.p50_ms:.1f} ms, p99 {during.p99_ms:.1f} ms; {CLIENTS} clients",
        ),
        Result(
            label="pushes meanwhile (same province)",
            value=accepted_during / pushed_during.seconds,
            unit="subs/s",
            note=f"{PUSH_CLIENTS} clients; every batch drops the province's kept cards",
        ),
    ]
    return results
