"""Statistics counters: keeping them (incrementally and by rebuild) and reading them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any, NamedTuple

import asyncpg

from api.stats import sums
from api.stats.catalog import COVERAGE, Catalog, Measured, Member, month_of
from api.stats.cells import EMPTY, Cell
from api.stats.keys import sql_key

# One monthly change of one measure in one ward (the province follows its wards).
DeltaKey = tuple[int, int, date, str]  # ward_id, province_id, month, measure
Deltas = dict[DeltaKey, "Cell"]  # → (numerator, denominator, their key sums)


def _deltas(rows: list[asyncpg.Record]) -> Deltas:
    return {
        (r["ward_id"], r["province_id"], r["month"], r["measure"]): (
            r["numerator"],
            r["denominator"],
            r["numerator_key"],
            r["denominator_key"],
        )
        for r in rows
    }


# Keeping the counters -----------------------------------------------------------------------

# Which provinces this request's writes changed, for the card caches of the other processes
# (api/stats/cardcache.py announces them after the commit). Set per request.
touched: ContextVar[set[int] | None] = ContextVar("touched", default=None)


async def household_history(
    conn: asyncpg.Connection, catalog: Catalog, household_ids: list[uuid.UUID]
) -> Deltas:
    """What these households contribute to the counters, from their stored submissions."""
    if not household_ids:
        return {}
    return _deltas(
        await conn.fetch(catalog.history_by_households, household_ids, *catalog.keys.params)
    )


class Tally:
    """What a batch's accepted household states change in the counters, computed in Python
    by the catalog's rules (``Catalog.measure``), to be appended to the log by the statement
    that stores them. The same bookkeeping as :func:`api.stats.catalog.history_sql`, one
    submission at a time: a state counts from its ``counted_at`` and ends the state it
    replaces there; a first visit makes the household surveyed (and registered, if that is
    earlier than its creation)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.deltas: dict[tuple[int, int, date], dict[str, list[int]]] = {}
        self.provinces: set[int] = set()
        self._measured: dict[uuid.UUID, list[Measured]] = {}

    def measure(
        self,
        submission_id: uuid.UUID,
        household_id: uuid.UUID,
        collected_at: datetime,
        answers: dict[str, Any],
        members: Sequence[Member],
    ) -> list[Measured]:
        found = self._measured.get(submission_id)
        if found is None:
            found = self.catalog.measure(household_id, collected_at, answers, members)
            self._measured[submission_id] = found
        return found

    def measure_of(self, submission_id: uuid.UUID) -> list[Measured]:
        """What a submission measured earlier in this batch (or read as a replaced head)."""
        return self._measured[submission_id]

    def accepted(
        self,
        *,
        household_id: uuid.UUID,
        ward_id: int,
        province_id: int,
        created_at: datetime,
        counted_at: datetime,
        measured: list[Measured],
        replaced: list[Measured] | None,
    ) -> None:
        month = month_of(counted_at)
        cells = self._cells(ward_id, province_id, month)
        for code, n, d, nk, dk in measured:
            _add(cells, code, n, d, nk, dk)
        if replaced is not None:
            for code, n, d, nk, dk in replaced:
                _add(cells, code, -n, -d, -nk, -dk)
            return
        hk = self.catalog.keys.of(str(household_id))
        _add(cells, COVERAGE, 1, 0, hk, 0)
        if counted_at < created_at:  # registered from the first visit, not from its creation
            _add(self._cells(ward_id, province_id, month_of(created_at)), COVERAGE, 0, -1, 0, -hk)
            _add(cells, COVERAGE, 0, 1, 0, hk)

    def _cells(self, ward_id: int, province_id: int, month: date) -> dict[str, list[int]]:
        key = (ward_id, province_id, month)
        cells = self.deltas.get(key)
        if cells is None:
            cells = self.deltas[key] = {}
        return cells

    def rows(self) -> list[tuple[int, int, date, str, int, int, int, int]]:
        """The log rows: one per ward, month and measure that changed."""
        found = [
            (ward, province, month, code, cell[0], cell[1], cell[2], cell[3])
            for (ward, province, month), cells in self.deltas.items()
            for code, cell in cells.items()
            if any(cell)
        ]
        changed = touched.get()
        if changed is not None:
            changed.update(row[1] for row in found)
        return found


def _add(cells: dict[str, list[int]], code: str, n: int, d: int, nk: int, dk: int) -> None:
    cell = cells.get(code)
    if cell is None:
        cells[code] = [n, d, nk, dk]
    else:
        cell[0] += n
        cell[1] += d
        cell[2] += nk
        cell[3] += dk


def difference(after: Deltas, before: Deltas) -> Deltas:
    changed: Deltas = {}
    for key in after.keys() | before.keys():
        new, old = after.get(key, EMPTY), before.get(key, EMPTY)
        if new != old:
            changed[key] = (new[0] - old[0], new[1] - old[1], new[2] - old[2], new[3] - old[3])
    return changed


async def apply_deltas(conn: asyncpg.Connection, deltas: Deltas) -> None:
    """Append monthly changes to the counters' log, inside the caller's transaction.

    One row per ward, month and measure, in one statement; no shared row is updated, so
    concurrent writers of one area never wait for each other. The folder (api/stats/folder.py)
    adds the log into the counters; readers add the unfolded rest (the ``*_live`` views).
    """
    if not deltas:
        return
    keys = list(deltas)
    await conn.execute(
        """INSERT INTO stat_log (ward_id, province_id, month, measure, numerator, denominator,
                                 numerator_key, denominator_key)
           SELECT * FROM unnest($1::int[], $2::int[], $3::date[], $4::text[], $5::bigint[],
                                $6::bigint[], $7::bigint[], $8::bigint[])""",
        [k[0] for k in keys],
        [k[1] for k in keys],
        [k[2] for k in keys],
        [k[3] for k in keys],
        *([deltas[k][i] for k in keys] for i in range(4)),
    )
    provinces = touched.get()
    if provinces is not None:
        provinces.update(k[1] for k in keys)


# The log moved into the counters in one statement (the folder's, in its own transaction):
# what it deletes is exactly what it adds, so a folder killed midway changed nothing, and
# rows committed meanwhile wait for the next fold. Shard 0: the folder is the only writer.
FOLD_SQL = """
    WITH gone AS (DELETE FROM stat_log RETURNING *),
    l AS (
        SELECT ward_id AS area_id, province_id AS parent_id, month, measure, numerator,
               denominator, numerator_key, denominator_key FROM gone
        UNION ALL
        SELECT province_id, NULL, month, measure, numerator, denominator,
               numerator_key, denominator_key FROM gone
    ), current AS (
        INSERT INTO stat_current AS s (area_id, parent_id, measure, numerator, denominator,
                                       numerator_key, denominator_key)
        SELECT area_id, parent_id, measure, sum(numerator), sum(denominator),
               sum(numerator_key), sum(denominator_key)
        FROM l GROUP BY 1, 2, 3 ORDER BY 1, 3
        ON CONFLICT (area_id, measure, shard) DO UPDATE
        SET numerator = s.numerator + excluded.numerator,
            denominator = s.denominator + excluded.denominator,
            numerator_key = s.numerator_key + excluded.numerator_key,
            denominator_key = s.denominator_key + excluded.denominator_key
    ), monthly AS (
        INSERT INTO stat_delta AS s (area_id, measure, month, numerator, denominator,
                                     numerator_key, denominator_key)
        SELECT area_id, measure, month, sum(numerator), sum(denominator),
               sum(numerator_key), sum(denominator_key)
        FROM l GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (area_id, measure, month, shard) DO UPDATE
        SET numerator = s.numerator + excluded.numerator,
            denominator = s.denominator + excluded.denominator,
            numerator_key = s.numerator_key + excluded.numerator_key,
            denominator_key = s.denominator_key + excluded.denominator_key
    )
    SELECT ward_id, province_id, month, measure, sum(numerator)::bigint,
           sum(denominator)::bigint, sum(numerator_key)::bigint, sum(denominator_key)::bigint,
           count(*)
    FROM gone GROUP BY 1, 2, 3, 4"""

# Taken by the fold and the rebuild, in this order, so neither waits for the other in reverse.
LOCK_COUNTERS = "LOCK TABLE stat_log, stat_current, stat_delta IN {} MODE"


async def fold(conn: asyncpg.Connection) -> int:
    """Move the log into the counters, and the provinces' kept sums along (api/stats/sums.py);
    returns how many log rows were folded."""
    async with conn.transaction():
        # The fold changes no figure: the counters' triggers stay quiet (migration 0012).
        await conn.execute("SET LOCAL congdongso.folding = 'on'")
        await conn.execute(LOCK_COUNTERS.format("ROW EXCLUSIVE"))
        changes = await conn.fetch(FOLD_SQL)
        await sums.follow(conn, [tuple(row[:8]) for row in changes])
    return sum(row[8] for row in changes)


def accumulate_sql(history: str) -> str:
    """Add a history query's deltas to the monthly counters of wards and provinces."""
    return f"""
    WITH d AS ({history}),
    l AS (
        SELECT ward_id AS area_id, month, measure, numerator, denominator,
               numerator_key, denominator_key FROM d
        UNION ALL
        SELECT province_id, month, measure, numerator, denominator,
               numerator_key, denominator_key FROM d
    )
    INSERT INTO stat_delta AS s (area_id, measure, month, numerator, denominator,
                                 numerator_key, denominator_key)
    SELECT area_id, measure, month, sum(numerator), sum(denominator),
           sum(numerator_key), sum(denominator_key)
    FROM l GROUP BY 1, 2, 3
    ON CONFLICT (area_id, measure, month, shard) DO UPDATE
    SET numerator = s.numerator + excluded.numerator,
        denominator = s.denominator + excluded.denominator,
        numerator_key = s.numerator_key + excluded.numerator_key,
        denominator_key = s.denominator_key + excluded.denominator_key"""


CURRENT_FROM_DELTAS = """
    INSERT INTO stat_current (area_id, parent_id, measure, numerator, denominator,
                              numerator_key, denominator_key)
    SELECT d.area_id, a.parent_id, d.measure, sum(d.numerator), sum(d.denominator),
           sum(d.numerator_key), sum(d.denominator_key)
    FROM stat_delta d JOIN area a ON a.id = d.area_id
    GROUP BY d.area_id, a.parent_id, d.measure"""

# Learners' record keys, and the per-ward learning counters recomputed from the learners.
LEARNER_KEYS = f"UPDATE learner_module SET record_key = {sql_key('learner_id::text', '$1', '$2')}"
LEARNING_FROM_LEARNERS = """
    INSERT INTO ward_learning (ward_id, province_id, module_id, learners, completions, passed,
                               attempts, learners_key, completions_key, passed_key, attempts_key)
    SELECT ward_id, province_id, module_id,
           count(*) FILTER (WHERE attempts > 0), count(*) FILTER (WHERE completed),
           count(*) FILTER (WHERE passed), coalesce(sum(attempts), 0),
           coalesce(sum(record_key) FILTER (WHERE attempts > 0), 0),
           coalesce(sum(record_key) FILTER (WHERE completed), 0),
           coalesce(sum(record_key) FILTER (WHERE passed), 0),
           coalesce(sum(record_key * attempts), 0)
    FROM learner_module GROUP BY ward_id, province_id, module_id"""


async def rebuild(
    conn: asyncpg.Connection, catalog: Catalog, advance: Callable[[str], None] | None = None
) -> int:
    """Recompute every counter (and key sum) from the stored submissions, province by
    province, then the learning counters from the learners.

    Writers and the folder wait (EXCLUSIVE lock) and readers keep seeing the old counters
    until the commit.
    Returns the number of households counted.
    """
    async with conn.transaction():
        await conn.execute(LOCK_COUNTERS.format("EXCLUSIVE"))
        await conn.execute("LOCK TABLE ward_learning, learner_module IN EXCLUSIVE MODE")
        # Everything the log holds is in the stored submissions, counted again below.
        await conn.execute("DELETE FROM stat_log")
        await conn.execute("DELETE FROM stat_delta")
        await conn.execute("DELETE FROM stat_current")
        provinces = await conn.fetch(
            "SELECT id, name FROM area WHERE level = 'province' ORDER BY sort_key"
        )
        statement = accumulate_sql(catalog.history_by_province)
        for province in provinces:
            await conn.execute(statement, province["id"], *catalog.keys.params)
            if advance is not None:
                advance(province["name"])
        await conn.execute(CURRENT_FROM_DELTAS)
        await sums.refill(conn)
        await conn.execute(LEARNER_KEYS, *catalog.keys.params)
        await conn.execute("DELETE FROM ward_learning")
        await conn.execute(LEARNING_FROM_LEARNERS)
        counted: int = await conn.fetchval("SELECT count(*) FROM household")
    return counted


# Reading the counters -------------------------------------------------------------------------

Cells = dict[int, dict[str, Cell]]  # area_id → measure → cell


Targets = dict[tuple[int, str], float]  # (area_id or NATION, indicator) → target


async def current_with_targets(
    conn: asyncpg.Connection, area_ids: list[int], target_areas: list[int], year: int
) -> tuple[Cells, Targets]:
    """Today's counters of these areas and the targets set on ``target_areas`` (see
    :func:`targets`), in one round trip: this is the path of every card."""
    rows = await conn.fetch(
        """SELECT area_id, measure, sum(numerator)::bigint, sum(denominator)::bigint,
                  sum(numerator_key)::bigint, sum(denominator_key)::bigint,
                  NULL::numeric AS value
           FROM stat_current_live WHERE area_id = ANY($1::int[])
           GROUP BY area_id, measure
           UNION ALL
           (SELECT DISTINCT ON (coalesce(area_id, 0), indicator)
                   coalesce(area_id, 0), indicator, NULL, NULL, NULL, NULL, value
            FROM target
            WHERE coalesce(area_id, 0) = ANY($2::int[]) AND year <= $3
            ORDER BY coalesce(area_id, 0), indicator, year DESC)""",
        area_ids,
        target_areas,
        year,
    )
    cells: Cells = {area_id: {} for area_id in area_ids}
    found: Targets = {}
    for area_id, measure, numerator, denominator, n_key, d_key, value in rows:
        if value is None:
            cells[area_id][measure] = (numerator, denominator, n_key, d_key)
        else:
            found[(area_id, measure)] = float(value)
    return cells, found


class MonthlyDelta(NamedTuple):
    area_id: int
    measure: str
    month: date
    cell: Cell


async def monthly_deltas(
    conn: asyncpg.Connection,
    area_ids: list[int],
    until: date,
    measure: str | None = None,
) -> list[MonthlyDelta]:
    """Monthly changes of these areas up to ``until`` (inclusive), oldest first."""
    rows = await conn.fetch(
        """SELECT area_id, measure, month, sum(numerator)::bigint, sum(denominator)::bigint,
                  sum(numerator_key)::bigint, sum(denominator_key)::bigint
           FROM stat_delta_live
           WHERE area_id = ANY($1::int[]) AND month <= $2 AND ($3::text IS NULL OR measure = $3)
           GROUP BY area_id, measure, month
           ORDER BY month""",
        area_ids,
        until,
        measure,
    )
    return [MonthlyDelta(r[0], r[1], r[2], (r[3], r[4], r[5], r[6])) for r in rows]


class AreaRow(NamedTuple):
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    province_id: int


async def areas(db: asyncpg.Connection | asyncpg.Pool) -> list[AreaRow]:
    """Every province and ward, in Vietnamese order."""
    rows = await db.fetch(
        """SELECT id, code, name, level, parent_id, province_id FROM area
           WHERE scheme = 'vn2025' ORDER BY sort_key, code"""
    )
    return [AreaRow(*r) for r in rows]


# Targets ------------------------------------------------------------------------------------

NATION = 0  # the key of national targets (their area_id is NULL)


async def targets(conn: asyncpg.Connection, area_ids: list[int], year: int) -> Targets:
    """The latest target not after ``year`` of each (area, indicator) set on these areas
    (include ``NATION`` for the national defaults)."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (coalesce(area_id, 0), indicator)
                  coalesce(area_id, 0) AS area_id, indicator, value
           FROM target
           WHERE coalesce(area_id, 0) = ANY($1::int[]) AND year <= $2
           ORDER BY coalesce(area_id, 0), indicator, year DESC""",
        area_ids,
        year,
    )
    return {(r["area_id"], r["indicator"]): float(r["value"]) for r in rows}


async def set_target(
    conn: asyncpg.Connection,
    *,
    area_id: int | None,
    indicator: str,
    year: int,
    value: float,
    user_id: uuid.UUID,
) -> float | None:
    """Insert or replace a target; returns the value it replaced, if any."""
    previous = await conn.fetchval(
        """SELECT value FROM target
           WHERE coalesce(area_id, 0) = coalesce($1, 0) AND indicator = $2 AND year = $3
           FOR UPDATE""",
        area_id,
        indicator,
        year,
    )
    if previous is None:
        await conn.execute(
            """INSERT INTO target (area_id, indicator, year, value, updated_by)
               VALUES ($1, $2, $3, $4, $5)""",
            area_id,
            indicator,
            year,
            value,
            user_id,
        )
        return None
    await conn.execute(
        """UPDATE target SET value = $4, updated_by = $5, updated_at = now()
           WHERE coalesce(area_id, 0) = coalesce($1, 0) AND indicator = $2 AND year = $3""",
        area_id,
        indicator,
        year,
        value,
        user_id,
    )
    return float(previous)


@asynccontextmanager
async def recounting(
    conn: asyncpg.Connection, catalog: Catalog, household_ids: list[uuid.UUID]
) -> AsyncIterator[None]:
    """Keep the counters right across a change to these households: what they contribute
    after the change, minus what they contributed before. Use inside a transaction, with
    the households locked (or new), so the two readings see no one else's change."""
    before = await household_history(conn, catalog, household_ids)
    yield
    after = await household_history(conn, catalog, household_ids)
    await apply_deltas(conn, difference(after, before))
