"""A parent's published figures are its wards' perturbed cells added up, in SQL exactly as
``disclosure.perturb`` perturbs one cell in Python."""

from __future__ import annotations

import contextlib
import itertools
import random
from datetime import date

import asyncpg
import pytest

from api.stats import sums
from api.stats.catalog import COVERAGE
from api.stats.cells import Cell, add
from api.stats.counters import fold
from api.stats.disclosure import Counts, contribution, displayed, perturb

pytestmark = pytest.mark.anyio

MEASURES = {"HH_SMARTPHONE": "fraction", "ADULT_CLOUD": "ratio", COVERAGE: "fraction"}


def random_cell(rng: random.Random, unit: str) -> Cell:
    denominator = rng.choice([0, 1, 2, 3, 5, 8, 9, 10, 11, 40, 300, rng.randrange(2000)])
    if unit == "ratio":
        numerator = rng.randrange(0, 4 * denominator + 2)
    else:
        numerator = rng.randint(0, denominator)
    # key sums are unreduced and, row by row, may be negative after removals
    return (numerator, denominator, rng.randrange(-600, 60_000), rng.randrange(-600, 60_000))


async def test_sql_and_python_perturb_and_add_alike(db: asyncpg.Connection) -> None:
    rng = random.Random(20261127)
    provinces = await db.fetch(
        "SELECT id FROM area WHERE level = 'province' ORDER BY sort_key LIMIT 3"
    )
    province_ids = [r["id"] for r in provinces]
    expected: dict[int, dict[str, tuple[int, int]]] = {pid: {} for pid in province_ids}
    months = [date(2026, m, 1) for m in range(1, 7)]
    expected_at: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for province_id in province_ids:
        wards = await db.fetch(
            "SELECT id FROM area WHERE level = 'ward' AND province_id = $1 LIMIT 60", province_id
        )
        for ward in wards:
            for measure, unit in MEASURES.items():
                running: Cell = (0, 0, 0, 0)
                points: list[Cell] = []
                for month in months:
                    cell = random_cell(rng, unit) if rng.random() < 0.5 else (0, 0, 0, 0)
                    if cell[1] == 0 and cell[0] == 0 and rng.random() < 0.5:
                        points.append(running)
                        continue
                    # two shards, to be added up by the reader
                    half = tuple(v // 2 for v in cell)
                    for shard, part in enumerate(
                        (half, tuple(v - h for v, h in zip(cell, half, strict=True)))
                    ):
                        await db.execute(
                            """INSERT INTO stat_delta (area_id, measure, month, shard, numerator,
                                   denominator, numerator_key, denominator_key)
                               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
                            ward["id"], measure, month, shard, *part,
                        )  # fmt: skip
                    running = tuple(a + b for a, b in zip(running, cell, strict=True))  # type: ignore[assignment]
                    points.append(running)
                await db.execute(
                    """INSERT INTO stat_current (area_id, parent_id, measure, numerator,
                           denominator, numerator_key, denominator_key)
                       VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                    ward["id"], province_id, measure, *running,
                )  # fmt: skip
                shown = contribution(running, unit, whole_numerator=measure == COVERAGE)
                # one ward alone, displayed, is what its own card shows
                assert displayed(shown, unit) == perturb(
                    running, unit, whole_numerator=measure == COVERAGE
                )
                n, d = expected[province_id].get(measure, (0, 0))
                expected[province_id][measure] = (n + shown.numerator, d + shown.denominator)
                sums_at = expected_at.setdefault((province_id, measure), [(0, 0)] * len(months))
                for index, point in enumerate(points):
                    seen = contribution(point, unit, whole_numerator=measure == COVERAGE)
                    n, d = sums_at[index]
                    sums_at[index] = (n + seen.numerator, d + seen.denominator)
    ratios = [m for m, unit in MEASURES.items() if unit == "ratio"]
    assert ratios == [m for m in await db.fetchval(sums.RATIOS_SQL) if m in MEASURES]
    async with db.transaction():
        await sums.refill(db)  # the kept sums, from the counters written above
    # Both ways: every ward perturbed on read, and the kept sums.
    for now, at in ((sums.wards_now, sums.wards_at), (sums.now, sums.at)):
        found = await now(db, province_ids, ratios)
        for province_id in province_ids:
            for measure in MEASURES:
                assert found[province_id][measure] == Counts(*expected[province_id][measure])
        everywhere = await now(db, None, ratios)
        assert sums.nation(everywhere) == sums.nation(found)
        for picked in ([1, 3, 5], [0, 2], [4], [0, 1, 2, 3, 4, 5]):  # changes after the last
            found_at = await at(db, province_ids, [months[i] for i in picked], ratios)
            for (province_id, measure), points in expected_at.items():
                got = [(p.numerator, p.denominator) for p in found_at[province_id][measure]]
                assert got == [points[i] for i in picked], (picked, province_id, measure)
        ends = [months[1], months[3], months[5]]
        one = await at(db, province_ids, ends, ratios, "ADULT_CLOUD")
        assert {m for cells in one.values() for m in cells} == {"ADULT_CLOUD"}


class Died(Exception):
    pass


async def as_defined(db: asyncpg.Connection, ends: list[date], provinces: list[int]) -> None:
    """The kept sums (with the unfolded log) read what perturbing every ward now reads."""
    ratios = await db.fetchval(sums.RATIOS_SQL)
    for ids in (None, provinces[:1]):
        assert await sums.now(db, ids, ratios) == await sums.wards_now(db, ids, ratios)
        for points in (ends, ends[::3], ends[-1:], ends[:1]):
            kept = await sums.at(db, ids, points, ratios)
            assert kept == await sums.wards_at(db, ids, points, ratios), (ids, points)
        one = await sums.at(db, ids, ends, ratios, "ADULT_CLOUD")
        assert one == await sums.wards_at(db, ids, ends, ratios, "ADULT_CLOUD")


async def test_the_folder_keeps_the_sums_as_perturbing_every_ward_would(
    db: asyncpg.Connection,
) -> None:
    """Random changes through the log, back-dated and taken back, folded at random moments
    (one fold killed before its commit): at every step the kept sums with the unfolded log
    read exactly what perturbing every ward on read gives, today and at every month end."""
    rng = random.Random(20261128)
    provinces = [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM area WHERE level = 'province' ORDER BY sort_key LIMIT 2"
        )
    ]
    wards = [
        (r["id"], r["province_id"])
        for r in await db.fetch(
            """SELECT id, province_id FROM area
               WHERE level = 'ward' AND province_id = ANY($1::int[]) ORDER BY id""",
            provinces,
        )
    ]
    wards = rng.sample(wards, 12)
    months = [date(2025, m, 1) for m in range(1, 13)] + [date(2026, m, 1) for m in range(1, 12)]
    measures = {"HH_BROADBAND": "fraction", "ADULT_CLOUD": "ratio", COVERAGE: "fraction"}
    held: dict[tuple[int, str, date], Cell] = {}  # what each ward holds per month, to take back
    ends = [date(2024, 12, 1), *months[::2], date(2026, 12, 1)]
    for step in range(40):
        rows = []
        for _ in range(rng.randint(1, 12)):
            ward_id, province_id = rng.choice(wards)
            measure, unit = rng.choice(list(measures.items()))
            month = rng.choice(months[-3:] if rng.random() < 0.6 else months)
            have = held.get((ward_id, measure, month), (0, 0, 0, 0))
            if have[1] > 0 and rng.random() < 0.3:  # a household edited away or deleted
                change: Cell = (-have[0], -have[1], -have[2], -have[3])
            else:
                change = random_cell(rng, unit)
            held[(ward_id, measure, month)] = add(have, change)
            rows.append((ward_id, province_id, month, measure, *change))
        await db.executemany(
            """INSERT INTO stat_log (ward_id, province_id, month, measure, numerator,
                   denominator, numerator_key, denominator_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            rows,
        )
        if step % 5 == 4:
            await as_defined(db, ends, provinces)  # with the log unfolded
        if step == 17:  # a fold that dies before its commit changes nothing
            with contextlib.suppress(Died):
                async with db.transaction():
                    assert await fold(db) > 0
                    await as_defined(db, ends, provinces)  # right inside it, too
                    raise Died
            assert await db.fetchval("SELECT count(*) FROM stat_log") > 0
            await as_defined(db, ends, provinces)
        if rng.random() < 0.4:
            await fold(db)
            await as_defined(db, ends, provinces)
    await fold(db)
    assert not await db.fetchval("SELECT count(*) FROM stat_log")
    await as_defined(db, ends, provinces)


def test_what_an_empty_looking_ward_adds_to_its_province() -> None:
    """A ward whose denominator shows 0 shows 0 throughout, but adds its perturbed numerator
    to its province (the sums stay unbiased only so): "province minus the other wards" may
    show that someone there holds the answer. Exact rates over every record key, for one
    or two surveyed households (docs/privacy.md quotes them)."""
    rates = {}
    for households, holding in ((1, 1), (2, 1), (2, 2)):
        revealed = 0
        for keys in itertools.product(range(256), repeat=households):
            cell = (holding, households, sum(keys[:holding]), sum(keys))
            added = contribution(cell, "fraction")
            shown = perturb(cell, "fraction")
            assert shown.numerator == 0 or shown.denominator > 0
            revealed += added.denominator == 0 and added.numerator > 0
        rates[(households, holding)] = revealed / 256**households
    print(rates)
    assert rates[(1, 1)] <= 0.15
    assert rates[(2, 1)] <= 0.13
    assert rates[(2, 2)] <= 0.25
