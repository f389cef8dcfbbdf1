"""Figures above a ward: the sums of their wards' perturbed counts.

A province's (or the nation's) published count is not its own true count perturbed once: it
is the sum of its wards' perturbed counts (``disclosure.contribution``, withheld wards
included), with the display rules applied once to the sum. So a published parent minus its
published children leaves the other children's own perturbed counts — the same figure
however often the parent changes — and averaging a changing parent over many readings (a
monthly series, a card read after every visit) converges on nothing the children do not
already show. A parent perturbed on its own drew fresh noise every time its contributors
changed, and the mean of "parent − children" over 24 months gave a quiet hidden child's
true count (tests/test_privacy_attacks.py measured 10-15 of 15).

The wards' counts are added before the display rules (a zero base zeroes its row; a
numerator never above its denominator): the table's noise has mean zero, so the sums are
unbiased however small the wards, where sums of displayed small cells lost most of their
numerators (a province of 50-household wards was 49 pp low at its first month ends).

The perturbation runs in SQL beside the counters, with the same table and the same rules as
:func:`api.stats.disclosure.contribution` (a test holds the two equal), so a province reads
its wards' counters in one statement instead of shipping them to Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import asyncpg

from api.stats.catalog import COVERAGE
from api.stats.disclosure import KEY_SPACE, MIX, PTABLE, Counts, Published, displayed

# The whole table as one array parameter: index (row · 256 + key) + 1.
_TABLE: Final = [noise for row in PTABLE.rows for noise in row]
_LAST: Final = len(PTABLE.rows) - 1


def _noise(count: str, key: str) -> str:
    """SQL of ``PTABLE.noise(count, key)`` (the table is ``$1``)."""
    return (
        f"(CASE WHEN {count} <= 0 THEN 0 ELSE ($1::int[])[least({count}, {_LAST}) * {KEY_SPACE}"
        f" + (({key}) % {KEY_SPACE} + {KEY_SPACE}) % {KEY_SPACE} + 1] END)"
    )


# The wards' cells ``cells(province_id, measure, i, n, d, nk, dk)`` perturbed one by one as
# ``disclosure.contribution`` does (before the display rules), then added up per province,
# measure and point ``i``. $2: the measures that are ratios; $3: the coverage measure (its
# numerator keeps its own key).
_PERTURB_AND_ADD: Final = f"""
SELECT c.province_id, c.measure, c.i,
       sum(c.n + CASE WHEN c.measure = ANY($2::text[]) THEN s.scale ELSE 1 END
                 * {_noise("c.n", "s.k")})::bigint,
       sum(c.d + {_noise("c.d", "c.dk")})::bigint
FROM cells c,
LATERAL (SELECT CASE WHEN c.measure = $3 THEN c.nk ELSE c.nk + {MIX} * c.dk END AS k,
                CASE WHEN c.d > 0 THEN greatest(1, (2 * c.n + c.d) / (2 * c.d)) ELSE 1 END
                  AS scale) s
GROUP BY c.province_id, c.measure, c.i
"""

# Today's counters of every ward of the provinces ($4; NULL: all provinces).
NOW_SQL: Final = f"""
WITH cells AS (
    SELECT parent_id AS province_id, measure, 0 AS i,
           sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM stat_current
    WHERE parent_id IS NOT NULL AND ($4::int[] IS NULL OR parent_id = ANY($4::int[]))
    GROUP BY parent_id, area_id, measure
){_PERTURB_AND_ADD}"""

# Each ward's counters as of each month in $5 (ascending month starts): today's counters minus
# the changes of the months after each point. Only the months after the first point are
# read (a card's forecast looks 6 months back), not the wards' whole history. A change of
# month M is put in bucket b = the number of points before M, and is taken off points 1..b.
# $6: one measure, or NULL for all.
AT_SQL: Final = f"""
WITH today AS (
    SELECT parent_id AS province_id, area_id, measure,
           sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM stat_current
    WHERE parent_id IS NOT NULL AND ($4::int[] IS NULL OR parent_id = ANY($4::int[]))
      AND ($6::text IS NULL OR measure = $6)
    GROUP BY parent_id, area_id, measure
), later AS (
    SELECT d.area_id, d.measure, width_bucket(d.month - 1, $5::date[]) AS b,
           sum(d.numerator)::bigint AS n, sum(d.denominator)::bigint AS d,
           sum(d.numerator_key)::bigint AS nk, sum(d.denominator_key)::bigint AS dk
    FROM stat_delta d JOIN area w ON w.id = d.area_id
    WHERE w.level = 'ward' AND ($4::int[] IS NULL OR w.province_id = ANY($4::int[]))
      AND d.month > ($5::date[])[1] AND ($6::text IS NULL OR d.measure = $6)
    GROUP BY 1, 2, 3
), cells AS (
    SELECT t.province_id, t.measure, p.i,
           t.n - (sum(coalesce(l.n, 0)) OVER after)::bigint AS n,
           t.d - (sum(coalesce(l.d, 0)) OVER after)::bigint AS d,
           t.nk - (sum(coalesce(l.nk, 0)) OVER after)::bigint AS nk,
           t.dk - (sum(coalesce(l.dk, 0)) OVER after)::bigint AS dk
    FROM today t
    CROSS JOIN generate_series(1, cardinality($5::date[])) AS p(i)
    LEFT JOIN later l ON (l.area_id, l.measure, l.b) = (t.area_id, t.measure, p.i)
    WINDOW after AS (PARTITION BY t.area_id, t.measure ORDER BY p.i DESC)
){_PERTURB_AND_ADD}"""


Sums = dict[str, Counts]  # measure → its wards' perturbed counts added up
ByProvince = dict[int, Sums]
NOTHING: Final = Published(0, 0, False)


def nation(by_province: ByProvince) -> Sums:
    """The nation's sums: its provinces' added up (they are already sums of wards)."""
    added: dict[str, Counts] = {}
    for cells in by_province.values():
        for measure, cell in cells.items():
            n, d = added.get(measure, (0, 0))
            added[measure] = Counts(n + cell.numerator, d + cell.denominator)
    return added


def display(found: Sums, ratios: Sequence[str]) -> dict[str, Published]:
    """Sums as published: the display rules applied once, to the whole."""
    return {
        measure: displayed(counts, "ratio" if measure in ratios else "percent")
        for measure, counts in found.items()
    }


async def now(
    conn: asyncpg.Connection, province_ids: list[int] | None, ratios: Sequence[str]
) -> ByProvince:
    """Today's sums of these provinces' wards (None: every province), by measure."""
    rows = await conn.fetch(NOW_SQL, _TABLE, list(ratios), COVERAGE, province_ids)
    found: ByProvince = {pid: {} for pid in province_ids or []}
    for province_id, measure, _, numerator, denominator in rows:
        found.setdefault(province_id, {})[measure] = Counts(numerator, denominator)
    return found


PointSums = dict[str, list[Counts]]  # measure → sums at each point


async def at(
    conn: asyncpg.Connection,
    province_ids: list[int] | None,
    ends: list[date],
    ratios: Sequence[str],
    measure: str | None = None,
) -> dict[int, PointSums]:
    """These provinces' sums as of the end of each month in ``ends`` (ascending), by
    province and measure: one list of ``len(ends)`` sums each."""
    rows = await conn.fetch(AT_SQL, _TABLE, list(ratios), COVERAGE, province_ids, ends, measure)
    found: dict[int, PointSums] = {pid: {} for pid in province_ids or []}
    zero = Counts(0, 0)
    for province_id, code, i, numerator, denominator in rows:
        points = found.setdefault(province_id, {}).setdefault(code, [zero] * len(ends))
        points[i - 1] = Counts(numerator, denominator)
    return found


def nation_at(by_province: dict[int, PointSums]) -> PointSums:
    added: PointSums = {}
    for cells in by_province.values():
        for measure, points in cells.items():
            sums = added.setdefault(measure, [Counts(0, 0)] * len(points))
            for index, cell in enumerate(points):
                n, d = sums[index]
                sums[index] = Counts(n + cell.numerator, d + cell.denominator)
    return added


def display_at(found: PointSums, ratios: Sequence[str]) -> dict[str, list[Published]]:
    return {
        measure: [displayed(c, "ratio" if measure in ratios else "percent") for c in points]
        for measure, points in found.items()
    }
