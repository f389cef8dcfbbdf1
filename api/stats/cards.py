"""Statistics from the counters: periods, cards, children tables, series and export rows.

Reading never scans households: a ward card reads its own counters, a province card its
province's, the nation sums its provinces. Views other than a ward official's or team
member's own ward are suppressed (primary and complementary, see ``api.stats.disclosure``), which
needs the siblings' counters: the children of the same parent.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import TypeVar

import asyncpg
import msgspec

from api.i18n import translate
from api.queries.modules import LearningSummary, VersionSource, learning_summary
from api.stats import counters as q
from api.stats.catalog import COVERAGE, Catalog
from api.stats.counters import EMPTY, Cell, MonthlyDelta
from api.stats.disclosure import REASONS, primary, protect
from api.stats.periods import Grain, Period, period_points
from api.stats.places import Place, Places
from schemas.modules import CompetenceLearning, Learning, ModuleLearning
from schemas.stats import Card, Coverage, Indicator, IndicatorValue, SeriesPoint

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
            before = running.get(key, EMPTY)
            running[key] = (before[0] + delta.numerator, before[1] + delta.denominator)
            position += 1
        for key, cell in running.items():
            found.setdefault(key, [EMPTY] * len(ends))[index] = cell
    return found


def total(cells: Iterable[dict[str, Cell]]) -> dict[str, Cell]:
    summed: dict[str, Cell] = defaultdict(lambda: EMPTY)
    for area_cells in cells:
        for measure, cell in area_cells.items():
            before = summed[measure]
            summed[measure] = (before[0] + cell[0], before[1] + cell[1])
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


# Building responses -------------------------------------------------------------------------


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def indicator_value(
    indicator: Indicator, cell: Cell, target: float | None, reason: str | None, language: str
) -> IndicatorValue:
    name = getattr(indicator.name, language)
    if reason is not None:
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
            reason=reason,
            reason_text=translate(language, REASONS[reason]),
        )
    numerator, denominator = cell
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


def coverage_of(cells: dict[str, Cell]) -> Coverage:
    surveyed, registered = cells.get(COVERAGE, EMPTY)
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
    """One round trip for today's card: the counters it needs and the targets."""
    siblings: q.Cells | None = None
    if place.id is None:
        provinces = [p.id for p in await places.children(conn, None) if p.id is not None]
        found_cells, found = await cells_at(conn, provinces, period, place.chain)
        own = total(found_cells.values())
    elif exact:
        found_cells, found = await cells_at(conn, [place.id], period, place.chain)
        own = found_cells.get(place.id, {})
    else:
        group = [p.id for p in await places.children(conn, place.parent_id) if p.id is not None]
        siblings, found = await cells_at(conn, group, period, place.chain)
        own = siblings.get(place.id, {})
    values = []
    for indicator in catalog.indicators:
        cell = own.get(indicator.code, EMPTY)
        reason = None
        if siblings is not None and place.id is not None:
            column = {
                area_id: cells.get(indicator.code, EMPTY) for area_id, cells in siblings.items()
            }
            reason = protect(column, indicator.unit)[place.id]
        elif not exact:
            reason = protect({0: cell}, indicator.unit)[0]
        target = nearest_target(found, place.chain, indicator.code)
        values.append(indicator_value(indicator, cell, target, reason, language))
    return Card(
        area=place.public(language),
        period=period.label,
        coverage=coverage_of(own),
        indicators=values,
        learning=(
            await learning_of(
                conn, places, place, exact=exact, language=language, versions=versions
            )
            if period.end is None
            else None
        ),
    )


LearningRow = TypeVar("LearningRow", ModuleLearning, CompetenceLearning)


def _learning_shown(row: LearningRow) -> LearningRow:
    """A learning row with its counts hidden when they could single someone out."""
    learners = row.learners or 0
    why = primary((row.passed or 0, learners), "percent") or primary(
        (row.completions or 0, learners), "percent"
    )
    if why is None:
        return row
    hidden: dict[str, object] = {"learners": None, "completions": None, "passed": None}
    if isinstance(row, ModuleLearning):
        hidden["attempts"] = None
    return msgspec.structs.replace(row, suppressed=True, reason=why, **hidden)


def learning_view(summary: LearningSummary, *, exact: bool) -> Learning:
    """Learning counts as the caller may see them: outside one's own ward, a module or
    competence with few learners, or with 1–4 of them (not) passing, is hidden."""
    if exact:
        return Learning(modules=summary.modules, competences=summary.competences)
    return Learning(
        modules=[_learning_shown(module) for module in summary.modules],
        competences=[_learning_shown(competence) for competence in summary.competences],
    )


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


async def children(
    conn: asyncpg.Connection,
    places: Places,
    place: Place,
    indicator: Indicator,
    period: Period,
    language: str,
) -> list[tuple[Place, IndicatorValue]]:
    """Every child of ``place`` (always suppressed: it is a comparison across areas)."""
    if place.level == "ward":
        return []
    kids = [kid for kid in await places.children(conn, place.id) if kid.id is not None]
    ids = [kid.id for kid in kids if kid.id is not None]
    found_cells, found = await cells_at(conn, ids, period, ids + place.chain)
    group = {area_id: found_cells.get(area_id, {}).get(indicator.code, EMPTY) for area_id in ids}
    reasons = protect(group, indicator.unit)
    rows = []
    for kid in kids:
        assert kid.id is not None
        target = nearest_target(found, [kid.id, *place.chain], indicator.code)
        rows.append(
            (kid, indicator_value(indicator, group[kid.id], target, reasons[kid.id], language))
        )
    return rows


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
    points = period_points(grain, now)
    ends = [p.end for p in points if p.end is not None]
    last = ends[-1]
    if place.id is None:
        area_ids = [p.id for p in await places.children(conn, None) if p.id is not None]
    elif exact:
        area_ids = [place.id]
    else:
        area_ids = [p.id for p in await places.children(conn, place.parent_id) if p.id is not None]
    deltas = await q.monthly_deltas(conn, area_ids, last, indicator.code)
    by_area = {
        area_id: cells for (area_id, _), cells in cumulate(deltas, ends).items()
    }  # one measure
    years = sorted({p.year for p in points})
    targets_by_year = {year: await q.targets(conn, place.chain, year) for year in years}
    result = []
    for index, point in enumerate(points):
        group = {area_id: by_area.get(area_id, [EMPTY] * len(ends))[index] for area_id in area_ids}
        if place.id is None:
            cell = total({indicator.code: c} for c in group.values()).get(indicator.code, EMPTY)
            reason = protect({0: cell}, indicator.unit)[0]
        else:
            cell = group.get(place.id, EMPTY)
            reason = None if exact else protect(group, indicator.unit)[place.id]
        target = nearest_target(targets_by_year[point.year], place.chain, indicator.code)
        value = indicator_value(indicator, cell, target, reason, language)
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
