"""The officials' Excel report and the SVG chart: opened as a person's spreadsheet would open
them (openpyxl, an XML parser), figures compared with the caller's own cards, children tables
and series, in both languages and for the exact and the protected views."""

from __future__ import annotations

import io
import tracemalloc
import xml.etree.ElementTree as ET
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import openpyxl
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from openpyxl.worksheet.worksheet import Worksheet

from api.config import Settings
from api.stats.cards import ChildFigures
from api.stats.catalog import load_catalog
from api.stats.exports import export_rows, on_connection, xlsx_stream
from api.stats.keys import record_keys
from api.stats.periods import add_months, month_start, parse_period, period_points, today
from api.stats.places import Place, Places
from api.stats.report import CHART_WORST, Author, ReportData, build
from schemas.stats import Card, Coverage, Forecast, IndicatorValue, SeriesPoint, StatArea
from tests.conftest import HA_NOI, HAC_THANH, HAM_RONG, THANH_HOA, Accounts, member, submission
from tests.test_stats import card, new_household, push, survey_ward, ward_team

pytestmark = [
    pytest.mark.anyio,
    # openpyxl reads everything but sparklines (an Excel 2010 extension) and says so.
    pytest.mark.filterwarnings("ignore:Sparkline Group extension"),
]

Client = AsyncTestClient[Litestar]
BIM_SON = "14812"
SVG = "{http://www.w3.org/2000/svg}"


async def report(
    client: Client, headers: dict[str, str], code: str, language: str = "vi", **params: str
) -> openpyxl.Workbook:
    response = await client.get(
        f"/api/v1/stats/areas/{code}/report.xlsx",
        params=params,
        headers={**headers, "Accept-Language": language},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    assert "attachment" in response.headers["content-disposition"]
    assert ".xlsx" in response.headers["content-disposition"]
    return openpyxl.load_workbook(io.BytesIO(response.content))


def cover(sheet: Worksheet) -> dict[str, Any]:
    """The cover block: label in column A → value in column B, down to the blank row."""
    found: dict[str, Any] = {"title": sheet["A1"].value}
    for row in range(3, 15):
        label = sheet.cell(row, 1).value
        if label:
            found[label] = sheet.cell(row, 2).value
    return found


def summary_rows(sheet: Worksheet, header: str) -> tuple[int, dict[str, dict[str, Any]]]:
    """The summary table: its header row and, by indicator code, the cells of its row."""
    top = next(r for r in range(1, 40) if sheet.cell(r, 1).value == header)
    heads = [sheet.cell(top, c).value for c in range(1, sheet.max_column + 1)]
    rows = {}
    for row in range(top + 1, top + 10):
        cells = {heads[c - 1]: sheet.cell(row, c) for c in range(1, len(heads) + 1)}
        rows[sheet.cell(row, 2).value] = cells
    return top, rows


def same_figures(cells: dict[str, Any], shown: dict[str, Any], names: tuple[str, ...]) -> None:
    """A summary or children row holds the card's numbers, as numbers."""
    numerator, denominator, value, target, gap = names
    assert cells[numerator].value == shown["numerator"]
    assert cells[denominator].value == shown["denominator"]
    assert cells[value].value == shown["value"]
    assert cells[target].value == shown["target"]
    assert cells[gap].value == shown["gap"]
    if shown["value"] is not None:
        assert isinstance(cells[value].value, int | float)
        expected = "0.0%" if shown["unit"] == "fraction" else "0.00"
        assert cells[value].number_format == expected
    if shown["numerator"] is not None:
        assert isinstance(cells[numerator].value, int)
        assert cells[numerator].number_format == "#,##0"


def print_setup(sheet: Worksheet) -> None:
    assert sheet.page_setup.orientation == "landscape"
    assert int(sheet.page_setup.paperSize) == 9  # A4
    assert sheet.sheet_properties.pageSetUpPr.fitToPage is True
    assert int(sheet.page_setup.fitToWidth or 1) == 1  # absent: 1, the OOXML default
    assert int(sheet.page_setup.fitToHeight) == 0  # as many pages tall as needed
    assert "&P" in sheet.oddFooter.right.text
    assert "&N" in sheet.oddFooter.right.text


def refs(chart: Any) -> list[str]:
    """The value ranges of every series of a chart and the charts combined with it."""
    return [series.val.numRef.f for part in chart._charts for series in part.series]


async def named_official(
    accounts: Accounts, db: asyncpg.Connection, role: str, area: str, name: str
) -> dict[str, str]:
    account = await accounts.create(role, area)
    await db.execute("UPDATE app_user SET display_name = $2 WHERE id = $1", account.id, name)
    return await accounts.headers(account)


async def test_a_ward_officials_report_is_exact_and_equals_the_card(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    await survey_ward(client, team, HAC_THANH, 12, 7)
    official = await named_official(accounts, db, "ward_official", HAC_THANH, "Lê Thị Hoa")
    book = await report(client, official, HAC_THANH)
    assert book.sheetnames == ["Tổng hợp", "Biểu đồ", "Theo tháng"]  # no areas under a ward
    summary = book["Tổng hợp"]
    front = cover(summary)
    assert front["title"] == "Báo cáo chuyển đổi số cộng đồng: Phường Hạc Thành"
    assert front["Địa bàn"] == f"Phường Hạc Thành ({HAC_THANH})"
    assert front["Kỳ báo cáo"] == "Hiện tại"
    assert "giờ Việt Nam" in front["Số liệu tính đến"]
    assert front["Người lập"] == "Cán bộ xã, phường: Lê Thị Hoa"
    assert front["Bảo mật số liệu"].startswith("Số liệu chính xác")
    assert front["Hộ đã khảo sát"] == 12
    assert front["Hộ đã đăng ký"] == 12
    assert front["Độ bao phủ (đã khảo sát / đã đăng ký)"] == 1.0
    phones = await db.fetch("SELECT phone FROM app_user")
    texts = [c.value for row in summary.iter_rows() for c in row if isinstance(c.value, str)]
    assert not [t for t in texts for p in phones if p["phone"] in t]  # never a phone number

    body = await card(client, official, HAC_THANH)
    assert body["exact"] is True
    top, rows = summary_rows(summary, "Chỉ tiêu")
    assert list(rows) == [i["code"] for i in body["indicators"]]
    names = ("Tử số", "Mẫu số", "Giá trị", "Mục tiêu", "Khoảng cách đến mục tiêu")
    for shown in body["indicators"]:
        same_figures(rows[shown["code"]], shown, names)
    smartphone = rows["ADULT_SMARTPHONE"]
    assert (smartphone["Tử số"].value, smartphone["Mẫu số"].value) == (7, 12)  # exact
    assert smartphone["Đánh giá"].value == "Còn xa"  # 58 % against 80 %
    assert rows["ADULT_EID"]["Đánh giá"].value == "Đạt"
    assert rows["ADULT_EID"]["Dự báo"].value == "Đã đạt mục tiêu"
    # The last six months as numbers, the current one equal to the card.
    months = [summary.cell(top, c).value for c in range(9, 15)]
    assert months[-1] == f"{today():%m/%Y}"
    assert smartphone[months[-1]].value == pytest.approx(7 / 12, abs=1e-4)
    assert summary.conditional_formatting  # met / close / far
    print_setup(summary)

    # The monthly sheet holds the series endpoint's values; the charts read it.
    monthly = book["Theo tháng"]
    series = (
        await client.get(
            f"/api/v1/stats/areas/{HAC_THANH}/series",
            params={"indicator": "ADULT_SMARTPHONE"},
            headers=official,
        )
    ).json()
    assert [monthly.cell(3 + i, 2).value for i in range(24)] == [
        p["value"] for p in series["points"]
    ]
    assert [monthly.cell(3 + i, 3).value for i in range(24)] == [
        p["target"] for p in series["points"]
    ]
    assert monthly.cell(26, 1).value == datetime(today().year, today().month, 1)
    assert monthly.cell(26, 1).number_format == "mm/yyyy"
    assert monthly.freeze_panes == "B3"
    print_setup(monthly)
    charts = book["Biểu đồ"]._charts
    assert len(charts) == 9  # one line chart per indicator
    assert refs(charts[0]) == ["'Theo tháng'!$B$3:$B$26", "'Theo tháng'!$C$3:$C$26"]
    assert charts[0].tagname == "lineChart"

    audited = await db.fetch(
        "SELECT subject_id, detail FROM audit_log WHERE action = 'stats.export' ORDER BY id"
    )
    assert [(r["subject_id"], r["detail"]["format"]) for r in audited] == [(HAC_THANH, "report")]


async def test_a_province_officials_report_is_protected_as_the_cards_are(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    wards = {HAC_THANH: (30, 20), HAM_RONG: (3, 2), BIM_SON: (12, 6)}
    for ward, (households, smartphones) in wards.items():
        await survey_ward(client, await ward_team(accounts, ward), ward, households, smartphones)
    official = await named_official(accounts, db, "province_official", THANH_HOA, "Trần Văn Nam")
    english = {**official, "Accept-Language": "en"}
    book = await report(client, official, THANH_HOA, "en", period="2025-07")
    codes = [i["code"] for i in (await card(client, english, THANH_HOA))["indicators"]]
    assert book.sheetnames == ["Summary", "Charts", "Monthly", *codes]
    front = cover(book["Summary"])
    assert front["title"] == "Community digital transformation report: Tỉnh Thanh Hóa"
    assert front["Period"] == "Jul 2025"
    assert front["Figures as of"] == "31 Jul 2025 (end of the period)"
    assert front["Generated by"] == "Province official: Trần Văn Nam"
    assert front["Privacy"].startswith("Protected figures (cell key method)")

    # The summary is the province official's card for July 2025, protected.
    body = await card(client, english, THANH_HOA, "2025-07")
    assert body["exact"] is False
    _, rows = summary_rows(book["Summary"], "Indicator")
    names = ("Numerator", "Denominator", "Value", "Target", "Gap to target")
    for shown in body["indicators"]:
        same_figures(rows[shown["code"]], shown, names)

    # Each indicator sheet is the children table sorted by gap, no data first, row for row.
    table = (
        await client.get(
            f"/api/v1/stats/areas/{THANH_HOA}/children",
            params={"indicator": "ADULT_SMARTPHONE", "period": "2025-07", "limit": 500},
            headers=english,
        )
    ).json()["items"]
    sheet = book["ADULT_SMARTPHONE"]
    heads = [sheet.cell(4, c).value for c in range(1, 11)]
    assert heads[:2] == ["Area", "Code"]
    listed = [{heads[c - 1]: sheet.cell(row, c) for c in range(1, 11)} for row in range(5, 5 + 166)]
    assert sheet.cell(5 + 166, 1).value is None
    assert [cells["Code"].value for cells in listed] == [row["area"]["code"] for row in table]
    for cells, row in zip(listed, table, strict=True):
        same_figures(cells, row["indicator"], names)
        assert cells["Coverage"].value == row["coverage"]["value"]
        if row["indicator"]["suppressed"]:
            assert cells["Status"].value == "Withheld (privacy)"
        elif row["noData"]:
            assert cells["Status"].value == "No data"
    flagged = [cells["Status"].value in ("No data", "Withheld (privacy)") for cells in listed]
    assert flagged == sorted(flagged, reverse=True)  # areas with no data first
    assert flagged.count(False) >= 2
    assert sheet.freeze_panes == "B5"
    assert sheet.auto_filter.ref == "A4:J170"
    assert sheet.print_title_rows == "$1:$4"
    assert sheet.conditional_formatting
    print_setup(sheet)

    # Per indicator, a column chart of the areas with data against their target, then a
    # line chart of the monthly series against the target.
    charts = book["Charts"]._charts
    assert len(charts) == 18
    bars, lines = charts[0::2], charts[1::2]
    assert all(chart.tagname == "barChart" for chart in bars)
    assert all(chart.tagname == "lineChart" for chart in lines)
    first = 5 + flagged.count(True)
    last = first + flagged.count(False) - 1
    assert refs(bars[0]) == [
        f"ADULT_SMARTPHONE!$E${first}:$E${last}",
        f"ADULT_SMARTPHONE!$F${first}:$F${last}",
    ]
    assert [part.tagname for part in bars[0]._charts] == ["barChart", "lineChart"]
    assert refs(lines[1]) == ["Monthly!$D$3:$D$26", "Monthly!$E$3:$E$26"]
    for name in ("Summary", "Charts", "Monthly"):
        print_setup(book[name])


async def test_report_scope_and_bad_input(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    ward = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    for headers, code in [(ward, HAM_RONG), (ward, THANH_HOA), (province, "VN"),
                          (province, HA_NOI)]:  # fmt: skip
        response = await client.get(f"/api/v1/stats/areas/{code}/report.xlsx", headers=headers)
        assert response.status_code == 404, code
        chart = await client.get(
            f"/api/v1/stats/areas/{code}/chart.svg",
            params={"indicator": "ADULT_EID"},
            headers=headers,
        )
        assert chart.status_code == 404, code
    assert (await client.get(f"/api/v1/stats/areas/{HAC_THANH}/report.xlsx")).status_code == 401
    bad = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/report.xlsx", params={"period": "2099"}, headers=ward
    )
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "period"
    # The nation, for an admin: a sheet per indicator of the 34 provinces.
    admin = await accounts.headers(await accounts.create("admin"))
    book = await report(client, admin, "VN", "en")
    sheet = book["ADULT_EID"]
    assert sheet.auto_filter.ref == "A4:J38"
    assert book["Summary"]["A1"].value.endswith(": Viet Nam")
    assert cover(book["Summary"])["Generated by"] == "Administrator"
    assert await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'stats.export'"
    ) == 1  # fmt: skip


async def test_the_chart_is_an_accessible_svg_of_the_series(
    client: Client, accounts: Accounts
) -> None:
    team = await ward_team(accounts, HAM_RONG)
    this_month = month_start(today())
    items = []
    for back in range(5, -1, -1):
        month = add_months(this_month, -back)
        for index in range(10):
            household = await new_household(client, team, HAM_RONG)
            items.append(
                submission(
                    household,
                    [member(1980, smartphone=index < 10 - back)],
                    collected_at=f"{month:%Y-%m}-02T09:00:00+07:00",
                )
            )
    await push(client, team, items)
    official = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    texts = {}
    for language in ("vi", "en"):
        response = await client.get(
            f"/api/v1/stats/areas/{HAM_RONG}/chart.svg",
            params={"indicator": "ADULT_SMARTPHONE"},
            headers={**official, "Accept-Language": language},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert response.headers["cache-control"] == "private, max-age=300"
        root = ET.fromstring(response.content)  # noqa: S314 (our own server's SVG)
        assert root.tag == f"{SVG}svg"
        assert root.get("role") == "img"
        assert root.get("aria-labelledby") == "chart-title chart-desc"
        title = root.find(f"{SVG}title")
        desc = root.find(f"{SVG}desc")
        assert title is not None
        assert desc is not None
        target = root.find(f".//{SVG}path[@class='target']")
        assert target is not None
        assert target.get("stroke-dasharray")
        series = root.find(f".//{SVG}path[@class='series']")
        assert series is not None
        assert len(root.findall(f".//{SVG}circle")) == 6  # six months with data
        texts[language] = (
            title.text,
            desc.text,
            " ".join(t.text or "" for t in root.iter(f"{SVG}text")),
        )
    title, desc, labels = texts["vi"]
    assert title == "Người trưởng thành có điện thoại thông minh: Phường Hàm Rồng"
    assert "75,0\u00a0%" in desc  # 45 of 60: the latest value
    assert "Mục tiêu: 80,0\u00a0%" in desc
    assert "Tháng" in labels
    assert "Mục tiêu 80,0\u00a0%" in labels
    title, desc, labels = texts["en"]
    assert title == "Adults owning a smartphone: Phường Hàm Rồng"
    assert "Latest: 75.0%" in desc
    assert f"Forecast: Reached in {add_months(this_month, 1):%b %Y}" in desc
    assert "Month" in labels
    assert "100%" in labels
    unknown = await client.get(
        f"/api/v1/stats/areas/{HAM_RONG}/chart.svg", params={"indicator": "X"}, headers=official
    )
    assert unknown.status_code == 400


def test_a_province_of_many_wards_charts_the_20_furthest_behind() -> None:
    """166 wards with data: the column chart shows the 20 furthest behind, which the sheet
    lists first (built from made-up figures, no database needed)."""
    now = date(2026, 11, 23)
    months = [p.end for p in period_points("month", now) if p.end is not None]
    province = Place(38, THANH_HOA, "Tỉnh Thanh Hóa", "province", None, 38)

    def value(code: str, share: float | None) -> IndicatorValue:
        return IndicatorValue(
            code=code, name=code.title(), unit="fraction", numerator=None if share is None else 1,
            denominator=None if share is None else 1, value=share, target=0.8,
            gap=None if share is None else round(0.8 - share, 4), suppressed=False, reason=None,
            reason_text=None, forecast=Forecast(status="not_enough_data", month=None,
                                                monthly_change=None),
        )  # fmt: skip

    codes = ["ADULT_SMARTPHONE", "ADULT_EID"]
    wards = [
        ChildFigures(
            Place(1000 + i, f"{14000 + i}", f"Xã {i}", "ward", 38, 38),
            value(code, None if i < 3 else i / 200),
            Coverage(surveyed=10, registered=20, value=0.5),
        )
        for i in range(169)
        for code in codes[:1]
    ]
    ordered = sorted(wards, key=lambda w: (w.indicator.value is not None, -(w.indicator.gap or 0)))
    points = [
        SeriesPoint(period=f"{m:%Y-%m}", numerator=1, denominator=2, value=0.5, target=0.8,
                    gap=0.3, suppressed=False, reason=None, reason_text=None)
        for m in months
    ]  # fmt: skip
    data = ReportData(
        place=province,
        period=parse_period("current", now),
        card=Card(
            area=StatArea(code=THANH_HOA, name="Tỉnh Thanh Hóa", level="province"),
            period="current",
            exact=False,
            coverage=Coverage(surveyed=1, registered=2, value=0.5),
            indicators=[value(code, 0.5) for code in codes],
        ),
        months=months,
        series={code: points for code in codes},
        children={codes[0]: ordered, codes[1]: []},
        author=Author("admin", None),
        generated=datetime(2026, 11, 23, 3, 0, tzinfo=UTC),
    )
    book = openpyxl.load_workbook(io.BytesIO(build(data, "en")))
    bars = book["Charts"]._charts[0]
    assert refs(bars) == [
        f"ADULT_SMARTPHONE!$E$8:$E${8 + CHART_WORST - 1}",
        f"ADULT_SMARTPHONE!$F$8:$F${8 + CHART_WORST - 1}",
    ]
    assert book["ADULT_SMARTPHONE"]["A8"].value == "Xã 3"  # the furthest behind
    assert book["ADULT_SMARTPHONE"]["H5"].value == "No data"
    # No area with data: no column chart, a note instead.
    assert len(book["Charts"]._charts) == 3


THAI_NGUYEN = "19"
AN_KHANH = "05809"  # Xã An Khánh, Thái Nguyên


async def test_a_province_xlsx_export_is_built_in_constant_memory(
    accounts: Accounts, client: Client, db: asyncpg.Connection, settings: Settings, tmp_path: Path
) -> None:
    """20,088 rows through XlsxWriter's constant_memory mode: memory holds a batch of rows,
    never the sheet (rows go to a temporary file; the workbook is streamed from its file).
    Thái Nguyên's 92 wards: Thanh Hóa's 166 took 41 s under tracemalloc, for the same proof
    (the CSV test streams all of Thanh Hóa)."""
    team = await ward_team(accounts, AN_KHANH)
    await survey_ward(client, team, AN_KHANH, 20, 15)
    catalog = await load_catalog(db, record_keys(settings))
    places = Places()
    place = await places.find(db, THAI_NGUYEN)
    assert place is not None
    path = tmp_path / "export.xlsx"
    tracemalloc.start()
    try:
        with path.open("wb") as out:
            async with db.transaction(isolation="repeatable_read", readonly=True):
                rows = export_rows(on_connection(db), catalog, places, place, today())
                async for chunk in xlsx_stream(rows, "vi"):
                    out.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with zipfile.ZipFile(path) as archive:
        sheet_xml = archive.getinfo("xl/worksheets/sheet1.xml").file_size
    assert sheet_xml > 9_000_000  # the sheet, uncompressed
    assert peak < sheet_xml / 5, (peak, sheet_xml)  # never held whole
    sheet = openpyxl.load_workbook(path, read_only=True).active
    assert sheet.max_row == 1 + (1 + 92) * 9 * 24  # the province and its wards, 24 months
