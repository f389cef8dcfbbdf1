"""Statistics from the counters: cards, children tables and series.

Reading never scans households: a ward card reads its own counters, a province card its
province's, the nation sums its provinces. Views other than a ward official's or team
member's own ward are protected cell by cell (``api.stats.disclosure``), so no view needs
its siblings' counters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import NamedTuple

import asyncpg
import msgspec

from api.i18n import translate
from api.queries.modules import LearningCounts, LearningSummary, VersionSource, learning_summary
from api.stats import counters as q
from api.stats.catalog import COVERAGE, Catalog
from api.stats.counters import EMPTY, Cell, MonthlyDelta, add
from api.stats.disclosure import (
    MIN_DENOMINATOR,
    PTABLE,
    REASONS,
    WITHHELD,
    part_key,
    published,
)
from api.stats.forecast import WINDOW, forecast
from api.stats.periods import Grain, Period, add_months, month_start, period_points, today
from api.stats.places import Place, Places
from schemas.modules import CompetenceLearning, Learning, ModuleLearning
from schemas.stats import Card, Coverage, Forecast, Indicator, IndicatorValue, SeriesPoint

# Counters over time -------------------------------------------------------------------------


def cumulate(deltas: list[MonthlyDelta], ends: list[date]) -> dict[tuple[int, str], list[Cell]]:
    """Each (area, measure)'s counters as of each end month, from deltas sorted by month."""
    found: dict[tuple[int, str], list[Cell]] = {}
    running: dict[tuple[int, str], Cell] = {}
    position = 0
    for index, end in enumerate(ends):
        while position < len(deltas) and deltas[position].month <= end:
            delta = deltas[position]
            key = (delta.area_id, delta.measure)
            running[key] = add(running.get(key, EMPTY), delta.cell)
            position += 1
        for key, cell in running.items():
            found.setdefault(key, [EMPTY] * len(ends))[index] = cell
    return found


def total(cells: Iterable[dict[str, Cell]]) -> dict[str, Cell]:
    summed: dict[str, Cell] = defaultdict(lambda: EMPTY)
    for area_cells in cells:
        for measure, cell in area_cells.items():
            summed[measure] = add(summed[measure], cell)
    return dict(summed)


async def cells_at(
    conn: asyncpg.Connection, area_ids: list[int], period: Period, target_areas: list[int]
) -> tuple[q.Cells, q.Targets]:
    """Counters of these areas at the end of ``period`` (today's for current), and the
    targets set on ``target_areas`` for the period's year."""
    if period.end is None:
        return await q.current_with_targets(conn, area_ids, target_areas, period.year)
    by_key = cumulate(await q.monthly_deltas(conn, area_ids, period.end), [period.end])
    found: q.Cells = {area_id: {} for area_id in area_ids}
    for (area_id, measure), cells in by_key.items():
        found[area_id][measure] = cells[0]
    return found, await q.targets(conn, target_areas, period.year)


async def recent_cells(
    conn: asyncpg.Connection, area_ids: list[int], end: date, measure: str | None = None
) -> dict[tuple[int, str], list[Cell]]:
    """Each (area, measure)'s cells at the end of each of the ``WINDOW`` months up to
    ``end``, oldest first: the history a forecast is made from."""
    ends = [add_months(end, back - WINDOW + 1) for back in range(WINDOW)]
    return cumulate(await q.monthly_deltas(conn, area_ids, end, measure), ends)


def trend(
    indicator: Indicator,
    cells: list[Cell],
    end: date,
    target: float | None,
    *,
    exact: bool,
) -> Forecast:
    """The forecast from the monthly values this caller may see (exact or protected)."""
    values: list[float | None] = []
    for cell in cells:
        shown = published(cell, indicator.unit, exact_view=exact)
        ok = not shown.withheld and shown.denominator > 0
        values.append(shown.numerator / shown.denominator if ok else None)
    return forecast(values, end, target)


def last_month(period: Period) -> date:
    return period.end if period.end is not None else month_start(today())


# Building responses -------------------------------------------------------------------------


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def indicator_value(
    indicator: Indicator, cell: Cell, target: float | None, language: str, *, exact: bool
) -> IndicatorValue:
    """One indicator as the caller may see it: exact in their own ward, else perturbed (and
    withheld when its perturbed denominator is small)."""
    name = getattr(indicator.name, language)
    shown = published(cell, indicator.unit, exact_view=exact)
    if shown.withheld:
        return IndicatorValue(
            code=indicator.code,
            name=name,
            unit=indicator.unit,
            numerator=None,
            denominator=None,
            value=None,
            target=target,
            gap=None,
            suppressed=True,
            reason=WITHHELD,
            reason_text=translate(language, REASONS[WITHHELD]),
        )
    numerator, denominator = shown.numerator, shown.denominator
    value = numerator / denominator if denominator else None
    return IndicatorValue(
        code=indicator.code,
        name=name,
        unit=indicator.unit,
        numerator=numerator,
        denominator=denominator,
        value=rounded(value),
        target=target,
        gap=rounded(target - value) if target is not None and value is not None else None,
        suppressed=False,
        reason=None,
        reason_text=None,
    )


def nearest_target(
    found: dict[tuple[int, str], float], chain: list[int], indicator: str
) -> float | None:
    for area_id in chain:
        if (area_id, indicator) in found:
            return found[(area_id, indicator)]
    return None


def coverage_of(cells: dict[str, Cell], *, exact: bool) -> Coverage:
    shown = published(
        cells.get(COVERAGE, EMPTY), "fraction", exact_view=exact, whole_numerator=True
    )
    if shown.withheld:
        return Coverage(surveyed=None, registered=None, value=None, suppressed=True)
    surveyed, registered = shown.numerator, shown.denominator
    return Coverage(
        surveyed=surveyed,
        registered=registered,
        value=rounded(surveyed / registered) if registered else None,
    )


async def card(
    conn: asyncpg.Connection,
    catalog: Catalog,
    places: Places,
    place: Place,
    period: Period,
    *,
    exact: bool,
    language: str,
    versions: VersionSource,
) -> Card:
    """One round trip for today's card: the counters it needs and the targets. Every cell
    is protected on its own (no siblings needed): see ``api.stats.disclosure``."""
    if place.id is None:
        area_ids = [p.id for p in await places.children(conn, None) if p.id is not None]
        found_cells, found = await cells_at(conn, area_ids, period, place.chain)
        own = total(found_cells.values())
    else:
        area_ids = [place.id]
        found_cells, found = await cells_at(conn, [place.id], period, place.chain)
        own = found_cells.get(place.id, {})
    end = last_month(period)
    history = await recent_cells(conn, area_ids, end)
    values = []
    for indicator in catalog.indicators:
        target = nearest_target(found, place.chain, indicator.code)
        months = [EMPTY] * WINDOW
        for area_id in area_ids:
            for index, cell in enumerate(history.get((area_id, indicator.code), [])):
                months[index] = add(months[index], cell)
        value = indicator_value(
            indicator, own.get(indicator.code, EMPTY), target, language, exact=exact
        )
        values.append(
            msgspec.structs.replace(
                value, forecast=trend(indicator, months, end, target, exact=exact)
            )
        )
    return Card(
        area=place.public(language),
        period=period.label,
        exact=exact,
        coverage=coverage_of(own, exact=exact),
        indicators=values,
        learning=(
            await learning_of(
                conn, places, place, exact=exact, language=language, versions=versions
            )
            if period.end is None
            else None
        ),
    )


def _protected_counts(counts: LearningCounts) -> LearningCounts | None:
    """Perturbed learning counts, or None when too few learners may be shown."""
    learners = PTABLE.perturb(counts.learners, counts.keys[0])
    if 0 < learners < MIN_DENOMINATOR:
        return None
    if learners == 0:  # nobody, as far as anyone can tell: every count says so
        return LearningCounts(0, 0, 0, 0, counts.keys)

    def part(count: int, key: int) -> int:
        return PTABLE.perturb(count, part_key(key, counts.keys[0]))

    return LearningCounts(
        learners=learners,
        completions=min(part(counts.completions, counts.keys[1]), learners),
        passed=min(part(counts.passed, counts.keys[2]), learners),
        attempts=part(counts.attempts, counts.keys[3]),
        keys=counts.keys,
    )


def learning_view(summary: LearningSummary, *, exact: bool) -> Learning:
    """Learning counts as the caller may see them: exact in one's own ward, else each count
    perturbed by its own cell key (module rows, competence rows and totals alike), and a row
    whose perturbed learners are 1 to 9 withheld."""
    modules: list[ModuleLearning] = []
    for module in summary.modules:
        counts = module.counts if exact else _protected_counts(module.counts)
        modules.append(
            ModuleLearning(
                module_id=module.module_id,
                code=module.code,
                title=module.title,
                learners=None if counts is None else counts.learners,
                completions=None if counts is None else counts.completions,
                passed=None if counts is None else counts.passed,
                attempts=None if counts is None else counts.attempts,
                suppressed=counts is None,
                reason=WITHHELD if counts is None else None,
            )
        )
    competences: list[CompetenceLearning] = []
    for competence in summary.competences:
        counts = competence.counts if exact else _protected_counts(competence.counts)
        competences.append(
            CompetenceLearning(
                component=competence.component,
                learners=None if counts is None else counts.learners,
                completions=None if counts is None else counts.completions,
                passed=None if counts is None else counts.passed,
                suppressed=counts is None,
                reason=WITHHELD if counts is None else None,
            )
        )
    return Learning(modules=modules, competences=competences)


async def learning_of(
    conn: asyncpg.Connection,
    places: Places,
    place: Place,
    *,
    exact: bool,
    language: str,
    versions: VersionSource,
) -> Learning:
    if place.level == "ward":
        assert place.id is not None
        wards: list[int] | None = [place.id]
    elif place.level == "province":
        wards = [w.id for w in await places.children(conn, place.id) if w.id is not None]
    else:
        wards = None
    summary = await learning_summary(conn, wards, language, versions)
    return learning_view(summary, exact=exact)


class ChildFigures(NamedTuple):
    place: Place
    indicator: IndicatorValue
    coverage: Coverage


async def children(
    conn: asyncpg.Connection,
    places: Places,
    place: Place,
    indicator: Indicator,
    period: Period,
    language: str,
) -> list[ChildFigures]:
    """Every child of ``place``, always protected: it is a comparison across areas."""
    if place.level == "ward":
        return []
    kids = [kid for kid in await places.children(conn, place.id) if kid.id is not None]
    ids = [kid.id for kid in kids if kid.id is not None]
    found_cells, found = await cells_at(conn, ids, period, ids + place.chain)
    end = last_month(period)
    history = await recent_cells(conn, ids, end, indicator.code)
    rows = []
    for kid in kids:
        assert kid.id is not None
        cells = found_cells.get(kid.id, {})
        target = nearest_target(found, [kid.id, *place.chain], indicator.code)
        value = indicator_value(
            indicator, cells.get(indicator.code, EMPTY), target, language, exact=False
        )
        months = history.get((kid.id, indicator.code), [EMPTY] * WINDOW)
        rows.append(
            ChildFigures(
                kid,
                msgspec.structs.replace(
                    value, forecast=trend(indicator, months, end, target, exact=False)
                ),
                coverage_of(cells, exact=False),
            )
        )
    return rows


async def series_forecast(
    conn: asyncpg.Connection,
    places: Places,
    place: Place,
    indicator: Indicator,
    target: float | None,
    *,
    exact: bool,
    now: date,
) -> Forecast:
    """The forecast of ``place`` for one indicator, from the months up to the current one."""
    if place.id is None:
        area_ids = [p.id for p in await places.children(conn, None) if p.id is not None]
    else:
        area_ids = [place.id]
    end = month_start(now)
    history = await recent_cells(conn, area_ids, end, indicator.code)
    months = [EMPTY] * WINDOW
    for area_id in area_ids:
        for index, cell in enumerate(history.get((area_id, indicator.code), [])):
            months[index] = add(months[index], cell)
    return trend(indicator, months, end, target, exact=exact)


async def series(
    conn: asyncpg.Connection,
    places: Places,
    place: Place,
    indicator: Indicator,
    grain: Grain,
    *,
    exact: bool,
    language: str,
    now: date,
) -> list[SeriesPoint]:
    """Each point is the cell as of the end of its period, protected like a card's."""
    points = period_points(grain, now)
    ends = [p.end for p in points if p.end is not None]
    if place.id is None:
        area_ids = [p.id for p in await places.children(conn, None) if p.id is not None]
    else:
        area_ids = [place.id]
    deltas = await q.monthly_deltas(conn, area_ids, ends[-1], indicator.code)
    by_area = {
        area_id: cells for (area_id, _), cells in cumulate(deltas, ends).items()
    }  # one measure
    years = sorted({p.year for p in points})
    targets_by_year = {year: await q.targets(conn, place.chain, year) for year in years}
    result = []
    for index, point in enumerate(points):
        cell = EMPTY
        for area_id in area_ids:
            cell = add(cell, by_area.get(area_id, [EMPTY] * len(ends))[index])
        target = nearest_target(targets_by_year[point.year], place.chain, indicator.code)
        value = indicator_value(indicator, cell, target, language, exact=exact)
        result.append(
            SeriesPoint(
                period=point.label,
                numerator=value.numerator,
                denominator=value.denominator,
                value=value.value,
                target=value.target,
                gap=value.gap,
                suppressed=value.suppressed,
                reason=value.reason,
                reason_text=value.reason_text,
            )
        )
    return result
