"""What a province's figures cost now that they are their wards' perturbed cells added up.

Synthetic counters for Thanh Hóa (166 wards × 10 measures × 25 months × 4 shards, as the
writers leave them), its own province rows, and a half-second of unfolded log (300 rows: 30
submissions over 30 wards, about Thanh Hóa's share of 2,000 submissions a second). In
alternating rounds, the reads of one province card are timed three ways: "own counters" (the
province's own rows, what a card read before ``api.stats.sums``: today's cells and the 6
months of its forecast), "every ward perturbed on read" (``sums.wards_now`` / ``wards_at``,
in SQL), and "kept sums" (``sums.now`` / ``at``: the sums the folder keeps, plus the log's
wards); and the same for a 24-month series of one indicator. Database time only: the rest of
a card is the same.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import asyncpg

from bench import Result
from bench.env import Context, setup

NAME = "parent_sums"
TITLE = "A province's figures as sums of its 166 wards' perturbed cells vs its own counters"
DATABASE = "cds_bench_parents"
PROVINCE = "38"  # Thanh Hóa


async def _fill(conn: asyncpg.Connection, province_id: int, months: int) -> int:
    from api.stats import sums
    from api.stats.periods import add_months, month_start, today

    measures = [r[0] for r in await conn.fetch("SELECT code FROM indicator")] + ["COVERAGE"]
    start = add_months(month_start(today()), -(months - 1))
    await conn.execute(
        """INSERT INTO stat_delta (area_id, measure, month, shard, numerator, denominator,
                                   numerator_key, denominator_key)
           SELECT w.id, m, ($3::date + make_interval(months => k))::date, s,
                  (random() * 40)::int, 50 + (random() * 10)::int,
                  (random() * 10000)::int, (random() * 10000)::int
           FROM area w, unnest($2::text[]) m, generate_series(0, $4 - 1) k,
                generate_series(0, 3) s
           WHERE w.level = 'ward' AND w.province_id = $1""",
        province_id,
        measures,
        start,
        months,
    )
    await conn.execute(
        """INSERT INTO stat_delta (area_id, measure, month, shard, numerator, denominator,
                                   numerator_key, denominator_key)
           SELECT $1, measure, month, shard, sum(numerator), sum(denominator),
                  sum(numerator_key), sum(denominator_key)
           FROM stat_delta d JOIN area w ON w.id = d.area_id
           WHERE w.province_id = $1 GROUP BY measure, month, shard""",
        province_id,
    )
    await conn.execute(
        """INSERT INTO stat_current (area_id, parent_id, measure, shard, numerator, denominator,
                                     numerator_key, denominator_key)
           SELECT d.area_id, CASE WHEN w.level = 'ward' THEN w.province_id END, measure, shard,
                  sum(numerator), sum(denominator), sum(numerator_key), sum(denominator_key)
           FROM stat_delta d JOIN area w ON w.id = d.area_id GROUP BY 1, 2, 3, 4"""
    )
    await conn.execute("ANALYZE stat_delta; ANALYZE stat_current")
    async with conn.transaction():
        await sums.refill(conn)  # what the folder would have kept
    # A half-second of writes not folded yet, this month.
    await conn.execute(
        """INSERT INTO stat_log (ward_id, province_id, month, measure, numerator, denominator,
                                 numerator_key, denominator_key)
           SELECT w.id, w.province_id, $2, m, (random() * 3)::int, 1 + (random() * 2)::int,
                  (random() * 500)::int, (random() * 500)::int
           FROM (SELECT id, province_id FROM area WHERE level = 'ward' AND province_id = $1
                 ORDER BY random() LIMIT 30) w,
                (SELECT m FROM unnest($3::text[]) m LIMIT 10) ms""",
        province_id,
        month_start(today()),
        measures,
    )
    await conn.execute("ANALYZE stat_log")
    count: int = await conn.fetchval("SELECT count(*) FROM stat_delta")
    return count


async def _timed(work: Callable[[], Awaitable[object]], repeats: int) -> list[float]:
    await work()  # prepared statements, caches
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        await work()
        seconds.append(time.perf_counter() - started)
    return seconds


async def run(shared: Context) -> list[Result]:
    from api.db import connect
    from api.stats import counters as q
    from api.stats import sums
    from api.stats.cards import cumulate, window_ends
    from api.stats.periods import POINTS, month_start, period_points, today

    ctx = await setup(shared.quick, DATABASE)
    conn = await connect(ctx.dsn)
    try:
        province_id: int = await conn.fetchval(
            "SELECT id FROM area WHERE level = 'province' AND code = $1", PROVINCE
        )
        rows = await _fill(conn, province_id, 25)
        print(f"  {rows:,} monthly counter rows")
        ends = window_ends(month_start(today()))
        series_ends = [p.end for p in period_points("month", today()) if p.end is not None]
        assert len(series_ends) == POINTS["month"]
        ratios = ["ADULT_CLOUD"]

        async def own_card() -> None:
            await q.current_with_targets(conn, [province_id], [province_id, q.NATION], 2026)
            cumulate(await q.monthly_deltas(conn, [province_id], ends[-1]), ends)

        async def wards_card() -> None:
            await sums.wards_now(conn, [province_id], ratios)
            await sums.wards_at(conn, [province_id], ends, ratios)

        async def sums_card() -> None:
            await sums.now(conn, [province_id], ratios)
            await sums.at(conn, [province_id], ends, ratios)

        async def own_series() -> None:
            deltas = await q.monthly_deltas(conn, [province_id], series_ends[-1], "HH_BROADBAND")
            cumulate(deltas, series_ends)

        async def wards_series() -> None:
            await sums.wards_at(conn, [province_id], series_ends, ratios, "HH_BROADBAND")

        async def sums_series() -> None:
            await sums.at(conn, [province_id], series_ends, ratios, "HH_BROADBAND")

        # The two ways read the same figures.
        assert await sums.now(conn, [province_id], ratios) == await sums.wards_now(
            conn, [province_id], ratios
        )
        assert await sums.at(conn, [province_id], ends, ratios) == await sums.wards_at(
            conn, [province_id], ends, ratios
        )

        repeats = ctx.count(30, 5)
        measured: dict[str, list[float]] = {}
        for index in range(ctx.count(4, 1)):
            pairs = [("own card", own_card), ("wards card", wards_card)]
            pairs += [("sums card", sums_card), ("own series", own_series)]
            pairs += [("wards series", wards_series), ("sums series", sums_series)]
            if index % 2:
                pairs.reverse()
            for label, work in pairs:
                found = await _timed(work, repeats)
                measured.setdefault(label, []).extend(found)
                print(
                    f"  round {index + 1}, {label}: median {1000 * statistics.median(found):.1f} ms"
                )
    finally:
        await conn.close()

    def result(label: str, key: str, baseline: Result | None = None) -> Result:
        seconds = measured[key]
        return Result(
            label=label,
            value=1000 * statistics.median(seconds),
            unit="ms",
            baseline=baseline,
            note=f"p90 {1000 * sorted(seconds)[int(0.9 * len(seconds))]:.1f} ms, "
            f"{len(seconds)} reads, alternating rounds",
        )

    own = result("province card's reads, own counters (no perturbation)", "own card")
    wards = result("province card's reads, every ward perturbed on read", "wards card", own)
    card = result("province card's reads, kept sums + the log's wards", "sums card", own)
    own_s = result("24-month series, own counters (no perturbation)", "own series")
    wards_s = result("24-month series, every ward perturbed on read", "wards series", own_s)
    series = result("24-month series, kept sums + the log's wards", "sums series", own_s)
    return [own, wards, card, own_s, wards_s, series]
