"""Statistics exports, streamed: CSV and XLSX in the caller's language and number format.

Rows come from ``api.stats.export_rows`` one province at a time and leave as bytes as soon
as they are formatted, so memory stays flat from a ward to the whole country. An XLSX file
is a ZIP of XML parts; ``stream-zip`` writes it without seeking, and the sheet is written
with inline strings so no shared-string table has to be held.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterable, AsyncIterator
from datetime import UTC, date, datetime
from typing import Final, NamedTuple
from xml.sax.saxutils import escape

import asyncpg
from babel.dates import format_date
from babel.numbers import format_decimal
from stream_zip import ZIP_32, async_stream_zip

from api.i18n import FORMAT_LOCALES, N_, format_number, format_rate, translate
from api.stats import counters as q
from api.stats.cards import cumulate, nearest_target, total
from api.stats.catalog import Catalog
from api.stats.counters import EMPTY
from api.stats.disclosure import REASONS, WITHHELD, Published, perturb
from api.stats.periods import EXPORT_MONTHS, add_months, month_start
from api.stats.places import Place, Places
from schemas.stats import Indicator

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
CSV_TYPE: Final = "text/csv; charset=utf-8"


# Spreadsheets sort "11/2026" (vi) and "Nov 2026" (en) as dates in their own locale.
MONTH_PATTERNS: Final = {"vi": "MM/yyyy", "en": "MMM yyyy"}


def _month(month: date, language: str) -> str:
    return format_date(month, MONTH_PATTERNS[language], locale=FORMAT_LOCALES[language])


def _amount(value: float, unit: str, language: str) -> str:
    if unit == "percent":
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


async def csv_stream(rows: AsyncIterable[ExportRow], language: str) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=CSV_DELIMITERS[language], lineterminator="\r\n")
    writer.writerow([translate(language, header) for header in HEADERS])
    yield ("\ufeff" + buffer.getvalue()).encode()  # the BOM tells spreadsheets it is UTF-8
    pending = 0
    async for row in rows:
        texts, numerator, denominator = formatted(row, language)
        counts = [
            "" if numerator is None else format_number(numerator, language),
            "" if denominator is None else format_number(denominator, language),
        ]
        if pending == 0:
            buffer.seek(0)
            buffer.truncate()
        writer.writerow([*texts[:6], *counts, *texts[6:]])
        pending += 1
        if pending == 500:
            yield buffer.getvalue().encode()
            pending = 0
    if pending:
        yield buffer.getvalue().encode()


def _column(index: int) -> str:
    return "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[index]


def _text_cell(reference: str, text: str) -> str:
    return f'<c r="{reference}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'


def _sheet_row(number: int, cells: list[str | int | None]) -> str:
    parts = []
    for index, cell in enumerate(cells):
        reference = f"{_column(index)}{number}"
        if isinstance(cell, int):
            parts.append(f'<c r="{reference}"><v>{cell}</v></c>')
        elif cell:
            parts.append(_text_cell(reference, cell))
    return f'<row r="{number}">{"".join(parts)}</row>'


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" '
    'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
    'relationships/worksheet" Target="worksheets/sheet1.xml"/>'
    "</Relationships>"
)


def _workbook(sheet_name: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        f'<sheets><sheet name="{escape(sheet_name)}" sheetId="1" r:id="rId1"/></sheets>'
        "</workbook>"
    )


async def _sheet(rows: AsyncIterable[ExportRow], language: str) -> AsyncIterator[bytes]:
    yield (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        "<sheetData>" + _sheet_row(1, [translate(language, header) for header in HEADERS])
    ).encode()
    number = 1
    chunk: list[str] = []
    async for row in rows:
        number += 1
        texts, numerator, denominator = formatted(row, language)
        chunk.append(_sheet_row(number, [*texts[:6], numerator, denominator, *texts[6:]]))
        if len(chunk) == 500:
            yield "".join(chunk).encode()
            chunk = []
    yield ("".join(chunk) + "</sheetData></worksheet>").encode()


async def _once(text: str) -> AsyncIterator[bytes]:
    yield text.encode()


def xlsx_stream(rows: AsyncIterable[ExportRow], language: str) -> AsyncIterable[bytes]:
    modified = datetime.now(UTC)
    sheet_name = translate(language, N_("Statistics"))

    async def parts() -> AsyncIterator[tuple[str, datetime, int, object, AsyncIterator[bytes]]]:
        yield "[Content_Types].xml", modified, 0o600, ZIP_32, _once(_CONTENT_TYPES)
        yield "_rels/.rels", modified, 0o600, ZIP_32, _once(_ROOT_RELS)
        yield "xl/workbook.xml", modified, 0o600, ZIP_32, _once(_workbook(sheet_name))
        yield "xl/_rels/workbook.xml.rels", modified, 0o600, ZIP_32, _once(_WORKBOOK_RELS)
        yield "xl/worksheets/sheet1.xml", modified, 0o600, ZIP_32, _sheet(rows, language)

    return async_stream_zip(parts())  # type: ignore[arg-type]


# Exports ------------------------------------------------------------------------------------


class ExportRow(NamedTuple):
    month: date
    place: Place
    indicator: Indicator
    shown: Published  # always protected: exports leave the office
    target: float | None


async def _area_rows(
    conn: asyncpg.Connection,
    catalog: Catalog,
    areas: list[Place],
    ends: list[date],
    chain_tail: list[int],
) -> AsyncIterator[ExportRow]:
    """Rows of ``areas`` (siblings), each cell protected on its own; ``chain_tail`` is where
    targets are looked for above them."""
    ids = [area.id for area in areas if area.id is not None]
    cells = cumulate(await q.monthly_deltas(conn, ids, ends[-1]), ends)
    years = sorted({end.year for end in ends})
    targets = {year: await q.targets(conn, ids + chain_tail, year) for year in years}
    blank = [EMPTY] * len(ends)
    for index, end in enumerate(ends):
        for area in areas:
            assert area.id is not None
            for indicator in catalog.indicators:
                yield ExportRow(
                    end,
                    area,
                    indicator,
                    perturb(cells.get((area.id, indicator.code), blank)[index], indicator.unit),
                    nearest_target(targets[end.year], [area.id, *chain_tail], indicator.code),
                )


async def export_rows(
    conn: asyncpg.Connection, catalog: Catalog, places: Places, place: Place, now: date
) -> AsyncIterator[ExportRow]:
    """The last 24 months of ``place`` and every area under it, always protected.

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
                target = nearest_target(targets[end.year], [q.NATION], indicator.code)
                yield ExportRow(end, place, indicator, perturb(cell, indicator.unit), target)
    if place.level == "ward":
        assert place.parent_id is not None
        async for row in _area_rows(conn, catalog, [place], ends, [place.parent_id, q.NATION]):
            yield row
        return
    shown = provinces if place.level == "nation" else [place]
    for province in shown:
        assert province.id is not None
        async for row in _area_rows(conn, catalog, [province], ends, [q.NATION]):
            yield row
        wards = await places.children(conn, province.id)
        async for row in _area_rows(conn, catalog, wards, ends, [province.id, q.NATION]):
            yield row
