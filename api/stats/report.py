"""The officials' report: an Excel workbook (XlsxWriter) of an area's card, its monthly
series and, for a province or the nation, one sheet per indicator of the areas under it,
with native Excel charts and a print setup.

Every figure comes from the card functions (``card``, ``children``, ``series`` in
``api.stats.cards``) for the caller, so the report shows what the caller's cards show: exact
in a ward official's or team member's own ward, protected everywhere else, the same cells
withheld. Nothing is recomputed or re-protected here; this module only lays figures out.

Sheets: the summary (a cover block and one row per indicator), the charts (per indicator a
column chart of the areas under it against the target and a line chart of the monthly
series against the target), the monthly values, and a sheet per indicator for a province or
the nation (areas with no data first, then the furthest behind). The workbook is small (at
most a few thousand cells: the areas under a province are its wards, under the nation its
provinces), so it is built in memory (``in_memory``: no temporary files) in a worker thread,
not in ``constant_memory`` mode, which writes rows strictly in order to temporary files and
pays off only for long sheets such as the export.
"""

from __future__ import annotations

import io
import math
from datetime import date, datetime, timedelta
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

import asyncpg
from babel.dates import format_date, format_datetime
from xlsxwriter import Workbook
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from api.i18n import FORMAT_LOCALES, N_, translate
from api.queries.modules import VersionSource
from api.stats.cards import ChildFigures, card, children, series
from api.stats.catalog import TIME_ZONE, Catalog
from api.stats.disclosure import MIN_DENOMINATOR
from api.stats.exports import MONTH_PATTERNS
from api.stats.periods import Period, add_months, period_points, today
from api.stats.places import Place, Places
from schemas.stats import Card, Forecast, IndicatorValue, SeriesPoint

TREND_MONTHS: Final = 6  # the summary's trend: the months the forecast's pace is taken from
CLOSE: Final = 0.1  # "close": behind the target by at most a tenth of it (8 points of 80 %)
CHART_ALL: Final = 40  # up to this many areas with data, the column chart shows them all …
CHART_WORST: Final = 20  # … above it, the 20 furthest behind
A4: Final = 9  # Excel's paper size code

# Excel number formats are locale-neutral: Excel and LibreOffice show them with the reader's
# decimal and thousands separators (75,6 % and 1.234 in Vietnamese).
PERCENT: Final = "0.0%"
RATIO: Final = "0.00"
COUNT: Final = "#,##0"
MONTH_FORMATS: Final = {"vi": "mm/yyyy", "en": "mmm yyyy"}

# Colours of met / close / far (Excel's own "good", "neutral" and "bad" styles) and no data.
MET_STYLE: Final = {"bg_color": "#C6EFCE", "font_color": "#006100"}
CLOSE_STYLE: Final = {"bg_color": "#FFEB9C", "font_color": "#9C5700"}
FAR_STYLE: Final = {"bg_color": "#FFC7CE", "font_color": "#9C0006"}
NO_DATA_STYLE: Final = {"bg_color": "#EDEDED", "font_color": "#595959"}
VALUE_COLOUR: Final = "#2F5597"
TARGET_COLOUR: Final = "#C00000"

TITLE = N_("Community digital transformation report")
SUMMARY_SHEET = N_("Summary")
CHARTS_SHEET = N_("Charts")
MONTHLY_SHEET = N_("Monthly")
STATUS = N_("Status")
FORECAST = N_("Forecast")
COVERAGE = N_("Coverage")
CODE = N_("Code")
MET = N_("Met")
CLOSE_TEXT = N_("Close")
FAR = N_("Far behind")
NO_DATA = N_("No data")
WITHHELD_TEXT = N_("Withheld (privacy)")
NO_TARGET = N_("No target")
ROLES: Final = {
    "admin": N_("Administrator"),
    "province_official": N_("Province official"),
    "ward_official": N_("Ward official"),
    "team_member": N_("Team member"),
}
FORECASTS: Final = {
    "met": N_("Target met"),
    "not_within_5_years": N_("Not within 5 years at this pace"),
    "not_enough_data": N_("Not enough data (fewer than 3 months)"),
    "no_target": N_("No target"),
}
EXACT_NOTE = N_(
    "Exact figures: this is your own ward. They include small counts that could point to "
    "single households; do not share this report beyond the ward's officials and teams."
)
PROTECTED_NOTE = N_(
    "Protected figures (cell key method): every count carries a small noise of a few units, "
    "always the same for the same cell, and no count from 1 to 4 is shown; a figure whose "
    "protected denominator is below %(minimum)s is withheld. Rates are computed from the "
    "protected counts, so they may differ slightly from a ward's own exact figures; cards, "
    "exports and this report show the same value for the same cell."
)
LEGEND = N_(
    "Status: met = at or above the target; close = behind by at most a tenth of the target; "
    "far behind = more. Forecast: the month the target is reached if the pace of the last "
    "6 months (a Theil–Sen slope) goes on."
)
CHILD_ORDER = N_(
    "Areas with no data come first (they are where teams should go), then the furthest "
    "behind the target."
)


class Author(NamedTuple):
    role: str
    name: str | None


class ReportData(NamedTuple):
    """Everything the workbook shows, as the caller's cards show it."""

    place: Place
    period: Period
    card: Card
    months: list[date]  # the monthly series' months, oldest first
    series: dict[str, list[SeriesPoint]]  # indicator code → one point per month
    children: dict[str, list[ChildFigures]]  # indicator code → sorted as in the report
    author: Author
    generated: datetime  # aware


def gap_order(rows: list[ChildFigures]) -> list[ChildFigures]:
    """As the children endpoint's ``sort=gap``: no data first, then the furthest behind,
    then Vietnamese order."""
    keyed = [
        ((0 if row.indicator.value is None else 1, -(row.indicator.gap or 0.0), order), row)
        for order, row in enumerate(rows)
    ]
    keyed.sort(key=lambda item: item[0])
    return [row for _, row in keyed]


async def gather(
    conn: asyncpg.Connection,
    catalog: Catalog,
    places: Places,
    place: Place,
    period: Period,
    *,
    exact: bool,
    language: str,
    versions: VersionSource,
    author: Author,
    generated: datetime,
) -> ReportData:
    """The card, the monthly series up to the period's last month and, for a province or the
    nation, the children of each indicator: the same calls the endpoints make."""
    built = await card(
        conn, catalog, places, place, period, exact=exact, language=language, versions=versions
    )
    last = period.end or today()
    months = [p.end for p in period_points("month", last) if p.end is not None]
    monthly: dict[str, list[SeriesPoint]] = {}
    rows: dict[str, list[ChildFigures]] = {}
    for indicator in catalog.indicators:
        monthly[indicator.code] = await series(
            conn, places, place, indicator, "month", exact=exact, language=language, now=last
        )
        if place.level != "ward":
            rows[indicator.code] = gap_order(
                await children(conn, places, place, indicator, period, language)
            )
    return ReportData(place, period, built, months, monthly, rows, author, generated)


# Texts ------------------------------------------------------------------------------------


def month_text(month: date, language: str) -> str:
    return format_date(month, MONTH_PATTERNS[language], locale=FORMAT_LOCALES[language])


def period_text(period: Period, language: str) -> str:
    label = period.label
    if label == "current":
        return translate(language, N_("Current"))
    if "-Q" in label:
        return translate(
            language, N_("Quarter %(quarter)s, %(year)s"), {"quarter": label[-1], "year": label[:4]}
        )
    if len(label) == 4:
        return translate(language, N_("Year %(year)s"), {"year": label})
    assert period.end is not None
    return month_text(period.end, language)


def when_text(moment: datetime, language: str) -> str:
    pattern = {"vi": "HH:mm 'ngày' dd/MM/yyyy", "en": "d MMM yyyy, HH:mm"}[language]
    shown = format_datetime(
        moment, pattern, tzinfo=ZoneInfo(TIME_ZONE), locale=FORMAT_LOCALES[language]
    )
    return translate(language, N_("%(time)s (Viet Nam time)"), {"time": shown})


def as_of_text(data: ReportData, language: str) -> str:
    if data.period.end is None:
        return when_text(data.generated, language)
    last_day = add_months(data.period.end, 1) - timedelta(days=1)
    day = format_date(
        last_day,
        {"vi": "dd/MM/yyyy", "en": "d MMM yyyy"}[language],
        locale=FORMAT_LOCALES[language],
    )
    return translate(language, N_("%(day)s (end of the period)"), {"day": day})


def area_text(place: Place, language: str) -> str:
    name = place.public(language).name
    return f"{name} ({place.code})" if place.level != "nation" else name


def author_text(author: Author, language: str) -> str:
    role = translate(language, ROLES.get(author.role, author.role))
    return f"{role}: {author.name}" if author.name else role


def standing(value: IndicatorValue) -> str:
    """Met, close or far behind; the colours of the conditional formats say the same."""
    if value.suppressed:
        return WITHHELD_TEXT
    if value.value is None:
        return NO_DATA
    if value.target is None or value.gap is None:
        return NO_TARGET
    if value.gap <= 0:
        return MET
    if value.gap <= CLOSE * value.target:
        return CLOSE_TEXT
    return FAR


def forecast_text(forecast: Forecast | None, language: str) -> str:
    if forecast is None:
        return ""
    if forecast.status == "on_pace" and forecast.month:
        month = date(int(forecast.month[:4]), int(forecast.month[5:7]), 1)
        return translate(
            language, N_("Reached in %(month)s"), {"month": month_text(month, language)}
        )
    return translate(language, FORECASTS.get(forecast.status, forecast.status))


# The workbook -----------------------------------------------------------------------------


class Styles:
    """Formats made once per workbook, by their properties."""

    def __init__(self, book: Workbook) -> None:
        self._book = book
        self._made: dict[tuple[tuple[str, Any], ...], Format] = {}

    def __call__(self, **properties: Any) -> Format:
        key = tuple(sorted(properties.items()))
        if key not in self._made:
            self._made[key] = self._book.add_format(
                {"font_name": "Arial", "font_size": 10, **properties}
            )
        return self._made[key]

    def cell(self, number_format: str | None = None, **properties: Any) -> Format:
        """A bordered table cell."""
        extra = {"num_format": number_format} if number_format else {}
        return self(border=1, border_color="#BFBFBF", valign="top", **extra, **properties)

    def header(self) -> Format:
        return self(
            bold=True, text_wrap=True, valign="vcenter", bg_color="#DDEBF7", border=1,
            border_color="#8EA9DB",
        )  # fmt: skip


LINE_HEIGHT: Final = 13  # points per line of 10-point text


def _lines(text: str, width: float) -> int:
    """Lines a wrapped text takes in a column ``width`` characters wide (spreadsheets do
    not grow a row for wrapped text they did not lay out themselves)."""
    return max(1, math.ceil(len(text) / (width * 1.3)))


def number_format(unit: str) -> str:
    return PERCENT if unit == "fraction" else RATIO


def _number(sheet: Worksheet, row: int, col: int, value: float | int | None, style: Format) -> None:
    if value is None:
        sheet.write_blank(row, col, None, style)
    else:
        sheet.write_number(row, col, value, style)


def _page(sheet: Worksheet, data: ReportData, language: str, heading_rows: int | None) -> None:
    """A4 landscape, one page wide, the header rows on every page, page numbers."""
    sheet.set_paper(A4)
    sheet.set_landscape()
    sheet.fit_to_pages(1, 0)
    sheet.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    if heading_rows is not None:
        sheet.repeat_rows(0, heading_rows)
    area = data.place.public(language).name.replace("&", "&&")
    page = translate(language, N_("Page %(page)s of %(pages)s"), {"page": "&P", "pages": "&N"})
    sheet.set_footer(
        f"&L&8{area} · {period_text(data.period, language)}&R&8{page}", {"margins": 0.3}
    )


def _status_formats(
    sheet: Worksheet, styles: Styles, cells: str, gap: str, target: str, value: str
) -> None:
    """Colours by met / close / far on ``cells`` (a range whose first row's gap, target and
    value cells are ``gap``, ``target``, ``value``, columns fixed)."""
    rules = [
        (f"=NOT(ISNUMBER({value}))", NO_DATA_STYLE),
        (f"=AND(ISNUMBER({gap}),{gap}<=0)", MET_STYLE),
        (f"=AND(ISNUMBER({gap}),ISNUMBER({target}),{gap}>0,{gap}<={target}*{CLOSE})", CLOSE_STYLE),
        (f"=AND(ISNUMBER({gap}),{gap}>0)", FAR_STYLE),
    ]
    for formula, style in rules:
        sheet.conditional_format(
            cells, {"type": "formula", "criteria": formula, "format": styles(**style),
                    "stop_if_true": True},
        )  # fmt: skip


def _summary(book: Workbook, styles: Styles, data: ReportData, language: str) -> None:
    sheet = book.add_worksheet(translate(language, SUMMARY_SHEET))
    sheet.hide_gridlines(2)
    widths = [40, 15, 9, 9, 9, 9, 10, 11] + [8] * TREND_MONTHS + [32]
    for col, width in enumerate(widths):
        sheet.set_column(col, col, width)
    last_col = len(widths) - 1
    label = styles(bold=True, valign="top")
    text = styles(valign="top", text_wrap=True)
    title = f"{translate(language, TITLE)}: {data.place.public(language).name}"
    sheet.set_row(0, 26)
    sheet.write_string(0, 0, title, styles(bold=True, font_size=16, font_color="#1F3864"))
    cover = [
        (N_("Area"), area_text(data.place, language)),
        (N_("Period"), period_text(data.period, language)),
        (N_("Figures as of"), as_of_text(data, language)),
        (N_("Generated"), when_text(data.generated, language)),
        (N_("Generated by"), author_text(data.author, language)),
    ]
    if data.card.closed is not None:  # a ward's month closed by its officials: frozen
        cover.append((N_("Month closed"), data.card.closed.text))
    row = 2
    for key, shown_text in cover:
        sheet.write_string(row, 0, translate(language, key), label)
        sheet.merge_range(row, 1, row, 8, shown_text, text)
        row += 1
    coverage = data.card.coverage
    for key, count in ((N_("Households surveyed"), coverage.surveyed),
                       (N_("Households registered"), coverage.registered)):  # fmt: skip
        sheet.write_string(row, 0, translate(language, key), label)
        _number(sheet, row, 1, count, styles(num_format=COUNT, align="left", valign="top"))
        row += 1
    sheet.write_string(row, 0, translate(language, N_("Coverage (surveyed / registered)")), label)
    _number(sheet, row, 1, coverage.value, styles(num_format=PERCENT, align="left", valign="top"))
    row += 1
    note = (
        translate(language, EXACT_NOTE)
        if data.card.exact
        else translate(language, PROTECTED_NOTE, {"minimum": MIN_DENOMINATOR})
    )
    sheet.write_string(row, 0, translate(language, N_("Privacy")), label)
    sheet.set_row(row, 48)
    sheet.merge_range(row, 1, row, last_col, note, text)
    row += 2

    months = data.months[-TREND_MONTHS:]
    head = [
        N_("Indicator"), CODE, N_("Numerator"), N_("Denominator"), N_("Value"), N_("Target"),
        N_("Gap to target"), STATUS,
    ]  # fmt: skip
    header = styles.header()
    top = row
    sheet.set_row(top, 32)
    for col, name in enumerate(head):
        sheet.write_string(top, col, translate(language, name), header)
    for offset, month in enumerate(months):
        sheet.write_string(top, len(head) + offset, month_text(month, language), header)
    sheet.write_string(top, last_col, translate(language, FORECAST), header)
    first = top + 1
    for index, value in enumerate(data.card.indicators):
        row = first + index
        shown = number_format(value.unit)
        sheet.write_string(row, 0, value.name, styles.cell(text_wrap=True))
        sheet.write_string(row, 1, value.code, styles.cell(font_size=8))
        _number(sheet, row, 2, value.numerator, styles.cell(COUNT))
        _number(sheet, row, 3, value.denominator, styles.cell(COUNT))
        _number(sheet, row, 4, value.value, styles.cell(shown, bold=True))
        _number(sheet, row, 5, value.target, styles.cell(shown))
        _number(sheet, row, 6, value.gap, styles.cell(shown))
        sheet.write_string(row, 7, translate(language, standing(value)), styles.cell())
        points = data.series[value.code][-TREND_MONTHS:]
        for offset, point in enumerate(points):
            _number(sheet, row, len(head) + offset, point.value, styles.cell(shown))
        forecast = forecast_text(value.forecast, language)
        sheet.write_string(row, last_col, forecast, styles.cell(text_wrap=True))
        lines = max(_lines(value.name, widths[0]), _lines(forecast, widths[last_col]))
        sheet.set_row(row, LINE_HEIGHT * lines + 2)
    last = first + len(data.card.indicators) - 1
    _status_formats(
        sheet, styles, f"E{first + 1}:H{last + 1}", f"$G{first + 1}", f"$F{first + 1}",
        f"$E{first + 1}",
    )  # fmt: skip
    sheet.merge_range(last + 2, 0, last + 2, last_col, translate(language, LEGEND), text)
    sheet.set_row(last + 2, 30)
    _page(sheet, data, language, None)


def _monthly(book: Workbook, styles: Styles, data: ReportData, language: str) -> str:
    """Months down, each indicator's value and target across; the line charts read it."""
    name = translate(language, MONTHLY_SHEET)
    sheet = book.add_worksheet(name)
    header = styles.header()
    sheet.set_column(0, 0, 11)
    sheet.set_column(1, 2 * len(data.card.indicators), 11)
    sheet.set_row(0, 58)
    sheet.merge_range(0, 0, 1, 0, translate(language, N_("Month")), header)
    month_style = styles.cell(MONTH_FORMATS[language], align="left")
    for index, indicator in enumerate(data.card.indicators):
        col = 1 + 2 * index
        sheet.merge_range(0, col, 0, col + 1, indicator.name, header)
        sheet.write_string(1, col, translate(language, N_("Value")), header)
        sheet.write_string(1, col + 1, translate(language, N_("Target")), header)
    for offset, month in enumerate(data.months):
        sheet.write_datetime(2 + offset, 0, datetime(month.year, month.month, 1), month_style)
    for index, indicator in enumerate(data.card.indicators):
        col = 1 + 2 * index
        shown = number_format(indicator.unit)
        for offset, point in enumerate(data.series[indicator.code]):
            _number(sheet, 2 + offset, col, point.value, styles.cell(shown))
            _number(sheet, 2 + offset, col + 1, point.target, styles.cell(shown))
    sheet.freeze_panes(2, 1)
    _page(sheet, data, language, 1)
    return name


CHILD_HEAD: Final = (
    N_("Area"), CODE, N_("Numerator"), N_("Denominator"), N_("Value"), N_("Target"),
    N_("Gap to target"), STATUS, COVERAGE, FORECAST,
)  # fmt: skip
CHILD_WIDTHS: Final = (30, 9, 11, 11, 10, 10, 11, 15, 11, 26)
CHILD_TOP: Final = 3  # the header row of an indicator sheet


def _child_sheet(
    book: Workbook, styles: Styles, data: ReportData, value: IndicatorValue, language: str
) -> None:
    """One row per area under the report's area, for one indicator."""
    sheet = book.add_worksheet(value.code)
    rows = data.children[value.code]
    for col, width in enumerate(CHILD_WIDTHS):
        sheet.set_column(col, col, width)
    sheet.set_row(0, 22)
    sheet.write_string(
        0, 0, f"{value.name}: {data.place.public(language).name}", styles(bold=True, font_size=13)
    )
    order = f"{period_text(data.period, language)} · {translate(language, CHILD_ORDER)}"
    sheet.write_string(1, 0, order, styles(italic=True, font_color="#595959"))
    header = styles.header()
    sheet.set_row(CHILD_TOP, 30)
    for col, name in enumerate(CHILD_HEAD):
        sheet.write_string(CHILD_TOP, col, translate(language, name), header)
    shown = number_format(value.unit)
    for index, child in enumerate(rows):
        row = CHILD_TOP + 1 + index
        figure = child.indicator
        sheet.write_string(row, 0, child.place.public(language).name, styles.cell())
        sheet.write_string(row, 1, child.place.code, styles.cell())
        _number(sheet, row, 2, figure.numerator, styles.cell(COUNT))
        _number(sheet, row, 3, figure.denominator, styles.cell(COUNT))
        _number(sheet, row, 4, figure.value, styles.cell(shown, bold=True))
        _number(sheet, row, 5, figure.target, styles.cell(shown))
        _number(sheet, row, 6, figure.gap, styles.cell(shown))
        sheet.write_string(row, 7, translate(language, standing(figure)), styles.cell())
        _number(sheet, row, 8, child.coverage.value, styles.cell(PERCENT))
        sheet.write_string(row, 9, forecast_text(figure.forecast, language), styles.cell())
    last = CHILD_TOP + max(len(rows), 1)
    first = CHILD_TOP + 2  # 1-based, as in the formulas
    if rows:
        _status_formats(
            sheet, styles, f"E{first}:H{last + 1}", f"$G{first}", f"$F{first}", f"$E{first}"
        )
    sheet.autofilter(CHILD_TOP, 0, last, len(CHILD_HEAD) - 1)
    sheet.freeze_panes(CHILD_TOP + 1, 1)
    _page(sheet, data, language, CHILD_TOP)


BAND: Final = 18  # rows per indicator on the charts sheet: a title and two charts
CHART_SIZE: Final = {"width": 560, "height": 320}
SECOND_CHART_COL: Final = 9


def _charts(book: Workbook, styles: Styles, data: ReportData, language: str, monthly: str) -> None:
    """Per indicator, for a province or the nation, a band of two charts: the areas under
    it against the target and the monthly series; for a ward, the series only, two a band.
    Two bands a printed page."""
    sheet = book.add_worksheet(translate(language, CHARTS_SHEET))
    sheet.hide_gridlines(2)
    sheet.write_string(
        0, 0, f"{translate(language, CHARTS_SHEET)}: {data.place.public(language).name}",
        styles(bold=True, font_size=14, font_color="#1F3864"),
    )  # fmt: skip
    ward = data.place.level == "ward"
    breaks = []
    for index, value in enumerate(data.card.indicators):
        band = index // 2 if ward else index
        top = 2 + band * BAND
        if band and band % 2 == 0 and top not in breaks:
            breaks.append(top)
        if ward:
            col = (index % 2) * SECOND_CHART_COL
            _series_chart(book, sheet, data, value, language, monthly, index, top, col)
            continue
        sheet.write_string(top, 0, value.name, styles(bold=True, font_size=12))
        _children_chart(book, sheet, styles, data, value, language, top + 1)
        _series_chart(book, sheet, data, value, language, monthly, index, top + 1, SECOND_CHART_COL)
    sheet.set_h_pagebreaks(breaks)
    _page(sheet, data, language, None)


def _axis_format(unit: str) -> dict[str, Any]:
    if unit == "fraction":
        return {"num_format": "0%", "min": 0, "max": 1, "major_unit": 0.2}
    return {"num_format": "0.0", "min": 0}


def _children_chart(
    book: Workbook,
    sheet: Worksheet,
    styles: Styles,
    data: ReportData,
    value: IndicatorValue,
    language: str,
    row: int,
) -> None:
    """The areas under the report's area with data, the furthest behind first (the 20
    furthest behind when there are many), as columns against each one's target."""
    rows = data.children[value.code]
    with_data = [index for index, child in enumerate(rows) if child.indicator.value is not None]
    if not with_data:
        sheet.write_string(
            row, 0, translate(language, N_("No area under it has data to chart yet.")),
            styles(italic=True, font_color="#595959"),
        )  # fmt: skip
        return
    count = len(with_data) if len(with_data) <= CHART_ALL else CHART_WORST
    first = CHILD_TOP + 1 + with_data[0]  # rows with data follow the ones without, in order
    last = first + count - 1
    if count < len(with_data):
        title = translate(
            language, N_("The %(count)s areas furthest behind the target"), {"count": count}
        )
    else:
        title = translate(language, N_("Areas against the target"))
    chart = book.add_chart({"type": "column"})
    assert chart is not None
    chart.add_series({
        "name": translate(language, N_("Value")),
        "categories": [value.code, first, 0, last, 0],
        "values": [value.code, first, 4, last, 4],
        "fill": {"color": VALUE_COLOUR},
        "gap": 60 if count > 8 else 250,
    })  # fmt: skip
    target = book.add_chart({"type": "line"})
    assert target is not None
    target.add_series({
        "name": translate(language, N_("Target")),
        "categories": [value.code, first, 0, last, 0],
        "values": [value.code, first, 5, last, 5],
        "line": {"color": TARGET_COLOUR, "width": 2, "dash_type": "dash"},
        # A mark on each column too: a line through one column would not show.
        "marker": {"type": "dash", "size": 14, "border": {"color": TARGET_COLOUR},
                   "fill": {"color": TARGET_COLOUR}},
    })  # fmt: skip
    chart.combine(target)
    chart.set_title({"name": title, "name_font": {"size": 11, "bold": True}})
    chart.set_x_axis({"num_font": {"rotation": -45, "size": 7}})
    chart.set_y_axis({**_axis_format(value.unit), "major_gridlines": {
        "visible": True, "line": {"color": "#D9D9D9"}}})  # fmt: skip
    chart.set_legend({"position": "bottom"})
    chart.set_size(CHART_SIZE)
    sheet.insert_chart(row, 0, chart)


def _series_chart(
    book: Workbook,
    sheet: Worksheet,
    data: ReportData,
    value: IndicatorValue,
    language: str,
    monthly: str,
    index: int,
    row: int,
    col: int,
) -> None:
    """The monthly series against the target, from the monthly sheet."""
    last = 1 + len(data.months)
    column = 1 + 2 * index
    chart = book.add_chart({"type": "line"})
    assert chart is not None
    chart.add_series({
        "name": translate(language, N_("Value")),
        "categories": [monthly, 2, 0, last, 0],
        "values": [monthly, 2, column, last, column],
        "line": {"color": VALUE_COLOUR, "width": 2.25},
        "marker": {"type": "circle", "size": 4, "fill": {"color": VALUE_COLOUR},
                   "border": {"color": VALUE_COLOUR}},
    })  # fmt: skip
    chart.add_series({
        "name": translate(language, N_("Target")),
        "categories": [monthly, 2, 0, last, 0],
        "values": [monthly, 2, column + 1, last, column + 1],
        "line": {"color": TARGET_COLOUR, "width": 2, "dash_type": "dash"},
        "marker": {"type": "none"},
    })  # fmt: skip
    months = translate(language, N_("Last %(count)s months"), {"count": len(data.months)})
    title = f"{value.name}: {months.lower()}" if data.place.level == "ward" else months
    chart.set_title({"name": title, "name_font": {"size": 11, "bold": True}})
    chart.set_x_axis({"num_format": MONTH_FORMATS[language], "num_font": {"rotation": -45,
                      "size": 7}})  # fmt: skip
    chart.set_y_axis({**_axis_format(value.unit), "major_gridlines": {
        "visible": True, "line": {"color": "#D9D9D9"}}})  # fmt: skip
    chart.set_legend({"position": "bottom"})
    chart.show_blanks_as("gap")
    chart.set_size(CHART_SIZE)
    sheet.insert_chart(row, col, chart)


def build(data: ReportData, language: str) -> bytes:
    """The workbook's bytes (CPU only: run it in a worker thread)."""
    buffer = io.BytesIO()
    book = Workbook(buffer, {"in_memory": True})
    book.set_properties({
        "title": f"{translate(language, TITLE)}: {data.place.public(language).name}",
        "author": "Cộng đồng số",
        "created": data.generated.replace(tzinfo=None),
    })  # fmt: skip
    styles = Styles(book)
    monthly = translate(language, MONTHLY_SHEET)
    _summary(book, styles, data, language)
    # Charts may name sheets added after theirs: ranges are resolved when the book closes.
    _charts(book, styles, data, language, monthly)
    _monthly(book, styles, data, language)
    if data.place.level != "ward":
        for value in data.card.indicators:
            _child_sheet(book, styles, data, value, language)
    book.close()
    return buffer.getvalue()
