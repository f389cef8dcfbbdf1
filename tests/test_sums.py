"""A parent's published figures are its wards' perturbed cells added up, in SQL exactly as
``disclosure.perturb`` perturbs one cell in Python."""

from __future__ import annotations

import itertools
import random
from datetime import date

import asyncpg
import pytest

from api.stats import sums
from api.stats.catalog import COVERAGE
from api.stats.counters import Cell
from api.stats.disclosure import Counts, contribution, displayed, perturb

pytestmark = pytest.mark.anyio

MEASURES = {"HH_SMARTPHONE": "percent", "ADULT_CLOUD": "ratio", COVERAGE: "percent"}


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
    found = await sums.now(db, province_ids, ratios)
    for province_id in province_ids:
        for measure in MEASURES:
            assert found[province_id][measure] == Counts(*expected[province_id][measure])
    everywhere = await sums.now(db, None, ratios)
    assert sums.nation(everywhere) == sums.nation(found)
    for picked in ([1, 3, 5], [0, 2], [4], [0, 1, 2, 3, 4, 5]):  # changes after the last too
        found_at = await sums.at(db, province_ids, [months[i] for i in picked], ratios)
        for (province_id, measure), points in expected_at.items():
            got = [(p.numerator, p.denominator) for p in found_at[province_id][measure]]
            assert got == [points[i] for i in picked], (picked, province_id, measure)
    ends = [months[1], months[3], months[5]]
    one = await sums.at(db, province_ids, ends, ratios, "ADULT_CLOUD")
    assert {m for cells in one.values() for m in cells} == {"ADULT_CLOUD"}


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
            added = contribution(cell, "percent")
            shown = perturb(cell, "percent")
            assert shown.numerator == 0 or shown.denominator > 0
            revealed += added.denominator == 0 and added.numerator > 0
        rates[(households, holding)] = revealed / 256**households
    print(rates)
    assert rates[(1, 1)] <= 0.15
    assert rates[(2, 1)] <= 0.13
    assert rates[(2, 2)] <= 0.25
