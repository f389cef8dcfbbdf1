"""Privacy: what the cell key method costs in utility (published vs true figures) and in
speed (perturbation and record keys on vs off, in the same run).

**Utility**, from the counters directly. The data is bench/stats.py's (200 wards of 5,000
households, built the same way, its counters rebuilt with the servers' record keys), plus
random subsamples of 1,000, 300, 100 and 50 households per ward: their counters are computed
by the rebuild's own SQL (``Catalog.history_by_households``) with the same keys, as if only
they had been collected. Every ward and province cell (nine indicators and coverage), for
the current period and for the ends of the last 24 months (what the export shows), is
compared with ``api.stats.disclosure.perturb`` of the same cell: the function every
protected view publishes with. Errors are in percentage points (ADULT_CLOUD, a ratio of
accounts per adult: ratio units × 100).

**Speed**: the same requests against two servers in the same run, in alternating order,
round after round. "on" is the API; "off" is bench/exact_app.py, the API with
``perturb`` returning exact counts (the exact path of a ward's own view, for every view).
Cards are measured built on every request (``CONGDONGSO_CARD_CACHE=false``, where the
perturbation costs) and kept (the default). Push throughput is compared with the
``keyless`` variant (record keys replaced by a constant 0 in the counters' SQL), and the
rebuild's history query for 10 wards with and without keys.
"""

from __future__ import annotations

import asyncio
import math
import random
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import date

import asyncpg
import msgspec
from tqdm import tqdm

from api.db import connect
from api.stats.cards import coverage_of, cumulate, ward_figure
from api.stats.catalog import COVERAGE, Catalog, history_sql, load_catalog
from api.stats.cells import EMPTY, Cell
from api.stats.counters import MonthlyDelta, monthly_deltas
from api.stats.disclosure import Counts, Published, contribution, displayed, exact, perturb
from api.stats.keys import record_keys
from api.stats.periods import EXPORT_MONTHS, add_months, month_start, today
from bench import Result
from bench.env import Context, Server, serve, setup
from bench.exact_app import VARIANT_ENV, keyless_sql
from bench.loadgen import LoadResult, fetch, load
from bench.stats import (
    CARD_WARD,
    PASSWORD,
    PHONES,
    PROVINCE,
    PUSH_WARD,
    Dataset,
    load_households,
    prepare,
    rebuild_counters,
)
from bench.sync import BATCH, PUSH_CLIENTS, _clients, _households, _push_check, push_bodies

NAME = "privacy"
TITLE = "Privacy: utility of the cell key method, and its cost on vs off (granian)"

DATABASE = "cds_bench_privacy"  # its own: the utility is measured on this data alone
PER_WARD = 5_000  # 200 wards × 5,000 = 1,000,000 households
SUBSAMPLES = (1_000, 300, 100, 50)  # households per ward
GOAL_PROVINCE_PP = 0.5  # every province rate within 0.5 pp of the truth
GOAL_WARD_PP = 3.0  # ward rates within 3 pp at the 95th percentile …
GOAL_WARD_HOUSEHOLDS = 300  # … for wards of 300 households or more
CLIENTS = 64
EXACT_APP = "bench.exact_app:app"
SIZE_BANDS = ((5_000, "5,000+"), (1_000, "1,000–4,999"), (300, "300–999"), (100, "100–299"))
SIZE_BANDS += ((50, "50–99"), (10, "10–49"), (1, "1–9"))


# Utility ------------------------------------------------------------------------------------


@asynccontextmanager
async def connection(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()


Points = list[Cell]  # index 0: current, then the ends of the last 24 months, oldest first
Table = dict[tuple[int, str], Points]  # (area id, measure) → its cells


def month_ends() -> list[date]:
    """The ends of the last 24 months, as the export shows them."""
    now = month_start(today())
    return [add_months(now, -back) for back in range(EXPORT_MONTHS - 1, -1, -1)]


async def counter_cells(conn: asyncpg.Connection, area_ids: list[int], ends: list[date]) -> Table:
    """Today's counters (``stat_current``, what a card reads) and the counters as of each
    month end (``stat_delta`` cumulated, what the export reads)."""
    rows = await conn.fetch(
        """SELECT area_id, measure, sum(numerator)::bigint, sum(denominator)::bigint,
                  sum(numerator_key)::bigint, sum(denominator_key)::bigint
           FROM stat_current_live WHERE area_id = ANY($1::int[]) GROUP BY area_id, measure""",
        area_ids,
    )
    current = {(r[0], r[1]): (r[2], r[3], r[4], r[5]) for r in rows}
    monthly = cumulate(await monthly_deltas(conn, area_ids, ends[-1]), ends)
    return {
        key: [current.get(key, EMPTY), *monthly.get(key, [EMPTY] * len(ends))]
        for key in current.keys() | monthly.keys()
    }


async def subsample_cells(
    dsn: str, catalog: Catalog, dataset: Dataset, per_ward: int, ends: list[date]
) -> Table:
    """The counters ``per_ward`` random households of each ward would have on their own
    (the rebuild's SQL over just them, on two connections), current and at each month end."""
    async with connection(dsn) as conn:
        rows = await conn.fetch(
            """SELECT ward_id, array_agg(id) FROM (
                   SELECT id, ward_id, row_number() OVER (PARTITION BY ward_id ORDER BY id) AS n
                   FROM household WHERE ward_id = ANY($1::int[])) AS h
               WHERE n <= $2 GROUP BY ward_id""",
            [w["id"] for w in dataset.wards],
            per_ward,
        )
    deltas: list[MonthlyDelta] = []
    chunks = iter([rows[start : start + 10] for start in range(0, len(rows), 10)])

    async def worker(bar: tqdm[None]) -> None:
        async with connection(dsn) as conn:
            for chunk in chunks:
                ids = [i for r in chunk for i in r[1]]
                found = await conn.fetch(catalog.history_by_households, ids, *catalog.keys.params)
                for r in found:
                    cell = (r[4], r[5], r[6], r[7])
                    deltas.append(MonthlyDelta(r["ward_id"], r["measure"], r["month"], cell))
                    deltas.append(MonthlyDelta(r["province_id"], r["measure"], r["month"], cell))
                bar.update(len(chunk))

    with tqdm(
        total=len(rows), desc=f"  {per_ward:,} per ward", unit="ward", leave=False, disable=None
    ) as bar:
        await asyncio.gather(*(worker(bar) for _ in range(2)))  # one per core
    deltas.sort(key=lambda d: d.month)
    everything = [*ends, date.max]  # the last point: every delta, i.e. today's counters
    return {key: [cells[-1], *cells[:-1]] for key, cells in cumulate(deltas, everything).items()}


def shown_cell(cell: Cell, measure: str, unit: str) -> Published:
    """A ward's cell as a protected view publishes it (``ward_figure``: ``perturb``, and
    coverage's numerator with its own key), and as a card shows it (``coverage_of``)."""
    shown = ward_figure(measure, unit, cell, exact=False)
    if measure != COVERAGE:
        return shown
    coverage = coverage_of(shown)
    return Published(coverage.surveyed or 0, coverage.registered or 0, coverage.suppressed)


@dataclass
class Tally:
    """Ward or province cells of one measure: how many had a denominator, how many were
    published, and the published rates' errors (pp, signed)."""

    cells: int = 0
    published: int = 0
    errors: list[float] = field(default_factory=list)

    def add(self, cell: Cell, measure: str, unit: str) -> None:
        self.add_shown(cell, shown_cell(cell, measure, unit))

    def add_shown(self, cell: Cell, shown: Published) -> None:
        numerator, denominator = cell[0], cell[1]
        if denominator <= 0:
            return  # nothing to publish
        self.cells += 1
        if shown.withheld or shown.denominator <= 0:
            return
        self.published += 1
        self.errors.append(100 * (shown.numerator / shown.denominator - numerator / denominator))

    def merge(self, other: Tally) -> None:
        self.cells += other.cells
        self.published += other.published
        self.errors += other.errors

    @property
    def share(self) -> float:
        return self.published / self.cells if self.cells else math.nan

    def absolute(self) -> list[float]:
        return sorted(abs(e) for e in self.errors)

    @property
    def mean(self) -> float:
        return statistics.fmean(abs(e) for e in self.errors) if self.errors else math.nan

    @property
    def p95(self) -> float:
        return percentile(self.absolute(), 0.95)

    @property
    def worst(self) -> float:
        return max((abs(e) for e in self.errors), default=math.nan)

    @property
    def bias(self) -> tuple[float, float]:
        """Mean signed error and its standard error (pp)."""
        if len(self.errors) < 2:
            return math.nan, math.nan
        return statistics.fmean(self.errors), statistics.stdev(self.errors) / len(
            self.errors
        ) ** 0.5


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]  # nearest rank


def band(households: int) -> str:
    for floor, label in SIZE_BANDS:
        if households >= floor:
            return label
    return "0"


Key = tuple[
    str, str, str, str
]  # dataset, level (ward | province), when (current | monthly), measure


def evaluate(
    dataset: str, table: Table, province_of: dict[int, int], units: dict[str, str]
) -> tuple[dict[Key, Tally], dict[tuple[str, str], Tally]]:
    """Tallies by (dataset, level, current|monthly, measure), and ward tallies by (size
    band of the cell's registered households, measure). A province publishes the sum of its
    wards' published cells (``api.stats.sums``), compared with its own true cell."""
    by_key: dict[Key, Tally] = defaultdict(Tally)
    by_band: dict[tuple[str, str], Tally] = defaultdict(Tally)
    added: dict[tuple[int, str], list[tuple[int, int]]] = {}
    for (area_id, measure), cells in table.items():
        if measure not in units or area_id not in province_of:
            continue
        registered = table.get((area_id, COVERAGE), [EMPTY] * len(cells))
        sums_ = added.setdefault((province_of[area_id], measure), [(0, 0)] * len(cells))
        for index, cell in enumerate(cells):
            shown = shown_cell(cell, measure, units[measure])
            part = contribution(cell, units[measure], whole_numerator=measure == COVERAGE)
            n, d = sums_[index]
            sums_[index] = (n + part.numerator, d + part.denominator)
            tally = Tally()
            tally.add_shown(cell, shown)
            by_key[(dataset, "ward", "current" if index == 0 else "monthly", measure)].merge(tally)
            by_band[(band(registered[index][1]), measure)].merge(tally)
    for (area_id, measure), cells in table.items():
        if measure not in units or area_id in province_of:
            continue
        for index, cell in enumerate(cells):
            n, d = added.get((area_id, measure), [(0, 0)] * len(cells))[index]
            tally = Tally()
            tally.add_shown(cell, displayed(Counts(n, d), units[measure]))
            when = "current" if index == 0 else "monthly"
            by_key[(dataset, "province", when, measure)].merge(tally)
    return by_key, by_band


def _pp(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def _signed(tally: Tally) -> str:
    """Mean signed error ± 3 standard errors (pp), flagged when further from 0 than that."""
    mean, error = tally.bias
    if math.isnan(mean):
        return "–"
    flag = " **biased**" if abs(mean) > 3 * error else ""
    return f"{mean:+.4f} ± {3 * error:.4f}{flag}"


def _share(tally: Tally) -> str:
    return "–" if not tally.cells else f"{100 * tally.share:.1f} %"


def _sum(tallies: list[Tally]) -> Tally:
    merged = Tally()
    for tally in tallies:
        merged.merge(tally)
    return merged


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join([*lines, *("| " + " | ".join(row) + " |" for row in rows)])


def near_full(draws: int = 20_000) -> str:
    """Rates near 100 %, which the bench data has none of: a ward whose true rate is p of
    ``d`` households, its cell keys drawn at random (record keys are uniform, so cell keys
    are), published by ``perturb``. A numerator equal to its denominator has the same
    contributors, so the same key sum."""
    rng = random.Random(100)
    rates = (1.0, 0.99, 0.95, 0.8)
    header = ["households", *(f"true {100 * p:g} %: mean error; shown as 100 %" for p in rates)]
    rows = []
    for size in (50, 100, 300, 1_000, 5_000):
        row = [f"{size:,}"]
        for rate in rates:
            numerator = round(rate * size)
            if numerator == size and rate < 1:
                row.append("–")  # not a distinct rate at this size
                continue
            errors, full = [], 0
            for _ in range(draws):
                denominator_key = rng.randrange(1 << 20)
                same = numerator == size  # the same households: the same key sum
                numerator_key = denominator_key if same else rng.randrange(1 << 20)
                shown = perturb((numerator, size, numerator_key, denominator_key))
                if shown.withheld or shown.denominator <= 0:
                    continue
                value = shown.numerator / shown.denominator
                errors.append(100 * (value - numerator / size))
                full += value >= 1
            row.append(f"{statistics.fmean(errors):+.3f} pp; {100 * full / len(errors):.0f} %")
        rows.append(row)
    return markdown(header, rows)


@dataclass
class Utility:
    tallies: dict[Key, Tally]
    bands: dict[tuple[str, str], Tally]
    datasets: list[str]  # "5,000 per ward", …
    measures: list[str]

    def tally(self, dataset: str, level: str, when: str, measure: str | None = None) -> Tally:
        measures = self.measures if measure is None else [measure]
        return _sum([self.tallies.get((dataset, level, when, m), Tally()) for m in measures])

    def per_indicator(self, dataset: str) -> str:
        rows = []
        for measure in [*self.measures, None]:
            row = [measure or "**all**"]
            for when in ("current", "monthly"):
                ward = self.tally(dataset, "ward", when, measure)
                province = self.tally(dataset, "province", when, measure)
                row += [_share(ward), f"{_pp(ward.mean)} / {_pp(ward.p95)}"]
                row += [f"{_pp(province.mean)} / {_pp(province.p95)} / {_pp(province.worst)}"]
            rows.append(row)
        header = ["indicator"]
        for when in ("current", "24 month ends"):
            header += [
                f"{when}: ward cells published",
                "ward error mean / p95",
                "province error mean / p95 / max",
            ]
        return markdown(header, rows)

    def by_size(self, when: str) -> str:
        header = ["indicator", *self.datasets]
        rows = []
        for measure in [*self.measures, None]:
            row = [measure or "**all**"]
            for dataset in self.datasets:
                t = self.tally(dataset, "ward", when, measure)
                row.append(f"{_pp(t.p95)} ({_share(t)})")
            rows.append(row)
        row = ["provinces: largest error, any indicator"]
        for dataset in self.datasets:
            row.append(_pp(self.tally(dataset, "province", when).worst))
        return markdown(header, [*rows, row])

    def by_band(self) -> str:
        header = ["registered households in the cell", "ward cells", "published", "mean error"]
        header += ["p95 error", "max error", "worst indicator at p95", "mean signed error"]
        rows = []
        for _, label in SIZE_BANDS:
            tallies = {m: self.bands.get((label, m), Tally()) for m in self.measures}
            merged = _sum(list(tallies.values()))
            if not merged.cells:
                continue
            worst = max(
                self.measures, key=lambda m: -1 if not tallies[m].errors else tallies[m].p95
            )
            rows.append(
                [
                    label,
                    f"{merged.cells:,}",
                    _share(merged),
                    _pp(merged.mean),
                    _pp(merged.p95),
                    _pp(merged.worst),
                    f"{worst} {_pp(tallies[worst].p95)}",
                    _signed(merged),
                ]
            )
        return markdown(header, rows)

    def bias(self) -> str:
        """Mean signed error per indicator, in all ward cells and split by the cell's
        registered households (where a bias comes from), and in province cells."""
        header = ["indicator", "ward cells", "all ward cells", "cells of 100+ households"]
        header += ["cells of 1–99 households", "province cells (mean only: few, overlapping)"]
        rows = []
        for measure in self.measures:
            wards = _sum(
                [self.tally(d, "ward", w, measure) for d in self.datasets for w in self._whens]
            )
            large = _sum(
                [self.bands.get((label, measure), Tally()) for f, label in SIZE_BANDS if f >= 100]
            )
            small = _sum(
                [self.bands.get((label, measure), Tally()) for f, label in SIZE_BANDS if f < 100]
            )
            provinces = _sum(
                [self.tally(d, "province", w, measure) for d in self.datasets for w in self._whens]
            )
            rows.append(
                [
                    measure,
                    f"{len(wards.errors):,}",
                    _signed(wards),
                    _signed(large),
                    _signed(small),
                    f"{provinces.bias[0]:+.5f}",
                ]
            )
        return markdown(header, rows)

    _whens = ("current", "monthly")

    def goals(self) -> list[tuple[str, bool, float, str]]:
        """(goal, met, the figure checked in pp, detail)."""
        full = self.datasets[0]  # the goal is about the 1,000,000 households
        province_worst = {
            m: max(self.tally(full, "province", w, m).worst for w in self._whens)
            for m in self.measures
        }
        worst_measure = max(province_worst, key=lambda m: province_worst[m])
        big = {
            m: _sum(
                [
                    self.bands.get((label, m), Tally())
                    for floor, label in SIZE_BANDS
                    if floor >= GOAL_WARD_HOUSEHOLDS
                ]
            )
            for m in self.measures
        }
        worst_ward = max(big, key=lambda m: big[m].p95)
        return [
            (
                f"province rates within {GOAL_PROVINCE_PP} pp of the truth, every indicator "
                f"(every province cell of {full}, current and 24 month ends)",
                all(v <= GOAL_PROVINCE_PP for v in province_worst.values()),
                province_worst[worst_measure],
                f"largest error {province_worst[worst_measure]:.4f} pp ({worst_measure})",
            ),
            (
                f"ward rates within {GOAL_WARD_PP} pp at the 95th percentile, wards of "
                f"{GOAL_WARD_HOUSEHOLDS}+ households (cells with {GOAL_WARD_HOUSEHOLDS}+ "
                "registered households), every indicator",
                all(big[m].p95 <= GOAL_WARD_PP for m in self.measures),
                big[worst_ward].p95,
                f"worst p95 {big[worst_ward].p95:.3f} pp ({worst_ward}), "
                f"max {max(big[m].worst for m in self.measures):.3f} pp, "
                f"{sum(big[m].cells for m in self.measures):,} cells",
            ),
        ]

    def report(self) -> str:
        full = self.datasets[0]
        parts = [
            f"### Per indicator, {full} (errors in pp; ADULT_CLOUD in ratio units × 100)",
            self.per_indicator(full),
            "### Ward error by ward size: p95 in pp (share of ward cells published), current",
            self.by_size("current"),
            "### The same at the 24 month ends",
            self.by_size("monthly"),
            "### By the cell's registered households (every dataset and period pooled)",
            self.by_band(),
            "### Bias: mean signed error (pp) ± 3 standard errors, every dataset and period",
            self.bias(),
            "### Rates near 100 % (synthetic cells, random keys)",
            near_full(),
            "### Goals",
            *(
                f"- {'MET' if met else 'NOT MET'}: {goal}; {detail}"
                for goal, met, _, detail in self.goals()
            ),
        ]
        return "\n\n".join(parts)


async def measure_utility(
    ctx: Context, catalog: Catalog, dataset: Dataset, per_ward: int, sizes: list[int]
) -> tuple[Utility, Table]:
    """Utility on the counters, then on each subsample; also the counters' cells."""
    ends = month_ends()
    wards = {w["id"] for w in dataset.wards}
    province_of = {w["id"]: w["province_id"] for w in dataset.wards}
    provinces = set(province_of.values())
    units = {i.code: i.unit for i in catalog.indicators} | {COVERAGE: "fraction"}
    measures = [*units]  # display order, coverage last
    tallies: dict[Key, Tally] = {}
    bands: dict[tuple[str, str], Tally] = defaultdict(Tally)
    names = []
    for size in [per_ward, *sizes]:
        name = f"{size:,} per ward"
        names.append(name)
        started = time.perf_counter()
        if size == per_ward:
            async with connection(ctx.dsn) as conn:
                table = counters = await counter_cells(conn, sorted(wards | provinces), ends)
        else:
            table = await subsample_cells(ctx.dsn, catalog, dataset, size, ends)
        found, found_bands = evaluate(name, table, province_of, units)
        tallies.update(found)
        for key, tally in found_bands.items():
            bands[key].merge(tally)
        whole = _sum([t for k, t in found.items() if k[1] == "ward"])
        print(
            f"  utility, {name}: {whole.cells:,} ward cells, {100 * whole.share:.1f} % "
            f"published, p95 error {whole.p95:.3f} pp ({time.perf_counter() - started:.0f} s)"
        )
    return Utility(tallies, bands, names, measures), counters


# Speed --------------------------------------------------------------------------------------


@dataclass
class Compared:
    """One figure of two variants over the rounds, with the per-round ratios."""

    label: str
    unit: str
    on: list[float] = field(default_factory=list)
    off: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ratios(self) -> list[float]:
        return [a / b for a, b in zip(self.on, self.off, strict=True) if b]

    def results(self, on: str, off: str, goal: float | None = None) -> list[Result]:
        """The baseline ("off") and the figure ("on"), medians over the rounds."""
        ratios = self.ratios()
        baseline = Result(
            label=f"{self.label}, {off}",
            value=statistics.median(self.off),
            unit=self.unit,
            note=f"rounds {_range(self.off)}",
        )
        note = f"rounds {_range(self.on)}; ratio per round ×{min(ratios):.2f}–×{max(ratios):.2f}"
        if goal is not None:
            lower_is_better = self.unit in ("s", "ms")
            ratio = statistics.median(ratios)
            met = ratio <= 1 + goal if lower_is_better else ratio >= 1 - goal
            note += f"; goal within {goal:.0%}: {'met' if met else 'NOT met'}"
        if self.notes:
            note += "; " + "; ".join(self.notes)
        return [
            baseline,
            Result(
                label=f"{self.label}, {on}",
                value=statistics.median(self.on),
                unit=self.unit,
                baseline=baseline,
                note=note,
            ),
        ]


def _range(values: list[float]) -> str:
    digits = 0 if min(values) >= 100 else 1 if min(values) >= 10 else 2
    return f"{min(values):,.{digits}f}–{max(values):,.{digits}f}"


async def _timed(target_load: Awaitable[LoadResult], label: str) -> LoadResult:
    run = await target_load
    if run.errors:
        raise RuntimeError(f"{label}: {run.errors} errors")
    return run


async def _check_variants(
    on: Server, off: Server, token: str, table: Table, area_id: int, province_of: dict[int, int]
) -> None:
    """The "off" server publishes exact counts and the "on" server its wards' perturbed
    cells added up: the province card's numerators against the counters (nothing was
    written since)."""
    cards = {}
    for name, server in (("on", on), ("off", off)):
        status, body = await fetch(
            server.target("GET", f"/api/v1/stats/areas/{PROVINCE}", token=token)
        )
        if status != 200:
            raise RuntimeError(f"{name}: province card answered {status}")
        cards[name] = {i["code"]: i for i in msgspec.json.decode(body)["indicators"]}
    for code, shown in cards["off"].items():
        cell = table[(area_id, code)][0]
        if (shown["numerator"], shown["denominator"]) != (cell[0], cell[1]):
            raise RuntimeError(f"the exact server shows {code} {shown} for {cell}")
    perturbed = 0
    for code, shown in cards["on"].items():
        cell = table[(area_id, code)][0]
        wards = [cells[0] for (ward, measure), cells in table.items()
                 if measure == code and province_of.get(ward) == area_id]  # fmt: skip
        parts = [contribution(ward_cell, shown["unit"]) for ward_cell in wards]
        added = Counts(sum(p.numerator for p in parts), sum(p.denominator for p in parts))
        expected = displayed(added, shown["unit"])[:2]
        if (shown["numerator"], shown["denominator"]) != expected:
            raise RuntimeError(f"the API shows {code} {shown}, its wards add up to {expected}")
        perturbed += expected != cell[:2]
    print(f"  variants checked: {perturbed} of {len(cards['on'])} province figures perturbed")


async def _key_sum(conn: asyncpg.Connection, ward_id: int) -> tuple[int, int]:
    row = await conn.fetchrow(
        """SELECT coalesce(sum(numerator), 0)::bigint, coalesce(sum(numerator_key), 0)::bigint
           FROM stat_current_live WHERE area_id = $1 AND measure = $2""",
        ward_id,
        COVERAGE,
    )
    return row[0], row[1]


# Protected cells a response publishes (api/stats/cards.py, exports.py): a card has 9
# indicators, each with the 6 months of its forecast, and coverage (plus its learning rows);
# a children row the same for one indicator, and coverage; the province's export 24 months
# of 9 indicators for the province and its 166 wards.
CELLS_PER = {
    "card": 9 * (1 + 6) + 1,
    "children table (166 wards)": 166 * (1 + 6 + 1),
    "CSV export of the province": 24 * 9 * 167,
}


def measure_perturb_cost(cells: list[tuple[Cell, str]], rounds: int) -> list[Result]:
    """``perturb`` against ``exact`` (what the "off" server calls) over the same cells, in
    this process: the CPU the protection adds per response, without the HTTP noise."""
    timings: dict[str, list[float]] = {"perturb": [], "exact": []}
    for _ in range(rounds):
        for name, function in (("perturb", perturb), ("exact", exact)):
            started = time.perf_counter()
            if name == "perturb":
                for cell, unit in cells:
                    function(cell, unit)
            else:
                for cell, _unit in cells:
                    function(cell)
            timings[name].append((time.perf_counter() - started) / len(cells))
    per_cell = min(timings["perturb"]) - min(timings["exact"])  # least disturbed rounds
    results = [
        Result(label="exact(), per cell, in-process", value=1e6 * min(timings["exact"]), unit="µs"),
        Result(
            label="perturb(), per cell, in-process",
            value=1e6 * min(timings["perturb"]),
            unit="µs",
            note=f"best of {rounds} passes over {len(cells):,} cells of the counters",
        ),
    ]
    for name, count in CELLS_PER.items():
        results.append(
            Result(
                label=f"perturbation's added CPU per {name} ({count:,} cells)",
                value=1e3 * per_cell * count,
                unit="ms",
            )
        )
    return results


async def measure_history_keys(
    ctx: Context, catalog: Catalog, ward_ids: list[int], rounds: int
) -> Compared:
    """The rebuild's history SQL (as ``Catalog.history_by_households``, the statement of
    every recount) over these wards' households, with and without record keys."""
    async with connection(ctx.dsn) as conn:
        ids = await conn.fetch("SELECT id FROM household WHERE ward_id = ANY($1::int[])", ward_ids)
        ids = [r[0] for r in ids]
        compared = Compared(f"history SQL of {len(ids):,} households", "s")
        where = "h.id = ANY($1::uuid[])"
        keyed = f"SELECT count(*) FROM ({history_sql(catalog.indicators, where)}) d"
        with keyless_sql():
            keyless = f"SELECT count(*) FROM ({history_sql(catalog.indicators, where)}) d"
        await conn.fetch(keyed, ids, *catalog.keys.params)  # warm the cache
        for index in range(rounds):
            order = [("on", keyed), ("off", keyless)]
            for name, query in order if index % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                await conn.fetch(query, ids, *catalog.keys.params)
                getattr(compared, name).append(time.perf_counter() - started)
    return compared


async def measure_speed(
    ctx: Context,
    dataset: Dataset,
    catalog: Catalog,
    table: Table,
    push_households: list,
    rng: random.Random,
) -> list[Result]:
    rounds = ctx.count(3, 1)
    # (warm-up, measured) seconds per load: built cards and tables, kept cards, pushes
    built_s, kept_s, push_s = ctx.seconds(4, 1), ctx.seconds(3, 1), ctx.seconds(6, 2)
    children_s = ctx.seconds(6, 2)
    warm = ctx.seconds(1, 0.3)
    exact = {VARIANT_ENV: "exact"}
    built = {"CONGDONGSO_CARD_CACHE": "false"}
    async with AsyncExitStack() as stack:

        async def start(label: str, app: str = "api.asgi:app", **env: str) -> Server:
            return await stack.enter_async_context(serve(ctx, "granian", env, app, label))

        servers = {
            ("on", "built"): await start("privacy-on-built", **built),
            ("off", "built"): await start("privacy-off-built", EXACT_APP, **built, **exact),
            ("on", "kept"): await start("privacy-on-kept"),
            ("off", "kept"): await start("privacy-off-kept", EXACT_APP, **exact),
            ("keyless", "kept"): await start(
                "privacy-keyless", EXACT_APP, **{VARIANT_ENV: "keyless"}
            ),
        }
        first = servers[("on", "built")]
        tokens = {role: await first.login(phone, PASSWORD) for role, phone in PHONES.items()}
        province_id = dataset.by_code[CARD_WARD]["province_id"]
        await _check_variants(
            servers[("on", "built")],
            servers[("off", "built")],
            tokens["province_official"],
            table,
            province_id,
            {w["id"]: w["province_id"] for w in dataset.wards},
        )

        children = f"/api/v1/stats/areas/{PROVINCE}/children?indicator=ADULT_SMARTPHONE&limit=500"
        reads = [
            ("own-ward card (exact in both)", f"/api/v1/stats/areas/{CARD_WARD}", "ward_official"),
            (
                "ward card seen by the province",
                f"/api/v1/stats/areas/{CARD_WARD}",
                "province_official",
            ),
            ("province card", f"/api/v1/stats/areas/{PROVINCE}", "province_official"),
        ]
        compared: dict[str, Compared] = {}
        # key, label, path, role, servers, clients, seconds
        plan: list[tuple[str, str, str, str, str, int, float]] = []
        for label, path, role in reads:
            built_label = f"{label}, built every time"
            plan.append((f"{label}, built", built_label, path, role, "built", CLIENTS, built_s))
        # A children table takes about a second: fewer clients, a longer window.
        children_label = "children table (166 wards), 8 clients"
        plan.append(
            ("children", children_label, children, "province_official", "built", 8, children_s)
        )
        for label, path, role in reads:
            kept_label = f"{label}, kept (default)"
            plan.append((f"{label}, kept", kept_label, path, role, "kept", CLIENTS, kept_s))
        export = f"/api/v1/stats/areas/{PROVINCE}/export.csv"

        for index in range(rounds):
            order = ["on", "off"] if index % 2 == 0 else ["off", "on"]
            print(f"  round {index + 1} of {rounds} (order: {', '.join(order)})")
            for key, label, path, role, cache, clients, duration in plan:
                item = compared.setdefault(key, Compared(label, "req/s"))
                for variant in order:
                    target = servers[(variant, cache)].target("GET", path, token=tokens[role])
                    await load(target, connections=clients, duration=warm, label="warm-up")
                    run = await _timed(
                        load(target, connections=clients, duration=duration, label=label), label
                    )
                    getattr(item, variant).append(run.rps)
                    print(f"    {label}, {variant}: {run.summary()}")
            item = compared.setdefault("export", Compared("CSV export of the province", "s"))
            for variant in order:
                target = servers[(variant, "built")].target(
                    "GET", export, token=tokens["province_official"]
                )
                run = await _timed(
                    load(
                        target,
                        connections=1,
                        duration=600,
                        max_requests=1,
                        label="export",
                    ),
                    "export",
                )
                getattr(item, variant).append(statistics.median(run.latencies))
                print(f"    export, {variant}: {run.summary()}")

        # Push with record keys vs without, into the same ward.
        fresh = iter(push_households)

        push_body = push_bodies(fresh, rng)

        def pushes(
            server: Server, connections: int, duration: float
        ) -> Awaitable[tuple[LoadResult, int]]:
            return _clients(
                server,
                tokens["team_member"],
                "/api/v1/sync/push",
                push_body,
                _push_check,
                connections=connections,
                duration=duration,
            )

        # The keyless server really adds no keys: one batch moves the ward's count, not its key sum.
        conn = await connect(ctx.dsn)
        try:
            ward_id = dataset.by_code[PUSH_WARD]["id"]
            before = await _key_sum(conn, ward_id)
            await pushes(servers[("keyless", "kept")], 1, 0.01)
            after = await _key_sum(conn, ward_id)
            if after[0] == before[0] or after[1] != before[1]:
                raise RuntimeError(f"keyless push: counts {before} → {after}")
            before = after
            await pushes(servers[("on", "kept")], 1, 0.01)
            after = await _key_sum(conn, ward_id)
            if after[0] == before[0] or after[1] == before[1]:
                raise RuntimeError(f"keyed push: counts {before} → {after}")
        finally:
            await conn.close()
        print("  keyless push checked: counts move, key sums do not")

        push = Compared(f"push, {BATCH}/batch, {PUSH_CLIENTS} clients", "subs/s")
        push_servers = {"on": servers[("on", "kept")], "off": servers[("keyless", "kept")]}
        for index in range(rounds):
            order = ["on", "off"] if index % 2 == 0 else ["off", "on"]
            for variant in order:
                await pushes(push_servers[variant], 2, warm)
                run, accepted = await pushes(push_servers[variant], PUSH_CLIENTS, push_s)
                if run.errors:
                    raise RuntimeError(f"push: {run.errors} failed batches")
                getattr(push, variant).append(accepted / run.seconds)
                print(f"    push, keys {variant}: {run.summary()}; {accepted:,} accepted")

    results: list[Result] = []
    for key, item in compared.items():
        goal = 0.10 if "card" in key and "own-ward" not in key else None
        results += item.results("perturbation on", "off (exact)", goal)
    results += push.results("record keys", "no keys", 0.10)
    return results


async def run(shared: Context) -> list[Result]:
    ctx = await setup(shared.quick, DATABASE)
    rng = random.Random(2026)
    per_ward = ctx.count(PER_WARD, 250)
    sizes = [s for s in SUBSAMPLES if s < per_ward]
    keys = record_keys(ctx.settings)  # the servers' secret (bench.env.CELL_KEY_SECRET)
    conn = await connect(ctx.dsn)
    try:
        dataset = await prepare(conn)
        total = per_ward * len(dataset.wards)
        started = time.perf_counter()
        await load_households(conn, dataset, per_ward, rng, f"  {total:,} households")
        print(f"  {total:,} households loaded in {time.perf_counter() - started:.0f} s")
        rebuilt = await rebuild_counters(conn, keys)
        print(f"  rebuild of {total:,} households with cell keys: {rebuilt:.1f} s")
        catalog = await load_catalog(conn, keys)
    finally:
        await conn.close()
    utility, table = await measure_utility(ctx, catalog, dataset, per_ward, sizes)
    conn = await connect(ctx.dsn)
    try:
        push_households = await _households(
            conn, dataset.by_code[PUSH_WARD], ctx.count(250_000, 20_000)
        )
    finally:
        await conn.close()
    print("\n" + utility.report() + "\n")  # printed now: the speed part takes minutes
    ward_ids = [dataset.by_code[CARD_WARD]["id"]]  # not PUSH_WARD: it has fresh households
    history = await measure_history_keys(ctx, catalog, ward_ids, ctx.count(3, 1))
    print(f"  history query with keys {_range(history.on)} s, without {_range(history.off)} s")

    units = {i.code: i.unit for i in catalog.indicators} | {COVERAGE: "fraction"}
    cells = [(c, units[m]) for (_, m), points in table.items() if m in units for c in points]
    cost = measure_perturb_cost(cells, ctx.count(5, 2))
    speed = await measure_speed(ctx, dataset, catalog, table, push_households, rng)

    results = [
        Result(
            label=f"rebuild, {total:,} households, with cell keys",
            value=rebuilt,
            unit="s",
            note=f"{total / rebuilt:,.0f} households/s",
        ),
        *history.results("with keys", "without keys"),
        *cost,
    ]
    for name in utility.datasets:
        for when in ("current", "monthly"):
            tally = utility.tally(name, "ward", when)
            results.append(
                Result(
                    label=f"ward cells published, {name}, {when}",
                    value=100 * tally.share,
                    unit="%",
                    note=f"{tally.cells:,} cells; p95 error {tally.p95:.3f} pp, "
                    f"max {tally.worst:.3f} pp",
                )
            )
    for goal, met, value, detail in utility.goals():
        results.append(
            Result(
                label=f"goal: {goal}",
                value=value,
                unit="pp",
                note=f"{'met' if met else 'NOT met'}; {detail}",
            )
        )
    return results + speed
