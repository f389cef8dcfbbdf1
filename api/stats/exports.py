"""Statistics exports, streamed: CSV and XLSX in the caller's language and number format.

Rows come from ``api.stats.export_rows`` one province at a time. The CSV leaves as bytes as
soon as rows are formatted, so memory stays flat from a ward to the whole country. The XLSX
(XlsxWriter) is written in ``constant_memory`` mode into a temporary file (a ZIP can only be
finished once every part is written), then streamed from it: memory stays flat too, at the
cost of disk space and of sending the first byte only when the workbook is complete.
"""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, NamedTuple, TypeVar

import asyncpg
from babel.dates import format_date
from babel.numbers import format_decimal
from xlsxwriter import Workbook

from api.errors import TooManyRequests
from api.i18n import FORMAT_LOCALES, N_, format_number, format_rate, translate
from api.stats import counters as q
from api.stats.cards import cumulate, figures_at, nearest_target, units_of
from api.stats.catalog import Catalog
from api.stats.cells import EMPTY, Cell
from api.stats.disclosure import REASONS, WITHHELD, Published, perturb
from api.stats.periods import EXPORT_MONTHS, add_months, month_start
from api.stats.places import Place, Places
from api.stats.sums import NOTHING
from schemas.stats import Indicator

T = TypeVar("T")

HEADERS: Final = (
    N_("Month"),
    N_("Area code"),
    N_("Area"),
    N_("Level"),
    N_("Indicator code"),
    N_("Indicator"),
    N_("Numerator"),
    N_("Denominator"),
    N_("Value"),
    N_("Target"),
    N_("Gap to target"),
    N_("Note"),
)
LEVELS: Final = {
    "nation": N_("Nation"),
    "province": N_("Province"),
    "ward": N_("Ward / commune"),
}
# Where the decimal separator is a comma, spreadsheets expect ';' between CSV fields.
CSV_DELIMITERS: Final = {"vi": ";", "en": ","}
XLSX_TYPE: Final = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Litestar appends "; charset=utf-8" to text/* types itself.
CSV_TYPE: Final = "text/csv"


# Spreadsheets sort "11/2026" (vi) and "Nov 2026" (en) as dates in their own locale.
MONTH_PATTERNS: Final = {"vi": "MM/yyyy", "en": "MMM yyyy"}


def _month(month: date, language: str) -> str:
    return format_date(month, MONTH_PATTERNS[language], locale=FORMAT_LOCALES[language])


def _amount(value: float, unit: str, language: str) -> str:
    if unit == "fraction":
        return format_rate(value, language)
    return format_decimal(value, format="#,##0.00", locale=FORMAT_LOCALES[language])


def formatted(row: ExportRow, language: str) -> tuple[list[str], int | None, int | None]:
    """The row's text cells, and its numerator and denominator when they are shown."""
    unit = row.indicator.unit
    numerator: int | None = None
    denominator: int | None = None
    value = gap = note = ""
    if row.shown.withheld:
        note = translate(language, REASONS[WITHHELD])
    else:
        numerator, denominator = row.shown.numerator, row.shown.denominator
        if denominator:
            rate = numerator / denominator
            value = _amount(rate, unit, language)
            if row.target is not None:
                gap = _amount(row.target - rate, unit, language)
    target = "" if row.target is None else _amount(row.target, unit, language)
    texts = [
        _month(row.month, language),
        row.place.code,
        translate(language, row.place.name) if row.place.level == "nation" else row.place.name,
        translate(language, LEVELS[row.place.level]),
        row.indicator.code,
        getattr(row.indicator.name, language),
        value,
        target,
        gap,
        note,
    ]
    return texts, numerator, denominator


# Formatting an export is CPU work (the cell key method, Babel, CSV or XLSX): it runs on one
# thread per process, a batch of rows at a time, never on the event loop. However many
# exports run, the loop stays free for other requests (the GIL is handed back every 5 ms),
# and exports share that one thread in turns.
_FORMATTING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="congdongso-export")
CSV_BATCH: Final = 500  # rows formatted per turn


# Exports are background work: the formatting thread rests as long as it worked, so one
# worker's exports take at most half a core and requests keep the rest of the machine.
EXPORT_DUTY: Final = 0.5


def _paced(work: Callable[..., T], *args: object) -> T:
    started = time.perf_counter()
    try:
        return work(*args)
    finally:
        time.sleep((time.perf_counter() - started) * (1 / EXPORT_DUTY - 1))


async def _formatted(work: Callable[..., T], *args: object) -> T:
    return await asyncio.get_running_loop().run_in_executor(_FORMATTING, _paced, work, *args)


def _csv_batch(writer: Any, buffer: io.StringIO, rows: Iterator[ExportRow], language: str) -> bytes:
    buffer.seek(0)
    buffer.truncate()
    for row in itertools.islice(rows, CSV_BATCH):
        texts, numerator, denominator = formatted(row, language)
        counts = [
            "" if numerator is None else format_number(numerator, language),
            "" if denominator is None else format_number(denominator, language),
        ]
        writer.writerow([*texts[:6], *counts, *texts[6:]])
    return buffer.getvalue().encode()


async def csv_stream(
    blocks: AsyncIterable[Iterable[ExportRow]], language: str
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=CSV_DELIMITERS[language], lineterminator="\r\n")
    writer.writerow([translate(language, header) for header in HEADERS])
    yield ("\ufeff" + buffer.getvalue()).encode()  # the BOM tells spreadsheets it is UTF-8
    async for block in blocks:
        rows = iter(block)
        while text := await _formatted(_csv_batch, writer, buffer, rows, language):
            yield text


XLSX_WIDTHS: Final = (10, 10, 28, 16, 18, 40, 11, 11, 10, 10, 12, 28)
XLSX_BATCH: Final = 1_000  # rows written per turn on the formatting thread
XLSX_CHUNK: Final = 1 << 16
# Excel number formats are locale-neutral: the reader's spreadsheet shows its own separators.
XLSX_FORMATS: Final = {"fraction": "0.0%", "ratio": "0.00", "count": "#,##0"}
XLSX_MONTHS: Final = {"vi": "mm/yyyy", "en": "mmm yyyy"}


class _Sheet:
    """The export sheet (XlsxWriter, ``constant_memory``: each row goes to a temporary file
    as soon as the next one starts, so memory holds one row whatever the export's size)."""

    def __init__(self, path: str, folder: str, language: str) -> None:
        self.language = language
        self.book = Workbook(path, {"constant_memory": True, "tmpdir": folder})
        self.sheet = self.book.add_worksheet(translate(language, N_("Statistics")))
        header = self.book.add_format({"bold": True, "bg_color": "#DDEBF7", "text_wrap": True})
        self.month = self.book.add_format({"num_format": XLSX_MONTHS[language], "align": "left"})
        self.count = self.book.add_format({"num_format": XLSX_FORMATS["count"]})
        self.units = {
            unit: self.book.add_format({"num_format": XLSX_FORMATS[unit]})
            for unit in ("fraction", "ratio")
        }
        for col, width in enumerate(XLSX_WIDTHS):
            self.sheet.set_column(col, col, width)
        self.sheet.write_row(0, 0, [translate(language, header) for header in HEADERS], header)
        self.sheet.freeze_panes(1, 0)
        self.rows = 0

    def write(self, rows: Iterator[ExportRow]) -> int:
        """Write up to XLSX_BATCH rows from ``rows``; how many were written."""
        sheet, language = self.sheet, self.language
        before = self.rows
        for row in itertools.islice(rows, XLSX_BATCH):
            self.rows += 1
            number = self.rows
            unit = self.units[row.indicator.unit]
            sheet.write_datetime(
                number, 0, datetime(row.month.year, row.month.month, 1), self.month
            )
            sheet.write_string(number, 1, row.place.code)
            name = row.place.name
            sheet.write_string(
                number, 2, translate(language, name) if row.place.level == "nation" else name
            )
            sheet.write_string(number, 3, translate(language, LEVELS[row.place.level]))
            sheet.write_string(number, 4, row.indicator.code)
            sheet.write_string(number, 5, getattr(row.indicator.name, language))
            if row.target is not None:
                sheet.write_number(number, 9, row.target, unit)
            if row.shown.withheld:
                sheet.write_string(number, 11, translate(language, REASONS[WITHHELD]))
                continue
            numerator, denominator = row.shown.numerator, row.shown.denominator
            sheet.write_number(number, 6, numerator, self.count)
            sheet.write_number(number, 7, denominator, self.count)
            if denominator:
                rate = numerator / denominator
                sheet.write_number(number, 8, rate, unit)
                if row.target is not None:
                    sheet.write_number(number, 10, row.target - rate, unit)
        return self.rows - before

    def close(self) -> None:
        self.sheet.autofilter(0, 0, max(self.rows, 1), len(HEADERS) - 1)
        self.book.close()


async def xlsx_stream(
    blocks: AsyncIterable[Iterable[ExportRow]], language: str
) -> AsyncIterator[bytes]:
    """The same rows and columns as the CSV, counts and rates as numbers with Excel number
    formats. XlsxWriter writes a ZIP only when the workbook closes, so the export is built
    in ``constant_memory`` mode into a temporary file, then streamed from it and deleted;
    the writing runs on the formatting thread, a batch of rows at a time."""
    with tempfile.TemporaryDirectory(prefix="congdongso-export-") as folder:
        path = str(Path(folder) / "export.xlsx")
        sheet = await _formatted(_Sheet, path, folder, language)
        async for block in blocks:
            rows = iter(block)
            while await _formatted(sheet.write, rows):
                pass
        await _formatted(sheet.close)
        handle = await asyncio.to_thread(Path(path).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, XLSX_CHUNK):
                yield chunk
        finally:
            handle.close()


# Exports ------------------------------------------------------------------------------------


class TooManyExports(TooManyRequests):
    code = "too_many_exports"
    default_detail = N_(
        "You already have %(limit)s exports running. Wait for one to finish, then try again."
    )


EXPORT_RETRY_AFTER: Final = "30"  # seconds: a province's export takes a few


class ExportSlots:
    """How many exports each caller has running in this process: a caller may run
    ``limit`` at once, the next one is a 429 until one finishes or its client goes away."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running: dict[object, int] = {}

    def take(self, caller: object) -> Callable[[], None]:
        """A slot for ``caller``, or :class:`TooManyExports`; returns the slot's release,
        which may be called more than once."""
        if self.running.get(caller, 0) >= self.limit:
            raise TooManyExports(
                params={"limit": self.limit}, headers={"Retry-After": EXPORT_RETRY_AFTER}
            )
        self.running[caller] = self.running.get(caller, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self.running[caller] - 1
            if left:
                self.running[caller] = left
            else:
                del self.running[caller]

        return release


class ExportRow(NamedTuple):
    month: date
    place: Place
    indicator: Indicator
    shown: Published  # always protected: exports leave the office
    target: float | None


Reader = Callable[[], AbstractAsyncContextManager[asyncpg.Connection]]
"""Lends a connection for one short read (the route: from the export pool, in a read-only
snapshot); nothing is kept between two reads."""


def on_connection(conn: asyncpg.Connection) -> Reader:
    """A reader that lends the same connection every time (tests, the bench, the CLI)."""

    @asynccontextmanager
    async def lend() -> AsyncIterator[asyncpg.Connection]:
        yield conn

    return lend


class _Figures(NamedTuple):
    cells: dict[tuple[int, str], list[Cell]]
    targets: dict[int, q.Targets]


async def _read_figures(
    conn: asyncpg.Connection, ids: list[int], ends: list[date], chain_tail: list[int]
) -> _Figures:
    cells = cumulate(await q.monthly_deltas(conn, ids, ends[-1]), ends)
    years = sorted({end.year for end in ends})
    return _Figures(cells, {year: await q.targets(conn, ids + chain_tail, year) for year in years})


def _area_rows(
    catalog: Catalog,
    areas: list[Place],
    ends: list[date],
    chain_tail: list[int],
    figures: _Figures,
) -> Iterator[ExportRow]:
    """Rows of ``areas`` (siblings), each cell protected on its own; ``chain_tail`` is where
    targets are looked for above them."""
    blank = [EMPTY] * len(ends)
    for index, end in enumerate(ends):
        for area in areas:
            assert area.id is not None
            for indicator in catalog.indicators:
                yield ExportRow(
                    end,
                    area,
                    indicator,
                    perturb(
                        figures.cells.get((area.id, indicator.code), blank)[index], indicator.unit
                    ),
                    nearest_target(
                        figures.targets[end.year], [area.id, *chain_tail], indicator.code
                    ),
                )


class _Parent(NamedTuple):
    figures: dict[str, list[Published]]
    targets: dict[int, q.Targets]


async def _read_parent(
    conn: asyncpg.Connection, catalog: Catalog, place: Place, ends: list[date], chain: list[int]
) -> _Parent:
    """A province's or the nation's figures: its wards' perturbed cells added up (see
    ``api.stats.sums``), like its card."""
    figures = await figures_at(conn, place, ends, units_of(catalog), exact=False)
    years = sorted({end.year for end in ends})
    return _Parent(figures, {year: await q.targets(conn, chain, year) for year in years})


def _parent_rows(
    catalog: Catalog, place: Place, ends: list[date], chain: list[int], parent: _Parent
) -> Iterator[ExportRow]:
    for index, end in enumerate(ends):
        for indicator in catalog.indicators:
            shown = parent.figures.get(indicator.code, [NOTHING] * len(ends))[index]
            target = nearest_target(parent.targets[end.year], chain, indicator.code)
            yield ExportRow(end, place, indicator, shown, target)


async def export_rows(
    read: Reader, catalog: Catalog, places: Places, place: Place, now: date
) -> AsyncIterator[Iterator[ExportRow]]:
    """The last 24 months of ``place`` and every area under it, always protected, in
    blocks: the rows of what one short read returned (the nation; a province and its wards),
    produced lazily by whoever formats them.

    Each read is its own snapshot (a province and its wards agree), and no connection is
    held while rows are formatted or wait for a slow client. Memory holds one province's
    wards at a time, whatever the size of the country.
    """
    ends = [add_months(month_start(now), -back) for back in range(EXPORT_MONTHS - 1, -1, -1)]
    async with read() as conn:
        provinces = await places.children(conn, None)
        if place.level == "nation":
            nation = await _read_parent(conn, catalog, place, ends, [q.NATION])
        elif place.level == "ward":
            assert place.id is not None
            assert place.parent_id is not None
            chain = [place.parent_id, q.NATION]
            figures = await _read_figures(conn, [place.id], ends, chain)
    if place.level == "ward":
        yield _area_rows(catalog, [place], ends, chain, figures)
        return
    if place.level == "nation":
        yield _parent_rows(catalog, place, ends, [q.NATION], nation)
    shown = provinces if place.level == "nation" else [place]
    for province in shown:
        assert province.id is not None
        async with read() as conn:
            own = await _read_parent(conn, catalog, province, ends, province.chain)
            wards = await places.children(conn, province.id)
            ward_ids = [ward.id for ward in wards if ward.id is not None]
            below = await _read_figures(conn, ward_ids, ends, [province.id, q.NATION])
        yield itertools.chain(
            _parent_rows(catalog, province, ends, province.chain, own),
            _area_rows(catalog, wards, ends, [province.id, q.NATION], below),
        )
