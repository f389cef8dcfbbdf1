"""Statistics from the counters: cards, children tables and series.

Reading never scans households: a ward card reads its own counters; a province card its
wards' counters, perturbed one by one and added up in one SQL statement (``api.stats.sums``);
the nation every ward's the same way. Views other than a ward official's or team member's
own ward are protected (``api.stats.disclosure``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import date
from typing import NamedTuple

import asyncpg
import msgspec

from api.i18n import translate
from api.queries.modules import LearningCounts, LearningSummary, VersionSource, learning_summary
from api.stats import counters as q
from api.stats import sums
from api.stats.catalog import COVERAGE, Catalog
from api.stats.cells import EMPTY, Cell, add
from api.stats.closing import closed_month
from api.stats.counters import MonthlyDelta
from api.stats.disclosure import (
    MIN_DENOMINATOR,
    PTABLE,
    REASONS,
    WITHHELD,
    Published,
    part_key,
    published,
)
from api.stats.forecast import WINDOW, forecast
from api.stats.periods import Grain, Period, add_months, month_start, period_points, today
from api.stats.places import Place, Places
from api.stats.sums import NOTHING
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


Units = Mapping[str, str]  # measure → unit ("fraction", "ratio"; coverage is a percent)


def units_of(catalog: Catalog) -> Units:
    return {COVERAGE: "fraction"} | {i.code: i.unit for i in catalog.indicators}


def ratios(units: Units) -> list[str]:
    return [measure for measure, unit in units.items() if unit == "ratio"]


def ward_figure(measure: str, unit: str, cell: Cell, *, exact: bool) -> Published:
    """A ward's cell as the caller may see it: exact in their own ward, else perturbed (the
    surveyed households of coverage keep their own key: they are the household indicators'
    denominator, and show the same value there)."""
    return published(cell, unit, exact_view=exact, whole_numerator=measure == COVERAGE)


def window_ends(end: date) -> list[date]:
    """The ``WINDOW`` months up to ``end``, oldest first: the history a forecast is made of."""
    return [add_months(end, back - WINDOW + 1) for back in range(WINDOW)]


async def figures_at(
    conn: asyncpg.Connection, place: Place, ends: list[date], units: Units, *, exact: bool
) -> dict[str, list[Published]]:
    """``place``'s published figures of these measures at the end of each month in ``ends``.

    A ward's are its own cells; a province's and the nation's are their wards' perturbed
    cells added up (``api.stats.sums``)."""
    measure = next(iter(units)) if len(units) == 1 else None
    if place.level != "ward":
        provinces = None if place.id is None else [place.id]
        found = await sums.at(conn, provinces, ends, ratios(units), measure)
        added = sums.nation_at(found) if place.id is None else found.get(place.id, {})
        return sums.display_at(added, ratios(units))
    assert place.id is not None
    deltas = await q.monthly_deltas(conn, [place.id], ends[-1], measure)
    return {
        code: [ward_figure(code, units.get(code, "fraction"), c, exact=exact) for c in cells]
        for (_, code), cells in cumulate(deltas, ends).items()
    }


async def figures_now(
    conn: asyncpg.Connection, place: Place, period: Period, units: Units, *, exact: bool
) -> tuple[dict[str, Published], q.Targets]:
    """``place``'s published figures at the end of ``period`` (today's for current), and the
    targets set on its chain for the period's year."""
    if period.end is not None:
        found = await figures_at(conn, place, [period.end], units, exact=exact)
        targets = await q.targets(conn, place.chain, period.year)
        return {code: points[0] for code, points in found.items()}, targets
    if place.level != "ward":
        provinces = None if place.id is None else [place.id]
        by_province = await sums.now(conn, provinces, ratios(units))
        targets = await q.targets(conn, place.chain, period.year)
        added = sums.nation(by_province) if place.id is None else by_province.get(place.id, {})
        return sums.display(added, ratios(units)), targets
    assert place.id is not None
    cells, targets = await q.current_with_targets(conn, [place.id], place.chain, period.year)
    return {
        code: ward_figure(code, units.get(code, "fraction"), cell, exact=exact)
        for code, cell in cells.get(place.id, {}).items()
    }, targets


def trend(months: list[Published], end: date, target: float | None) -> Forecast:
    """The forecast from the monthly values this caller may see (exact or protected)."""
    values: list[float | None] = []
    for shown in months:
        ok = not shown.withheld and shown.denominator > 0
        values.append(shown.numerator / shown.denominator if ok else None)
    return forecast(values, end, target)


def last_month(period: Period) -> date:
    return period.end if period.end is not None else month_start(today())


# Building responses -------------------------------------------------------------------------


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def indicator_value(
    indicator: Indicator, shown: Published, target: float | None, language: str
) -> IndicatorValue:
    """One indicator as published (withheld when its perturbed denominator is small)."""
    name = getattr(indicator.name, language)
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


def coverage_of(shown: Published) -> Coverage:
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
    """A card: today's (or a past period's) figures, each indicator's forecast from the
    months before, and learning. ``exact`` only for a ward's own view."""
    units = units_of(catalog)
    own, found = await figures_now(conn, place, period, units, exact=exact)
    # A ward's closed month keeps the counts it had when it was closed (api/stats/closing.py).
    closed = (
        await closed_month(conn, place.id, period.end)
        if place.level == "ward" and place.id is not None and period.end is not None
        else None
    )
    if closed is not None:
        own = {
            code: ward_figure(code, units.get(code, "fraction"), cell, exact=exact)
            for code, cell in closed.cells.items()
        }
    end = last_month(period)
    history = await figures_at(conn, place, window_ends(end), units, exact=exact)
    values = []
    for indicator in catalog.indicators:
        target = nearest_target(found, place.chain, indicator.code)
        months = history.get(indicator.code, [NOTHING] * WINDOW)
        value = indicator_value(indicator, own.get(indicator.code, NOTHING), target, language)
        values.append(msgspec.structs.replace(value, forecast=trend(months, end, target)))
    return Card(
        area=place.public(language),
        period=period.label,
        exact=exact,
        coverage=coverage_of(own.get(COVERAGE, NOTHING)),
        indicators=values,
        learning=(
            await learning_of(
                conn, places, place, exact=exact, language=language, versions=versions
            )
            if period.end is None
            else None
        ),
        closed=closed.public(language) if closed is not None else None,
    )


def perturbed_learning(counts: LearningCounts) -> LearningCounts:
    """One ward's learning counts (of a module) perturbed, each by its own cell key mixed
    with the learners' (a learner who is counted in one but not another still moves both).
    Areas above a ward, and competence rows, add these up before the display rules
    (``_shown``): like indicators, they are sums of perturbed cells, so no difference of
    published rows recovers a true count, and the noise's zero mean keeps the sums
    unbiased."""

    def part(count: int, key: int) -> int:
        return PTABLE.perturb(count, part_key(key, counts.keys[0]))

    return LearningCounts(
        learners=PTABLE.perturb(counts.learners, counts.keys[0]),
        completions=part(counts.completions, counts.keys[1]),
        passed=part(counts.passed, counts.keys[2]),
        attempts=part(counts.attempts, counts.keys[3]),
        keys=NO_KEYS,
    )


NO_KEYS = (0, 0, 0, 0)


def _shown(counts: LearningCounts, *, exact: bool) -> LearningCounts | None:
    """A row as published: exact, or (protected) withheld when it has 1 to 9 learners,
    all zeros when it has none (nobody, as far as anyone can tell: every count says so),
    completions and passes never above the learners."""
    if exact:
        return counts
    learners = counts.learners
    if 0 < learners < MIN_DENOMINATOR:
        return None
    if learners <= 0:
        return LearningCounts(0, 0, 0, 0, NO_KEYS)
    return LearningCounts(
        learners,
        max(0, min(counts.completions, learners)),
        max(0, min(counts.passed, learners)),
        max(0, counts.attempts),
        NO_KEYS,
    )


def learning_view(summary: LearningSummary, *, exact: bool) -> Learning:
    """Learning counts as the caller may see them, from a summary made exact (one's own
    ward) or from perturbed wards (``perturbed_learning``); a protected row whose learners
    are 1 to 9 is withheld."""
    modules: list[ModuleLearning] = []
    for module in summary.modules:
        counts = _shown(module.counts, exact=exact)
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
        counts = _shown(competence.counts, exact=exact)
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


async def learning_in(
    conn: asyncpg.Connection,
    ward_ids: list[int] | None,
    *,
    exact: bool,
    language: str,
    versions: VersionSource,
) -> Learning:
    """Learning in these wards (None: everywhere) as the caller may see it."""
    per_ward = None if exact else perturbed_learning
    summary = await learning_summary(conn, ward_ids, language, versions, per_ward)
    return learning_view(summary, exact=exact)


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
    return await learning_in(conn, wards, exact=exact, language=language, versions=versions)


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
    units = {COVERAGE: "fraction", indicator.code: indicator.unit}
    end = last_month(period)
    ends = window_ends(end)
    if place.level == "nation":  # provinces: sums of their wards
        if period.end is None:
            added = await sums.now(conn, None, ratios(units))
        else:
            added = {
                pid: {code: points[0] for code, points in cells.items()}
                for pid, cells in (await sums.at(conn, None, [end], ratios(units))).items()
            }
        now = {pid: sums.display(cells, ratios(units)) for pid, cells in added.items()}
        history = {
            pid: sums.display_at(cells, ratios(units))
            for pid, cells in (
                await sums.at(conn, None, ends, ratios(units), indicator.code)
            ).items()
        }
        found = await q.targets(conn, ids + place.chain, period.year)
    else:  # wards: each perturbed on its own
        found_cells, found = await cells_at(conn, ids, period, ids + place.chain)
        now = {
            ward_id: {code: ward_figure(code, units.get(code, "fraction"), cell, exact=False)
                      for code, cell in cells.items()}
            for ward_id, cells in found_cells.items()
        }  # fmt: skip
        history = defaultdict(dict)
        deltas = await q.monthly_deltas(conn, ids, end, indicator.code)
        for (ward_id, code), cells_ in cumulate(deltas, ends).items():
            history[ward_id][code] = [
                ward_figure(code, indicator.unit, c, exact=False) for c in cells_
            ]
    rows = []
    for kid in kids:
        assert kid.id is not None
        shown = now.get(kid.id, {})
        target = nearest_target(found, [kid.id, *place.chain], indicator.code)
        value = indicator_value(indicator, shown.get(indicator.code, NOTHING), target, language)
        months = history.get(kid.id, {}).get(indicator.code, [NOTHING] * WINDOW)
        rows.append(
            ChildFigures(
                kid,
                msgspec.structs.replace(value, forecast=trend(months, end, target)),
                coverage_of(shown.get(COVERAGE, NOTHING)),
            )
        )
    return rows


async def cells_at(
    conn: asyncpg.Connection, area_ids: list[int], period: Period, target_areas: list[int]
) -> tuple[q.Cells, q.Targets]:
    """Counters of these wards at the end of ``period`` (today's for current), and the
    targets set on ``target_areas`` for the period's year."""
    if period.end is None:
        return await q.current_with_targets(conn, area_ids, target_areas, period.year)
    by_key = cumulate(await q.monthly_deltas(conn, area_ids, period.end), [period.end])
    found: q.Cells = {area_id: {} for area_id in area_ids}
    for (area_id, measure), cells in by_key.items():
        found[area_id][measure] = cells[0]
    return found, await q.targets(conn, target_areas, period.year)


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
    end = month_start(now)
    units = {indicator.code: indicator.unit}
    history = await figures_at(conn, place, window_ends(end), units, exact=exact)
    return trend(history.get(indicator.code, [NOTHING] * WINDOW), end, target)


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
    """Each point is the figure as of the end of its period, protected like a card's."""
    points = period_points(grain, now)
    ends = [p.end for p in points if p.end is not None]
    units = {indicator.code: indicator.unit}
    found = await figures_at(conn, place, ends, units, exact=exact)
    shown = found.get(indicator.code, [NOTHING] * len(ends))
    years = sorted({p.year for p in points})
    targets_by_year = {year: await q.targets(conn, place.chain, year) for year in years}
    result = []
    for index, point in enumerate(points):
        target = nearest_target(targets_by_year[point.year], place.chain, indicator.code)
        value = indicator_value(indicator, shown[index], target, language)
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
