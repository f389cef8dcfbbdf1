"""Figures above a ward: the sums of their wards' published cells.

A province's (or the nation's) published count is not its own true count perturbed once: it
is the sum of its wards' perturbed counts, withheld wards included. So a published parent
minus its published children leaves exactly the children's own perturbed counts — the same
figure however often the parent changes — and averaging a changing parent over many
readings (a monthly series, a card read after every visit) converges on nothing the
children do not already show. A parent perturbed on its own drew fresh noise every time its
contributors changed, and the mean of "parent − children" over 24 months gave the hidden
child's true count (tests/test_privacy_attacks.py measured 10-15 of 15).

The perturbation of the wards runs in SQL beside the counters, with the same table and the
same rules as :func:`api.stats.disclosure.perturb` (a test holds the two equal), so a
province reads its wards' counters in one statement instead of shipping them to Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import asyncpg

from api.stats.catalog import COVERAGE
from api.stats.disclosure import KEY_SPACE, MIN_DENOMINATOR, MIX, PTABLE, Published

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
# disclosure.perturb does, then added up per province, measure and point ``i``.
# $2: the measures that are ratios; $3: the coverage measure (its numerator keeps its key).
_PERTURB_AND_ADD: Final = f"""
SELECT c.province_id, c.measure, c.i, sum(
         CASE WHEN s.shown_d = 0 THEN 0
              WHEN c.measure = ANY($2::text[]) THEN
                CASE WHEN r.scaled <= 0 THEN 0
                     WHEN r.scaled <= {PTABLE.js} THEN
                       CASE WHEN 2 * r.scaled <= {PTABLE.js + 1} THEN 0 ELSE {PTABLE.js + 1} END
                     ELSE r.scaled END
              ELSE least(c.n + r.noise, s.shown_d) END)::bigint,
       sum(s.shown_d)::bigint
FROM cells c,
LATERAL (SELECT c.d + {_noise("c.d", "c.dk")} AS shown_d,
                CASE WHEN c.measure = $3 THEN c.nk ELSE c.nk + {MIX} * c.dk END AS k,
                CASE WHEN c.d > 0 THEN greatest(1, (2 * c.n + c.d) / (2 * c.d)) ELSE 1 END
                  AS scale) s,
LATERAL (SELECT {_noise("c.n", "s.k")} AS noise) z,
LATERAL (SELECT c.n + s.scale * z.noise AS scaled, z.noise) r
GROUP BY c.province_id, c.measure, c.i
"""

# Today's counters (with the unfolded log) of every ward of the provinces ($4; NULL: all).
NOW_SQL: Final = f"""
WITH cells AS (
    SELECT parent_id AS province_id, measure, 0 AS i,
           sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM stat_current_live
    WHERE parent_id IS NOT NULL AND ($4::int[] IS NULL OR parent_id = ANY($4::int[]))
    GROUP BY parent_id, area_id, measure
){_PERTURB_AND_ADD}"""

# Each ward's counters as of each month in $5 (ascending month starts): the monthly changes
# are put in the bucket of the first point they count in, then added up point by point.
# $6: one measure, or NULL for all. The wards' monthly changes are the folded ones and the log.
AT_SQL: Final = f"""
WITH bucketed AS (
    SELECT d.province_id, d.area_id, d.measure, width_bucket(d.month - 1, $5::date[]) + 1 AS i,
           sum(d.numerator) AS n, sum(d.denominator) AS d,
           sum(d.numerator_key) AS nk, sum(d.denominator_key) AS dk
    FROM (SELECT w.province_id, s.area_id, s.measure, s.month, s.numerator, s.denominator,
                 s.numerator_key, s.denominator_key
          FROM stat_delta s JOIN area w ON w.id = s.area_id WHERE w.level = 'ward'
          UNION ALL
          SELECT province_id, ward_id, measure, month, numerator, denominator,
                 numerator_key, denominator_key
          FROM stat_log) d
    WHERE ($4::int[] IS NULL OR d.province_id = ANY($4::int[]))
      AND d.month <= ($5::date[])[cardinality($5::date[])] AND ($6::text IS NULL OR d.measure = $6)
    GROUP BY 1, 2, 3, 4
), cells AS (
    SELECT g.province_id, g.measure, p.i,
           (sum(coalesce(b.n, 0)) OVER running)::bigint AS n,
           (sum(coalesce(b.d, 0)) OVER running)::bigint AS d,
           (sum(coalesce(b.nk, 0)) OVER running)::bigint AS nk,
           (sum(coalesce(b.dk, 0)) OVER running)::bigint AS dk
    FROM (SELECT DISTINCT province_id, area_id, measure FROM bucketed) g
    CROSS JOIN generate_series(1, cardinality($5::date[])) AS p(i)
    LEFT JOIN bucketed b ON (b.area_id, b.measure, b.i) = (g.area_id, g.measure, p.i)
    WINDOW running AS (PARTITION BY g.area_id, g.measure ORDER BY p.i)
){_PERTURB_AND_ADD}"""


def shown(numerator: int, denominator: int) -> Published:
    """A parent's figure from its wards' published counts: withheld like any cell when the
    (summed) denominator is small."""
    return Published(numerator, denominator, 0 < denominator < MIN_DENOMINATOR)


NOTHING: Final = shown(0, 0)

ByProvince = dict[int, dict[str, Published]]


def nation(by_province: ByProvince) -> dict[str, Published]:
    """The nation's figures: its provinces' added up (they are already sums of wards)."""
    added: dict[str, tuple[int, int]] = {}
    for cells in by_province.values():
        for measure, cell in cells.items():
            n, d = added.get(measure, (0, 0))
            added[measure] = (n + cell.numerator, d + cell.denominator)
    return {measure: shown(n, d) for measure, (n, d) in added.items()}


async def now(
    conn: asyncpg.Connection, province_ids: list[int] | None, ratios: Sequence[str]
) -> ByProvince:
    """Today's published figures of these provinces (None: every province), by measure."""
    rows = await conn.fetch(NOW_SQL, _TABLE, list(ratios), COVERAGE, province_ids)
    found: ByProvince = {pid: {} for pid in province_ids or []}
    for province_id, measure, _, numerator, denominator in rows:
        found.setdefault(province_id, {})[measure] = shown(numerator, denominator)
    return found


async def at(
    conn: asyncpg.Connection,
    province_ids: list[int] | None,
    ends: list[date],
    ratios: Sequence[str],
    measure: str | None = None,
) -> dict[int, dict[str, list[Published]]]:
    """These provinces' published figures as of the end of each month in ``ends``
    (ascending), by province and measure: one list of ``len(ends)`` figures each."""
    rows = await conn.fetch(AT_SQL, _TABLE, list(ratios), COVERAGE, province_ids, ends, measure)
    found: dict[int, dict[str, list[Published]]] = {pid: {} for pid in province_ids or []}
    for province_id, code, i, numerator, denominator in rows:
        points = found.setdefault(province_id, {}).setdefault(code, [NOTHING] * len(ends))
        points[i - 1] = shown(numerator, denominator)
    return found


def nation_at(by_province: dict[int, dict[str, list[Published]]]) -> dict[str, list[Published]]:
    added: dict[str, list[tuple[int, int]]] = {}
    for cells in by_province.values():
        for measure, points in cells.items():
            sums = added.setdefault(measure, [(0, 0)] * len(points))
            for index, cell in enumerate(points):
                n, d = sums[index]
                sums[index] = (n + cell.numerator, d + cell.denominator)
    return {measure: [shown(n, d) for n, d in sums] for measure, sums in added.items()}
