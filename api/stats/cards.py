"""Statistics from the counters: periods, cards, children tables, series and export rows.

Reading never scans households: a ward card reads its own counters, a province card its
province's, the nation sums its provinces. Views other than a ward official's or team
member's own ward are suppressed (primary and complementary, see ``api.disclosure``), which
needs the siblings' counters: the children of the same parent.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Literal, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from api.auth import Principal
from api.disclosure import REASONS, primary, protect
from api.errors import invalid
from api.i18n import N_, translate
from api.indicators import COVERAGE, TIME_ZONE, Catalog
from api.queries import stats as q
from api.queries.modules import LearningSummary, VersionSource, learning_summary
from api.queries.stats import EMPTY, Cell, MonthlyDelta
from schemas.modules import CompetenceLearning, Learning, ModuleLearning
from schemas.stats import Card, Coverage, Indicator, IndicatorValue, SeriesPoint, StatArea

NATION_CODE: Final = "VN"
NATION_NAME: Final = N_("Viet Nam")
FIRST_MONTH: Final = date(2020, 1, 1)
EXPORT_MONTHS: Final = 24
Grain = Literal["month", "quarter", "year"]
POINTS: Final[dict[str, int]] = {"month": 24, "quarter": 8, "year": 5}

BAD_PERIOD = N_("Use current, a month (2025-07), a quarter (2025-Q3) or a year (2025).")
EARLY_PERIOD = N_("Statistics start in January 2020.")
FUTURE_PERIOD = N_("This period has not started yet.")


def today() -> date:
    return datetime.now(ZoneInfo(TIME_ZONE)).date()


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


# Periods ----------------------------------------------------------------------------------


class Period(NamedTuple):
    label: str  # "current", "2025-07", "2025-Q3" or "2025"
    end: date | None  # the first day of the period's last month; None for current
    year: int  # the year whose targets apply


def parse_period(text: str, now: date) -> Period:
    if text == "current":
        return Period("current", None, now.year)
    match = re.fullmatch(r"(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?", text)
    if match is None:
        raise invalid("period", "format", BAD_PERIOD)
    year = int(match[1])
    if match[2]:
        first, last = int(match[2]), int(match[2])
    elif match[3]:
        first, last = int(match[3]) * 3 - 2, int(match[3]) * 3
    else:
        first, last = 1, 12
    if date(year, last, 1) < FIRST_MONTH:
        raise invalid("period", "minimum", EARLY_PERIOD)
    if date(year, first, 1) > month_start(now):
        raise invalid("period", "maximum", FUTURE_PERIOD)
    return Period(text, date(year, last, 1), year)


def period_points(grain: Grain, now: date) -> list[Period]:
    """The last 24 months, 8 quarters or 5 years, oldest first, ending with the current."""
    current = month_start(now)
    points: list[Period] = []
    for back in range(POINTS[grain] - 1, -1, -1):
        if grain == "month":
            month = add_months(current, -back)
            points.append(Period(f"{month:%Y-%m}", month, month.year))
        elif grain == "quarter":
            quarter_end = add_months(current, (3 - current.month % 3) % 3 - 3 * back)
            label = f"{quarter_end.year}-Q{(quarter_end.month - 1) // 3 + 1}"
            points.append(Period(label, quarter_end, quarter_end.year))
        else:
            year = current.year - back
            points.append(Period(str(year), date(year, 12, 1), year))
    return points


# Areas and scope --------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """An area statistics are read for: the nation, a province or a ward."""

    id: int | None  # None for the nation
    code: str
    name: str
    level: Literal["nation", "province", "ward"]
    parent_id: int | None
    province_id: int | None

    def public(self, language: str) -> StatArea:
        name = translate(language, self.name) if self.level == "nation" else self.name
        return StatArea(code=self.code, name=name, level=self.level)

    @property
    def chain(self) -> list[int]:
        """Where targets are looked for, nearest first (NATION last)."""
        if self.level == "ward":
            assert self.id is not None
            assert self.province_id is not None
            return [self.id, self.province_id, q.NATION]
        if self.level == "province":
            assert self.id is not None
            return [self.id, q.NATION]
        return [q.NATION]


NATION: Final = Place(None, NATION_CODE, NATION_NAME, "nation", None, None)


class Places:
    """Provinces and wards come from migrations and never change while the app runs, so
    each process reads them once (3,355 rows) instead of once per card."""

    def __init__(self) -> None:
        self._by_code: dict[str, Place] = {}
        self._children: dict[int | None, list[Place]] = {}
        self._loading = asyncio.Lock()

    async def _load(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        if self._by_code:
            return
        # The first requests after a start arrive together: one reads, the others wait
        # (two loads into the same lists once listed every ward twice).
        async with self._loading:
            if self._by_code:
                return
            by_code: dict[str, Place] = {}
            children: dict[int | None, list[Place]] = {}
            for row in await q.areas(db):
                level: Literal["province", "ward"] = (
                    "province" if row.level == "province" else "ward"
                )
                place = Place(row.id, row.code, row.name, level, row.parent_id, row.province_id)
                by_code[place.code] = place
                children.setdefault(place.parent_id, []).append(place)
            self._children = children
            self._by_code = by_code  # last: a non-empty map means loaded

    async def find(self, db: asyncpg.Connection | asyncpg.Pool, code: str) -> Place | None:
        if code.upper() == NATION_CODE:
            return NATION
        await self._load(db)
        return self._by_code.get(code)

    async def children(
        self, db: asyncpg.Connection | asyncpg.Pool, parent_id: int | None
    ) -> list[Place]:
        """In Vietnamese order; the provinces for the nation (None)."""
        await self._load(db)
        return self._children.get(parent_id, [])


def may_read(principal: Principal, place: Place) -> bool:
    if principal.role == "admin":
        return True
    if principal.role == "province_official":
        return place.level != "nation" and place.province_id == principal.province_id
    if principal.role in ("ward_official", "team_member"):
        return place.id is not None and place.id == principal.area_id
    return False


def sees_exact(principal: Principal | None, area_id: int | None) -> bool:
    """Only the people who work with a ward's households see its small numbers."""
    return (
        principal is not None
        and principal.role in ("ward_official", "team_member")
        and area_id is not None
        and area_id == principal.area_id
    )


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


# Exports ------------------------------------------------------------------------------------


class ExportRow(NamedTuple):
    month: date
    place: Place
    indicator: Indicator
    cell: Cell
    target: float | None
    reason: str | None


async def _group_rows(
    conn: asyncpg.Connection,
    catalog: Catalog,
    members: list[Place],
    group: list[int],
    ends: list[date],
    chain_tail: list[int],
) -> AsyncIterator[ExportRow]:
    """Rows of ``members`` (some of the areas in ``group``, which share a parent), suppressed
    against the whole group; ``chain_tail`` is where targets are looked for above them."""
    cells = cumulate(await q.monthly_deltas(conn, group, ends[-1]), ends)
    years = sorted({end.year for end in ends})
    ids = [m.id for m in members if m.id is not None]
    targets = {year: await q.targets(conn, ids + chain_tail, year) for year in years}
    blank = [EMPTY] * len(ends)
    for index, end in enumerate(ends):
        reasons = {
            indicator.code: protect(
                {area_id: cells.get((area_id, indicator.code), blank)[index] for area_id in group},
                indicator.unit,
            )
            for indicator in catalog.indicators
        }
        for member in members:
            assert member.id is not None
            for indicator in catalog.indicators:
                yield ExportRow(
                    end,
                    member,
                    indicator,
                    cells.get((member.id, indicator.code), blank)[index],
                    nearest_target(targets[end.year], [member.id, *chain_tail], indicator.code),
                    reasons[indicator.code][member.id],
                )


async def export_rows(
    conn: asyncpg.Connection, catalog: Catalog, places: Places, place: Place, now: date
) -> AsyncIterator[ExportRow]:
    """The last 24 months of ``place`` and every area under it, always suppressed.

    Memory holds one province's wards at a time, whatever the size of the country.
    """
    ends = [add_months(month_start(now), -back) for back in range(EXPORT_MONTHS - 1, -1, -1)]
    provinces = await places.children(conn, None)
    province_ids = [p.id for p in provinces if p.id is not None]
    if place.level == "nation":
        deltas = await q.monthly_deltas(conn, province_ids, ends[-1])
        by_key = cumulate(deltas, ends)
        targets = {year: await q.targets(conn, [q.NATION], year) for year in {e.year for e in ends}}
        for index, end in enumerate(ends):
            for indicator in catalog.indicators:
                cell = total(
                    {indicator.code: by_key.get((pid, indicator.code), [EMPTY] * len(ends))[index]}
                    for pid in province_ids
                ).get(indicator.code, EMPTY)
                reason = protect({0: cell}, indicator.unit)[0]
                target = nearest_target(targets[end.year], [q.NATION], indicator.code)
                yield ExportRow(end, place, indicator, cell, target, reason)
    if place.level == "ward":
        assert place.parent_id is not None
        siblings = [p.id for p in await places.children(conn, place.parent_id) if p.id is not None]
        async for row in _group_rows(
            conn, catalog, [place], siblings, ends, [place.parent_id, q.NATION]
        ):
            yield row
        return
    shown = provinces if place.level == "nation" else [place]
    for province in shown:
        assert province.id is not None
        async for row in _group_rows(conn, catalog, [province], province_ids, ends, [q.NATION]):
            yield row
        wards = await places.children(conn, province.id)
        async for row in _group_rows(
            conn,
            catalog,
            wards,
            [w.id for w in wards if w.id is not None],
            ends,
            [province.id, q.NATION],
        ):
            yield row
