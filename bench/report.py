"""The officials' Excel report (``GET /stats/areas/{code}/report.xlsx``): generation time and
peak memory for the demo province and, on the 1,000,000-household dataset of bench/stats.py
(database ``cds_bench_stats``), for Thanh Hóa and the nation.

Two ways: the builder in this process (``api.stats.report.gather`` then ``build``, the route's
two steps), timed without and then measured with ``tracemalloc`` (the peak of Python memory
the report takes while it is made, the workbook's bytes included); and through the HTTP API
on granian (the whole request: scope, audit, gather, build, sending). Goal for the nation:
under 20 s and under 150 MB.
"""

from __future__ import annotations

import random
import resource
import statistics
import time
import tracemalloc
from datetime import UTC, datetime

import asyncpg

from api.config import Settings
from api.db import connect
from api.demo import DEMO_PASSWORD, DEMO_PROVINCE, DEMO_USERS, create_demo
from api.embedded import with_database
from api.learning import ModuleCache
from api.migrate import upgrade_async
from api.stats import report
from api.stats.catalog import load_catalog
from api.stats.exports import csv_stream, export_rows, on_connection, xlsx_stream
from api.stats.keys import RecordKeys, record_keys
from api.stats.periods import parse_period, today
from api.stats.places import Places
from bench import Result
from bench.env import ADMIN_PASSWORD, ADMIN_PHONE, CELL_KEY_SECRET, Context, serve, setup
from bench.loadgen import fetch
from bench.stats import DATABASE as STATS_DATABASE
from bench.stats import PER_WARD_FULL, PHONES, load_households, prepare
from bench.stats import rebuild_counters as rebuild_stats
from bench.sync import PASSWORD

NAME = "report"
TITLE = "Officials' Excel report: time and peak memory (demo province; nation on 1M households)"

DEMO_DATABASE = "cds_bench_report_demo"
COPY_DATABASE = "cds_bench_report"
PRIVACY_DATABASE = "cds_bench_privacy"  # bench/privacy.py's copy of the same dataset
GOAL_SECONDS = 20.0
GOAL_MB = 150.0
RUNS = 3
MB = 1024 * 1024


async def _built(
    dsn: str, code: str, role: str, language: str = "vi"
) -> tuple[float, float, float, int]:
    """Median seconds to gather and to build over RUNS runs, then the tracemalloc peak (MB)
    of one more run, and the workbook's size."""
    conn = await connect(dsn)
    try:
        keys = record_keys_for_bench()
        catalog = await load_catalog(conn, keys)
        places = Places()
        place = await places.find(conn, code)
        assert place is not None, code
        modules = ModuleCache(keys)
        period = parse_period("current", today())

        async def once() -> tuple[float, float, int]:
            started = time.perf_counter()
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                data = await report.gather(
                    conn, catalog, places, place, period, exact=False, language=language,
                    versions=modules.get, author=report.Author(role, "Bench"),
                    generated=datetime.now(UTC),
                )  # fmt: skip
            gathered = time.perf_counter()
            content = report.build(data, language)
            return gathered - started, time.perf_counter() - gathered, len(content)

        await once()  # warm: areas, catalog and module versions are read once per process
        runs = [await once() for _ in range(RUNS)]
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            _, _, size = await once()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return (
            statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs),
            peak / MB,
            size,
        )
    finally:
        await conn.close()


def record_keys_for_bench() -> RecordKeys:
    return record_keys(Settings(cell_key_secret=CELL_KEY_SECRET))


def _results(
    label: str, gather_s: float, build_s: float, peak_mb: float, size: int
) -> list[Result]:
    total = gather_s + build_s
    return [
        Result(
            label=f"{label}: builder, total",
            value=total * 1000,
            unit="ms",
            note=f"gather {gather_s * 1000:.0f} ms + build {build_s * 1000:.0f} ms; "
            f"{size / 1024:.0f} KiB",
        ),
        Result(label=f"{label}: peak Python memory", value=peak_mb, unit="MB", note="tracemalloc"),
    ]


async def _exported(dsn: str, code: str, kind: str) -> tuple[float, float, int]:
    """The CSV or XLSX export of ``code`` in this process: seconds to the last byte (without
    tracing), then the tracemalloc peak (MB) of a second run, and the size."""
    conn = await connect(dsn)
    try:
        catalog = await load_catalog(conn, record_keys_for_bench())
        places = Places()
        place = await places.find(conn, code)
        assert place is not None, code
        await places.children(conn, None)  # areas are read once per process
        write = csv_stream if kind == "csv" else xlsx_stream

        async def once() -> tuple[float, int]:
            size = 0
            started = time.perf_counter()
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                rows = export_rows(on_connection(conn), catalog, places, place, today())
                async for chunk in write(rows, "vi"):
                    size += len(chunk)
            return time.perf_counter() - started, size

        seconds, size = await once()
        tracemalloc.start()
        try:
            await once()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        return seconds, peak / MB, size
    finally:
        await conn.close()


async def _over_http(ctx: Context, paths: list[tuple[str, str, str, str]]) -> list[Result]:
    """``(label, path, phone, password)``: median of RUNS sequential requests after one."""
    measured = []
    async with serve(ctx, "granian") as server:
        for label, path, phone, password in paths:
            token = await server.login(phone, password)
            target = server.target("GET", path, token=token)
            status, _ = await fetch(target)  # warm-up
            if status != 200:
                raise RuntimeError(f"{path}: {status}")
            times = []
            for _ in range(RUNS):
                started = time.perf_counter()
                status, body = await fetch(target)
                times.append(time.perf_counter() - started)
                if status != 200:
                    raise RuntimeError(f"{path}: {status}")
            seconds = statistics.median(times)
            print(f"  {label} over HTTP: {seconds * 1000:.0f} ms, {len(body) / 1024:.0f} KiB")
            measured.append(
                Result(
                    label=f"{label}: GET report.xlsx (granian)",
                    value=seconds * 1000,
                    unit="ms",
                    note=f"median of {RUNS}; max {max(times) * 1000:.0f} ms",
                )
            )
    return measured


async def _households_in(dsn: str) -> int:
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        return 0
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM household")
        return count
    finally:
        await conn.close()


async def _stats_dataset(shared: Context) -> Context:
    """bench/stats.py's database when it holds its households, or bench/privacy.py's (the
    same 200 wards of 5,000 households, made by the same functions, read only here); else
    it is built as bench/stats.py builds it (250 households a ward with --quick)."""
    wanted = 200 * (250 if shared.quick else PER_WARD_FULL)
    for database in (STATS_DATABASE, PRIVACY_DATABASE):
        households = await _households_in(with_database(shared.dsn, database))
        if households >= wanted:
            # A copy, migrated to head (the servers' /readyz wants it): the original stays
            # as its benchmark left it.
            print(f"  copying {database} ({households:,} households) to {COPY_DATABASE}")
            conn = await asyncpg.connect(shared.dsn)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{COPY_DATABASE}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{COPY_DATABASE}" TEMPLATE "{database}"')
            finally:
                await conn.close()
            dsn = with_database(shared.dsn, COPY_DATABASE)
            await upgrade_async(dsn)
            return Context(shared.quick, dsn, shared.postgres, shared.settings)
    print(f"  building {STATS_DATABASE} ({wanted:,} households), as bench/stats.py does")
    ctx = await setup(shared.quick, STATS_DATABASE)
    conn = await connect(ctx.dsn)
    try:
        dataset = await prepare(conn)
        rng = random.Random(411)
        await load_households(conn, dataset, wanted // 200, rng, f"  {wanted:,} households")
        await rebuild_stats(conn, record_keys(ctx.settings))
    finally:
        await conn.close()
    return ctx


async def run(shared: Context) -> list[Result]:
    results: list[Result] = []
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # The demo province: `congdongso demo` (one ward of 300 households) in Thanh Hóa.
    demo = await setup(shared.quick, DEMO_DATABASE)
    await create_demo(demo.dsn, demo.settings)
    gathered = await _built(demo.dsn, DEMO_PROVINCE, "province_official")
    print(f"  demo province: {gathered}")
    results += _results("demo province (Thanh Hóa, demo ward)", *gathered)
    official = next(phone for phone, role, _ in DEMO_USERS if role == "province_official")
    results += await _over_http(
        demo,
        [("demo province", f"/api/v1/stats/areas/{DEMO_PROVINCE}/report.xlsx", official,
          DEMO_PASSWORD)],
    )  # fmt: skip

    # The 1,000,000-household dataset: Thanh Hóa (166 wards with data) and the nation.
    ctx = await _stats_dataset(shared)
    households = await _households_in(ctx.dsn)
    size = f"{households // 1000:,}k households"
    for label, code, role in [
        (f"Thanh Hóa, {size}", "38", "province_official"),
        (f"nation, {size}", "VN", "admin"),
    ]:
        gathered = await _built(ctx.dsn, code, role)
        print(f"  {label}: {gathered}")
        results += _results(label, *gathered)
        if code == "VN":
            total = gathered[0] + gathered[1]
            results.append(
                Result(
                    label="nation: goal",
                    value=float(total < GOAL_SECONDS and gathered[2] < GOAL_MB),
                    unit="met (1) / missed (0)",
                    note=f"under {GOAL_SECONDS:.0f} s and {GOAL_MB:.0f} MB",
                )
            )
    for kind in ("csv", "xlsx"):
        seconds, peak, length = await _exported(ctx.dsn, "38", kind)
        print(f"  Thanh Hóa export.{kind}: {seconds:.1f} s, peak {peak:.1f} MB, {length:,} bytes")
        results.append(
            Result(
                label=f"Thanh Hóa, {size}: export.{kind} (36,072 rows)",
                value=seconds,
                unit="s",
                note=f"peak Python memory {peak:.1f} MB (tracemalloc, another run); "
                f"{length / MB:.1f} MB",
            )
        )
    results += await _over_http(
        ctx,
        [
            (f"Thanh Hóa, {size}", "/api/v1/stats/areas/38/report.xlsx",
             PHONES["province_official"], PASSWORD),
            (f"nation, {size}", "/api/v1/stats/areas/VN/report.xlsx", ADMIN_PHONE,
             ADMIN_PASSWORD),
        ],
    )  # fmt: skip
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results.append(
        Result(
            label="bench process: peak RSS",
            value=rss_after,
            unit="MB",
            note=f"{rss_before:.0f} MB before this benchmark (interpreter, imports, others)",
        )
    )
    return results
