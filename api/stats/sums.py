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

from collections.abc import Collection, Sequence
from datetime import date
from typing import Final, NamedTuple

import asyncpg

from api.stats.catalog import COVERAGE
from api.stats.cells import EMPTY, Cell, add
from api.stats.disclosure import (
    KEY_SPACE,
    MIX,
    PTABLE,
    Counts,
    Published,
    contribution,
    displayed,
)

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


def _now_sql(current: str) -> str:
    """Today's counters of every ward of the provinces ($4; NULL: all), perturbed and added."""
    return f"""
WITH cells AS (
    SELECT parent_id AS province_id, measure, 0 AS i,
           sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM {current}
    WHERE parent_id IS NOT NULL AND ($4::int[] IS NULL OR parent_id = ANY($4::int[]))
    GROUP BY parent_id, area_id, measure
){_PERTURB_AND_ADD}"""


def _at_sql(current: str, delta: str) -> str:
    """Each ward's counters as of each month in $5 (ascending month starts), perturbed and
    added: today's counters minus the changes of the months after each point. Only the
    months after the first point are read, not the wards' whole history. A change of month M
    is put in bucket b = the number of points before M, and is taken off points 1..b.
    $6: one measure, or NULL for all."""
    return f"""
WITH today AS (
    SELECT parent_id AS province_id, area_id, measure,
           sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM {current}
    WHERE parent_id IS NOT NULL AND ($4::int[] IS NULL OR parent_id = ANY($4::int[]))
      AND ($6::text IS NULL OR measure = $6)
    GROUP BY parent_id, area_id, measure
), later AS (
    SELECT d.area_id, d.measure, width_bucket(d.month - 1, $5::date[]) AS b,
           sum(d.numerator)::bigint AS n, sum(d.denominator)::bigint AS d,
           sum(d.numerator_key)::bigint AS nk, sum(d.denominator_key)::bigint AS dk
    FROM {delta} d JOIN area w ON w.id = d.area_id
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


# Every ward perturbed on read, with the unfolded log (the ``_live`` views, migration 0012):
# the definition of the sums. Readers use the kept sums below; tests hold the two equal.
WARDS_NOW_SQL: Final = _now_sql("stat_current_live")
WARDS_AT_SQL: Final = _at_sql("stat_current_live", "stat_delta_live")


Sums = dict[str, Counts]  # measure → its wards' perturbed counts added up
ByProvince = dict[int, Sums]
PointSums = dict[str, list[Counts]]  # measure → sums at each point
NOTHING: Final = Published(0, 0, False)
ZERO: Final = Counts(0, 0)


def nation(by_province: ByProvince) -> Sums:
    """The nation's sums: its provinces' added up (they are already sums of wards)."""
    added: dict[str, Counts] = {}
    for cells in by_province.values():
        for measure, cell in cells.items():
            added[measure] = _plus(added.get(measure, ZERO), cell)
    return added


def display(found: Sums, ratios: Sequence[str]) -> dict[str, Published]:
    """Sums as published: the display rules applied once, to the whole."""
    return {measure: displayed(counts, _unit(measure, ratios)) for measure, counts in found.items()}


def nation_at(by_province: dict[int, PointSums]) -> PointSums:
    added: PointSums = {}
    for cells in by_province.values():
        for measure, points in cells.items():
            sums = added.setdefault(measure, [ZERO] * len(points))
            for index, cell in enumerate(points):
                sums[index] = _plus(sums[index], cell)
    return added


def display_at(found: PointSums, ratios: Sequence[str]) -> dict[str, list[Published]]:
    return {
        measure: [displayed(c, _unit(measure, ratios)) for c in points]
        for measure, points in found.items()
    }


def _unit(measure: str, ratios: Collection[str]) -> str:
    return "ratio" if measure in ratios else "fraction"


def _plus(a: Counts, b: Counts) -> Counts:
    return Counts(a.numerator + b.numerator, a.denominator + b.denominator)


def _minus(a: Cell, b: Cell) -> Cell:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


def _moved(before: Cell, after: Cell, measure: str, ratios: Collection[str]) -> Counts:
    """How far a ward's contribution to its province moves when its cell goes from
    ``before`` to ``after``."""
    unit, whole = _unit(measure, ratios), measure == COVERAGE
    old = contribution(before, unit, whole_numerator=whole)
    new = contribution(after, unit, whole_numerator=whole)
    return Counts(new.numerator - old.numerator, new.denominator - old.denominator)


def _as_of(today: Cell, later: list[tuple[date, Cell]], end: date) -> Cell:
    """A ward's cell at the end of month ``end``: today's minus the changes of later months."""
    for month, cell in later:
        if month > end:
            today = _minus(today, cell)
    return today


def _by_month(changes: list[tuple[date, Cell]], until: date) -> Cell:
    """The changes of the months up to ``until``, added up."""
    total = EMPTY
    for month, cell in changes:
        if month <= until:
            total = add(total, cell)
    return total


# The definition: every ward perturbed on read ------------------------------------------------


async def wards_now(
    conn: asyncpg.Connection, province_ids: list[int] | None, ratios: Sequence[str]
) -> ByProvince:
    """Today's sums of these provinces' wards (None: every province), perturbing every ward
    now: what :func:`now` reads from the kept sums (tests and benchmarks compare them)."""
    rows = await conn.fetch(WARDS_NOW_SQL, _TABLE, list(ratios), COVERAGE, province_ids)
    found: ByProvince = {pid: {} for pid in province_ids or []}
    for province_id, measure, _, numerator, denominator in rows:
        found.setdefault(province_id, {})[measure] = Counts(numerator, denominator)
    return found


async def wards_at(
    conn: asyncpg.Connection,
    province_ids: list[int] | None,
    ends: list[date],
    ratios: Sequence[str],
    measure: str | None = None,
) -> dict[int, PointSums]:
    """As :func:`at`, perturbing every ward of the provinces at every point now."""
    rows = await conn.fetch(
        WARDS_AT_SQL, _TABLE, list(ratios), COVERAGE, province_ids, ends, measure
    )
    found: dict[int, PointSums] = {pid: {} for pid in province_ids or []}
    for province_id, code, i, numerator, denominator in rows:
        points = found.setdefault(province_id, {}).setdefault(code, [ZERO] * len(ends))
        points[i - 1] = Counts(numerator, denominator)
    return found


# Reading the kept sums (migration 0015) -------------------------------------------------------
#
# The kept sums match the folded counters. The wards with unfolded log rows are corrected in
# the same statement, so in one snapshot: their contribution with the log, minus without it.
# The folder runs every half second, so these are a few wards, where reading every ward of a
# province at every point cost a card seven times its time.

# $1: provinces (NULL: all); $2: one measure (NULL: all).
_LOGGED: Final = """
logged AS (
    SELECT ward_id, province_id, measure, month,
           sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM stat_log
    WHERE ($1::int[] IS NULL OR province_id = ANY($1::int[]))
      AND ($2::text IS NULL OR measure = $2)
    GROUP BY 1, 2, 3, 4
), folded AS (  -- a probe per logged ward and measure (LATERAL: never a scan of them all)
    SELECT l.ward_id AS area_id, l.measure, c.n, c.d, c.nk, c.dk
    FROM (SELECT DISTINCT ward_id, measure FROM logged) l
    CROSS JOIN LATERAL (
        SELECT sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
               sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
        FROM stat_current
        WHERE (area_id, measure) = (l.ward_id, l.measure)) c
    WHERE c.d IS NOT NULL
)"""

_PARENTS: Final = (
    "($1::int[] IS NULL OR province_id = ANY($1::int[])) AND ($2::text IS NULL OR measure = $2)"
)

# Rows (kind, province, ward, measure, month, n, d, nk, dk) of kinds: 0 a kept sum, 1 a
# ward's unfolded log, 2 that ward's folded counters, 3 its folded changes after its first
# logged month and the first point (the points before its first logged month need no
# correction; usually the log is this month's, and there is nothing after it).
NOW_SQL: Final = f"""
WITH {_LOGGED}
SELECT 0, province_id, NULL::int, measure, NULL::date, numerator, denominator,
       NULL::bigint, NULL::bigint
FROM stat_parent_now WHERE {_PARENTS}
UNION ALL
SELECT 1, province_id, ward_id, measure, month, n, d, nk, dk FROM logged
UNION ALL
SELECT 2, NULL, area_id, measure, NULL, n, d, nk, dk FROM folded"""

# At the ends of the months $3 (ascending month starts): for each province and measure, the
# last kept month at or before the first point (an index probe each; none: the province is
# listed, with zeros until its first kept month) and the kept months up to the last point.
AT_SQL: Final = f"""
WITH {_LOGGED}
SELECT 0, n.province_id, NULL::int, n.measure, b.month, coalesce(b.numerator, 0),
       coalesce(b.denominator, 0),
       NULL::bigint, NULL::bigint
FROM stat_parent_now n
LEFT JOIN LATERAL (
    SELECT month, numerator, denominator FROM stat_parent_month m
    WHERE (m.province_id, m.measure) = (n.province_id, n.measure)
      AND m.month <= ($3::date[])[1]
    ORDER BY m.month DESC LIMIT 1) b ON true
WHERE ($1::int[] IS NULL OR n.province_id = ANY($1::int[]))
  AND ($2::text IS NULL OR n.measure = $2)
UNION ALL
SELECT 0, province_id, NULL, measure, month, numerator, denominator, NULL, NULL
FROM stat_parent_month
WHERE {_PARENTS}
  AND month > ($3::date[])[1] AND month <= ($3::date[])[cardinality($3::date[])]
UNION ALL
SELECT 1, province_id, ward_id, measure, month, n, d, nk, dk FROM logged
UNION ALL
SELECT 2, NULL, area_id, measure, NULL, n, d, nk, dk FROM folded
UNION ALL
SELECT 3, NULL, l.ward_id, l.measure, d.month, d.n, d.d, d.nk, d.dk
FROM (SELECT ward_id, measure, min(month) AS since FROM logged GROUP BY 1, 2) l
CROSS JOIN LATERAL (
    SELECT month, sum(numerator)::bigint AS n, sum(denominator)::bigint AS d,
           sum(numerator_key)::bigint AS nk, sum(denominator_key)::bigint AS dk
    FROM stat_delta
    WHERE (area_id, measure) = (l.ward_id, l.measure)
      AND month > greatest(l.since, ($3::date[])[1])
    GROUP BY month) d"""


class _Read(NamedTuple):
    kept: dict[tuple[int, str], list[tuple[date, Counts]]]  # (province, measure) → by month
    province: dict[int, int]  # log ward → its province
    log: dict[tuple[int, str], list[tuple[date, Cell]]]  # (ward, measure) → unfolded changes
    folded: dict[tuple[int, str], Cell]  # (ward, measure) → today's folded counters
    later: dict[tuple[int, str], list[tuple[date, Cell]]]  # → folded changes after point 1


def _sort(rows: list[asyncpg.Record]) -> _Read:
    read = _Read({}, {}, {}, {}, {})
    for kind, province_id, ward_id, measure, month, n, d, nk, dk in rows:
        if kind == 0:
            kept = (month or date.max, Counts(n, d))  # today's, or nothing kept yet
            read.kept.setdefault((province_id, measure), []).append(kept)
        elif kind == 1:
            read.province[ward_id] = province_id
            read.log.setdefault((ward_id, measure), []).append((month, (n, d, nk, dk)))
        elif kind == 2:
            read.folded[(ward_id, measure)] = (n, d, nk, dk)
        else:
            read.later.setdefault((ward_id, measure), []).append((month, (n, d, nk, dk)))
    return read


async def now(
    conn: asyncpg.Connection,
    province_ids: list[int] | None,
    ratios: Sequence[str],
    measure: str | None = None,
) -> ByProvince:
    """Today's sums of these provinces' wards (None: every province), by measure."""
    read = _sort(await conn.fetch(NOW_SQL, province_ids, measure))
    found: ByProvince = {pid: {} for pid in province_ids or []}
    for (province_id, code), kept in read.kept.items():
        found.setdefault(province_id, {})[code] = kept[0][1]
    for (ward_id, code), changes in read.log.items():
        folded = read.folded.get((ward_id, code), EMPTY)
        logged = _by_month(changes, date.max)
        cells = found.setdefault(read.province[ward_id], {})
        cells[code] = _plus(
            cells.get(code, ZERO), _moved(folded, add(folded, logged), code, ratios)
        )
    return found


async def at(
    conn: asyncpg.Connection,
    province_ids: list[int] | None,
    ends: list[date],
    ratios: Sequence[str],
    measure: str | None = None,
) -> dict[int, PointSums]:
    """These provinces' sums as of the end of each month in ``ends`` (ascending), by
    province and measure: one list of ``len(ends)`` sums each."""
    read = _sort(await conn.fetch(AT_SQL, province_ids, measure, ends))
    found: dict[int, PointSums] = {pid: {} for pid in province_ids or []}
    for (province_id, code), kept in read.kept.items():
        kept.sort()
        points, last, value = [], 0, ZERO
        for end in ends:  # each point has the last kept month at or before it
            while last < len(kept) and kept[last][0] <= end:
                value = kept[last][1]
                last += 1
            points.append(value)
        found.setdefault(province_id, {})[code] = points
    for (ward_id, code), changes in read.log.items():
        folded = read.folded.get((ward_id, code), EMPTY)
        later = read.later.get((ward_id, code), [])
        cells = found.setdefault(read.province[ward_id], {})
        points = cells.setdefault(code, [ZERO] * len(ends))
        for i, end in enumerate(ends):
            logged = _by_month(changes, end)
            if logged == EMPTY:
                continue
            before = _as_of(folded, later, end)
            points[i] = _plus(points[i], _moved(before, add(before, logged), code, ratios))
    return found


# Keeping the sums -----------------------------------------------------------------------------

# The measures whose contributions are scaled (ratios), from the catalog in the database: the
# kept sums are the database's, whichever process folds.
RATIOS_SQL: Final = "SELECT coalesce(array_agg(code), '{}') FROM indicator WHERE unit = 'ratio'"

# Writers of the kept sums (the fold, a refill) take this after the counters' lock: two
# folds at once would each add their wards to the same old sums.
LOCK_PARENTS: Final = "LOCK TABLE stat_parent_now, stat_parent_month IN EXCLUSIVE MODE"

# The folded counters of the wards a fold changed ($1, $2), after the fold: today's, and the
# monthly changes after the first month the fold changed ($3).
_WARDS_SQL: Final = """
WITH t(ward_id, measure, since) AS (SELECT * FROM unnest($1::int[], $2::text[], $3::date[]))
SELECT t.ward_id, t.measure, NULL::date, sum(c.numerator)::bigint, sum(c.denominator)::bigint,
       sum(c.numerator_key)::bigint, sum(c.denominator_key)::bigint
FROM t JOIN stat_current c ON (c.area_id, c.measure) = (t.ward_id, t.measure)
GROUP BY 1, 2
UNION ALL
SELECT t.ward_id, t.measure, d.month, sum(d.numerator)::bigint, sum(d.denominator)::bigint,
       sum(d.numerator_key)::bigint, sum(d.denominator_key)::bigint
FROM t JOIN stat_delta d ON (d.area_id, d.measure) = (t.ward_id, t.measure) AND d.month > t.since
GROUP BY 1, 2, 3"""

# The kept sums of the provinces and measures ($1, $2) from month $3 on, the last kept month
# before it, and today's (month NULL).
_PARENT_ROWS_SQL: Final = """
WITH t(province_id, measure, since) AS (SELECT * FROM unnest($1::int[], $2::text[], $3::date[]))
SELECT t.province_id, t.measure, m.month, m.numerator, m.denominator
FROM t JOIN stat_parent_month m
  ON (m.province_id, m.measure) = (t.province_id, t.measure) AND m.month >= t.since
UNION ALL
SELECT t.province_id, t.measure, b.month, b.numerator, b.denominator
FROM t CROSS JOIN LATERAL (
    SELECT month, numerator, denominator FROM stat_parent_month m
    WHERE (m.province_id, m.measure) = (t.province_id, t.measure) AND m.month < t.since
    ORDER BY m.month DESC LIMIT 1) b
UNION ALL
SELECT t.province_id, t.measure, NULL, n.numerator, n.denominator
FROM t JOIN stat_parent_now n USING (province_id, measure)"""

_WRITE_NOW_SQL: Final = """
INSERT INTO stat_parent_now AS p (province_id, measure, numerator, denominator)
SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::bigint[])
ON CONFLICT (province_id, measure) DO UPDATE
SET numerator = excluded.numerator, denominator = excluded.denominator"""

_WRITE_MONTHS_SQL: Final = """
INSERT INTO stat_parent_month AS p (province_id, measure, month, numerator, denominator)
SELECT * FROM unnest($1::int[], $2::text[], $3::date[], $4::bigint[], $5::bigint[])
ON CONFLICT (province_id, measure, month) DO UPDATE
SET numerator = excluded.numerator, denominator = excluded.denominator"""

# One change a fold made: (ward, province, month, measure, n, d, nk, dk).
Change = tuple[int, int, date, str, int, int, int, int]


async def follow(conn: asyncpg.Connection, changes: Sequence[Change]) -> None:
    """Keep the kept sums right across a fold, in its transaction and after it: for each ward
    and measure the fold changed, take the ward's old contribution off its province's sums
    and add the new one, today and at the end of every kept month from the change on (a
    month changed for the first time gets its row, from the month kept before it)."""
    if not changes:
        return
    await conn.execute(LOCK_PARENTS)
    ratios = set(await conn.fetchval(RATIOS_SQL))
    made: dict[tuple[int, str], list[tuple[date, Cell]]] = {}  # (ward, measure) → by month
    province: dict[int, int] = {}
    for ward_id, province_id, month, code, *cell in changes:
        made.setdefault((ward_id, code), []).append((month, (cell[0], cell[1], cell[2], cell[3])))
        province[ward_id] = province_id
    pairs = list(made)
    since = [min(month for month, _ in made[pair]) for pair in pairs]
    today: dict[tuple[int, str], Cell] = {}
    later: dict[tuple[int, str], list[tuple[date, Cell]]] = {}
    for ward_id, code, month, *cell in await conn.fetch(
        _WARDS_SQL, [p[0] for p in pairs], [p[1] for p in pairs], since
    ):
        row = (cell[0], cell[1], cell[2], cell[3])
        if month is None:
            today[(ward_id, code)] = row
        else:
            later.setdefault((ward_id, code), []).append((month, row))

    # The provinces' kept sums from the first month any of their wards changed.
    first: dict[tuple[int, str], date] = {}
    for (ward_id, code), start in zip(pairs, since, strict=True):
        key = (province[ward_id], code)
        first[key] = min(start, first.get(key, start))
    keys = list(first)
    kept_now: dict[tuple[int, str], Counts] = {}
    kept: dict[tuple[int, str], dict[date, Counts | None]] = {key: {} for key in keys}
    before: dict[tuple[int, str], Counts] = {}  # the last kept month before the first change
    for province_id, code, month, n, d in await conn.fetch(
        _PARENT_ROWS_SQL, [k[0] for k in keys], [k[1] for k in keys], [first[k] for k in keys]
    ):
        key = (province_id, code)
        if month is None:
            kept_now[key] = Counts(n, d)
        elif month < first[key]:
            before[key] = Counts(n, d)
        else:
            kept[key][month] = Counts(n, d)

    # Every month that needs a row: the kept ones from the first change on, and each month a
    # ward changed in. A new month starts from the month kept before it.
    for (ward_id, code), made_here in made.items():
        months = kept[(province[ward_id], code)]
        for month, _ in made_here:
            months.setdefault(month, None)  # not kept yet
    sums_now = {key: kept_now.get(key, ZERO) for key in keys}
    sums: dict[tuple[int, str], dict[date, Counts]] = {}
    for key, months in kept.items():
        value = before.get(key, ZERO)
        sums[key] = {}
        for month in sorted(months):
            value = months[month] or value
            sums[key][month] = value

    for (ward_id, code), made_here in made.items():
        key = (province[ward_id], code)
        after = today.get((ward_id, code), EMPTY)
        sums_now[key] = _plus(
            sums_now[key],
            _moved(_minus(after, _by_month(made_here, date.max)), after, code, ratios),
        )
        ward_later = later.get((ward_id, code), [])
        for month, value in sums[key].items():
            added_by_fold = _by_month(made_here, month)
            if added_by_fold == EMPTY:
                continue
            at_month = _as_of(after, ward_later, month)
            moved = _moved(_minus(at_month, added_by_fold), at_month, code, ratios)
            sums[key][month] = _plus(value, moved)

    await conn.execute(
        _WRITE_NOW_SQL,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [sums_now[k].numerator for k in keys],
        [sums_now[k].denominator for k in keys],
    )
    rows = [(key, month, value) for key, months in sums.items() for month, value in months.items()]
    await conn.execute(
        _WRITE_MONTHS_SQL,
        [r[0][0] for r in rows],
        [r[0][1] for r in rows],
        [r[1] for r in rows],
        [r[2].numerator for r in rows],
        [r[2].denominator for r in rows],
    )


_FOLDED_NOW_SQL: Final = _now_sql("stat_current")
_FOLDED_AT_SQL: Final = _at_sql("stat_current", "stat_delta")


async def refill(conn: asyncpg.Connection) -> None:
    """Compute the kept sums again from the folded counters (after a rebuild, or when
    migration 0015 finds counters already there). Inside the caller's transaction, holding
    the counters' lock."""
    await conn.execute(LOCK_PARENTS)
    await conn.execute("DELETE FROM stat_parent_month")
    await conn.execute("DELETE FROM stat_parent_now")
    ratios = await conn.fetchval(RATIOS_SQL)
    await conn.execute(
        f"""INSERT INTO stat_parent_now (province_id, measure, numerator, denominator)
            SELECT province_id, measure, n, d
            FROM ({_FOLDED_NOW_SQL}) s(province_id, measure, i, n, d)""",
        _TABLE,
        ratios,
        COVERAGE,
        None,
    )
    months = [
        r[0]
        for r in await conn.fetch(
            """SELECT DISTINCT d.month FROM stat_delta d JOIN area w ON w.id = d.area_id
               WHERE w.level = 'ward' ORDER BY 1"""
        )
    ]
    if months:
        await conn.execute(
            f"""INSERT INTO stat_parent_month (province_id, measure, month, numerator, denominator)
                SELECT province_id, measure, ($5::date[])[i], n, d
                FROM ({_FOLDED_AT_SQL}) s(province_id, measure, i, n, d)""",
            _TABLE,
            ratios,
            COVERAGE,
            None,
            months,
            None,
        )
