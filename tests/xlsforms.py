"""Real XLSForm workbooks for the import tests and the import benchmark, written with
XlsxWriter as a form designer's spreadsheet would be (survey, choices and settings sheets).

Run as a script to write them all into a folder: ``python -m tests.xlsforms out/``.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import xlsxwriter

Rows = list[dict[str, Any]]

VI, EN = "label::Vietnamese (vi)", "label::English (en)"
HINT_VI, HINT_EN = "hint::Vietnamese (vi)", "hint::English (en)"


def workbook(
    survey: Rows,
    choices: Rows | None = None,
    settings: dict[str, Any] | None = None,
) -> bytes:
    """An .xlsx XLSForm; each sheet's columns are the union of its rows' keys, in order."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheets: list[tuple[str, Rows]] = [("survey", survey)]
    if choices is not None:
        sheets.append(("choices", choices))
    if settings is not None:
        sheets.append(("settings", [settings]))
    for name, rows in sheets:
        sheet = book.add_worksheet(name)
        columns: list[str] = []
        for row in rows:
            columns += [column for column in row if column not in columns]
        for index, column in enumerate(columns):
            sheet.write(0, index, column)
        for number, row in enumerate(rows, start=1):
            for index, column in enumerate(columns):
                if column in row:
                    sheet.write(number, index, row[column])
    book.close()
    return buffer.getvalue()


def q(kind: str, name: str, vi: str, en: str | None = None, **columns: Any) -> dict[str, Any]:
    return {"type": kind, "name": name, VI: vi, EN: en or vi, **columns}


def choice(
    list_name: str, name: str, vi: str, en: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {"list_name": list_name, "name": name, VI: vi, EN: en or vi, **extra}


YES_NO = [choice("yes_no", "yes", "Có", "Yes"), choice("yes_no", "no", "Không", "No")]


def settings(form_id: str, version: str = "2025.1") -> dict[str, Any]:
    return {"form_id": form_id, "version": version, "default_language": "Vietnamese (vi)"}


# One form per supported feature: (workbook, cases). A case is (answers, members,
# expected [(field, code)] — empty when the submission must be accepted).
Case = tuple[dict[str, Any], list[dict[str, Any]], list[tuple[str, str]]]


def feature_forms() -> dict[str, tuple[bytes, list[Case]]]:
    forms: dict[str, tuple[bytes, list[Case]]] = {}
    forms["text"] = (
        workbook(
            [
                q(
                    "text",
                    "house_no",
                    "Số nhà",
                    "House number",
                    required="yes",
                    constraint="string-length(.) >= 1 and string-length(.) <= 6",
                ),
                q(
                    "text",
                    "postcode",
                    "Mã bưu chính",
                    "Postcode",
                    constraint="regex(., '^[0-9]{6}$')",
                ),
            ],
            settings=settings("f_text"),
        ),
        [
            ({"house_no": "12A", "postcode": "440000"}, [], []),
            ({"house_no": "12A"}, [], []),
            ({}, [], [("answers.house_no", "required")]),
            ({"house_no": "1234567"}, [], [("answers.house_no", "max_length")]),
            ({"house_no": ""}, [], [("answers.house_no", "min_length")]),
            ({"house_no": "1", "postcode": "44000"}, [], [("answers.postcode", "pattern")]),
            ({"house_no": "1", "postcode": "44000a"}, [], [("answers.postcode", "pattern")]),
            ({"house_no": 12}, [], [("answers.house_no", "type")]),
        ],
    )
    forms["integer"] = (
        workbook(
            [
                q(
                    "integer",
                    "adults",
                    "Số người lớn",
                    "Adults",
                    required="yes",
                    constraint=". >= 1 and . <= 20",
                )
            ],
            settings=settings("f_integer"),
        ),
        [
            ({"adults": 3}, [], []),
            ({"adults": 0}, [], [("answers.adults", "minimum")]),
            ({"adults": 21}, [], [("answers.adults", "maximum")]),
            ({"adults": 2.5}, [], [("answers.adults", "type")]),
            ({"adults": True}, [], [("answers.adults", "type")]),
            ({}, [], [("answers.adults", "required")]),
        ],
    )
    forms["decimal"] = (
        workbook(
            [
                q(
                    "decimal",
                    "speed",
                    "Tốc độ (Mbps)",
                    "Speed (Mbps)",
                    required="yes",
                    constraint=". >= 0.5 and . <= 1000",
                )
            ],
            settings=settings("f_decimal"),
        ),
        [
            ({"speed": 12.5}, [], []),
            ({"speed": 100}, [], []),
            ({"speed": 0.4}, [], [("answers.speed", "minimum")]),
            ({"speed": 1000.1}, [], [("answers.speed", "maximum")]),
            ({"speed": "fast"}, [], [("answers.speed", "type")]),
        ],
    )
    forms["date"] = (
        workbook(
            [
                q(
                    "date",
                    "activated_on",
                    "Ngày kích hoạt",
                    "Activated on",
                    constraint=". >= '2024-01-01' and . <= '2025-12-31'",
                )
            ],
            settings=settings("f_date"),
        ),
        [
            ({"activated_on": "2025-03-01"}, [], []),
            ({}, [], []),
            ({"activated_on": "2023-12-31"}, [], [("answers.activated_on", "minimum")]),
            ({"activated_on": "2026-01-01"}, [], [("answers.activated_on", "maximum")]),
            ({"activated_on": "01/03/2025"}, [], [("answers.activated_on", "format")]),
        ],
    )
    forms["note"] = (
        workbook(
            [
                q("note", "intro", "Xin chào, tổ công nghệ số", "Hello, digital team"),
                q("integer", "visits", "Số lần", "Visits"),
            ],
            settings=settings("f_note"),
        ),
        [
            ({"visits": 1}, [], []),
            ({"intro": "x"}, [], [("answers.intro", "not_relevant")]),
        ],
    )
    forms["select_one"] = (
        workbook(
            [q("select_one yes_no", "helped", "Đã hỗ trợ?", "Helped?", required="yes")],
            YES_NO,
            settings("f_select_one"),
        ),
        [
            ({"helped": "yes"}, [], []),
            ({"helped": "maybe"}, [], [("answers.helped", "choice")]),
            ({"helped": ["yes"]}, [], [("answers.helped", "type")]),
        ],
    )
    forms["select_multiple"] = (
        workbook(
            [q("select_multiple barrier", "barriers", "Khó khăn", "Barriers")],
            [
                choice("barrier", "no_phone", "Không có điện thoại", "No smartphone"),
                choice("barrier", "no_chip_id", "Chưa có CCCD gắn chip", "No chip ID card"),
                choice("barrier", "other", "Khác", "Other"),
            ],
            settings("f_select_multiple"),
        ),
        [
            ({"barriers": ["no_phone", "other"]}, [], []),
            ({"barriers": []}, [], []),
            ({"barriers": ["no_phone", "no_phone"]}, [], [("answers.barriers", "repeated")]),
            ({"barriers": ["fax"]}, [], [("answers.barriers", "choice")]),
            ({"barriers": "other"}, [], [("answers.barriers", "type")]),
        ],
    )
    forms["choice_filter"] = (
        workbook(
            [
                q("select_one province", "province", "Tỉnh", "Province", required="yes"),
                q(
                    "select_one ward",
                    "ward",
                    "Xã/phường",
                    "Ward",
                    required="yes",
                    choice_filter="province=${province}",
                ),
            ],
            [
                choice("province", "th", "Thanh Hóa"),
                choice("province", "hn", "Hà Nội"),
                choice("ward", "hac_thanh", "Phường Hạc Thành", province="th"),
                choice("ward", "ham_rong", "Phường Hàm Rồng", province="th"),
                choice("ward", "ba_dinh", "Phường Ba Đình", province="hn"),
            ],
            settings("f_choice_filter"),
        ),
        [
            ({"province": "th", "ward": "ham_rong"}, [], []),
            ({"province": "hn", "ward": "ba_dinh"}, [], []),
            ({"province": "hn", "ward": "ham_rong"}, [], [("answers.ward", "choice_filter")]),
            ({"province": "th", "ward": "nowhere"}, [], [("answers.ward", "choice")]),
        ],
    )
    forms["group"] = (
        workbook(
            [
                q("select_one yes_no", "has_internet", "Có internet?", "Internet?", required="yes"),
                {
                    "type": "begin group",
                    "name": "internet",
                    VI: "Internet",
                    EN: "Internet",
                    "relevant": "${has_internet} = 'yes'",
                },
                q(
                    "integer",
                    "monthly_fee",
                    "Cước tháng (nghìn đồng)",
                    "Monthly fee (k VND)",
                    required="yes",
                    relevant="${has_internet} != ''",
                ),
                {"type": "end group"},
            ],
            YES_NO,
            settings("f_group"),
        ),
        [
            ({"has_internet": "yes", "monthly_fee": 200}, [], []),
            ({"has_internet": "no"}, [], []),
            ({"has_internet": "yes"}, [], [("answers.monthly_fee", "required")]),
            (
                {"has_internet": "no", "monthly_fee": 1},
                [],
                [("answers.monthly_fee", "not_relevant")],
            ),
        ],
    )
    member = {"memberId": "00000000-0000-4000-8000-00000000000{}"}
    forms["repeat"] = (
        workbook(
            [
                q("integer", "size", "Số nhân khẩu", "Household size", required="yes"),
                {"type": "begin repeat", "name": "members", VI: "Thành viên", EN: "Members"},
                q(
                    "integer",
                    "birth_year",
                    "Năm sinh",
                    "Birth year",
                    required="yes",
                    constraint=". >= 1900 and . <= 2025",
                ),
                q(
                    "select_one yes_no",
                    "level2",
                    "VNeID mức 2?",
                    "VNeID level 2?",
                    required="yes",
                    relevant="${birth_year} <= 2011",
                ),
                {"type": "end repeat"},
            ],
            YES_NO,
            settings("f_repeat"),
        ),
        [
            (
                {"size": 2},
                [
                    {
                        "memberId": member["memberId"].format(1),
                        "answers": {"birth_year": 1980, "level2": "yes"},
                    },
                    {"memberId": member["memberId"].format(2), "answers": {"birth_year": 2015}},
                ],
                [],
            ),
            (
                {"size": 1},
                [{"memberId": member["memberId"].format(1), "answers": {"birth_year": 1980}}],
                [("members[0].answers.level2", "required")],
            ),
            (
                {"size": 1},
                [
                    {
                        "memberId": member["memberId"].format(1),
                        "answers": {"birth_year": 2015, "level2": "no"},
                    }
                ],
                [("members[0].answers.level2", "not_relevant")],
            ),
        ],
    )
    forms["relevant"] = (
        workbook(
            [
                q("integer", "age", "Tuổi", "Age", required="yes"),
                q("select_multiple topic", "topics", "Chủ đề", "Topics"),
                q("select_one yes_no", "has_phone", "Có điện thoại?", "Phone?", required="yes"),
                q(
                    "text",
                    "why_not",
                    "Vì sao?",
                    "Why not?",
                    required="yes",
                    relevant="${age} >= 14 and (not(${has_phone} = 'yes')"
                    " or selected(${topics}, 'scams'))",
                ),
            ],
            [
                *YES_NO,
                choice("topic", "vneid", "VNeID"),
                choice("topic", "scams", "Lừa đảo", "Scams"),
            ],
            settings("f_relevant"),
        ),
        [
            ({"age": 30, "has_phone": "no", "why_not": "giá"}, [], []),
            ({"age": 30, "has_phone": "yes", "topics": ["scams"], "why_not": "x"}, [], []),
            ({"age": 30, "has_phone": "yes", "topics": ["vneid"]}, [], []),
            ({"age": 10, "has_phone": "no"}, [], []),
            ({"age": 30, "has_phone": "no"}, [], [("answers.why_not", "required")]),
            (
                {"age": 10, "has_phone": "no", "why_not": "x"},
                [],
                [("answers.why_not", "not_relevant")],
            ),
            (
                {"age": 30, "has_phone": "yes", "why_not": "x"},
                [],
                [("answers.why_not", "not_relevant")],
            ),
        ],
    )
    forms["calculate"] = (
        workbook(
            [
                q("integer", "adults", "Người lớn", "Adults", required="yes"),
                q("integer", "helped", "Đã hỗ trợ", "Helped", required="yes"),
                {"type": "calculate", "name": "not_yet", "calculation": "${adults} - ${helped}"},
                {
                    "type": "calculate",
                    "name": "share",
                    "calculation": "${helped} * 100 div ${adults}",
                },
            ],
            settings=settings("f_calculate"),
        ),
        [
            ({"adults": 4, "helped": 1, "not_yet": 3, "share": 25}, [], []),
            ({"adults": 3, "helped": 1, "not_yet": 2, "share": 33.333333333333336}, [], []),
            (
                {"adults": 4, "helped": 1, "not_yet": 2, "share": 25},
                [],
                [("answers.not_yet", "calculation")],
            ),
            ({"adults": 4, "helped": 1, "share": 25}, [], [("answers.not_yet", "required")]),
            # Dividing by zero leaves the calculation empty.
            ({"adults": 0, "helped": 0, "not_yet": 0}, [], []),
            (
                {"adults": 0, "helped": 0, "not_yet": 0, "share": 0},
                [],
                [("answers.share", "not_relevant")],
            ),
        ],
    )
    forms["labels"] = (
        workbook(
            [
                {
                    "type": "text",
                    "name": "remark",
                    VI: "Ghi chú",
                    EN: "Remark",
                    HINT_VI: "Không ghi số điện thoại",
                    HINT_EN: "No phone numbers",
                },
            ],
            settings=settings("f_labels"),
        ),
        [({"remark": "ok"}, [], []), ({}, [], [])],
    )
    return forms


def unsupported_form() -> bytes:
    """A form using everything the import does not support, each on its own row."""
    return workbook(
        [
            q("text", "ok_first", "Câu hỏi được hỗ trợ", "A supported question"),  # row 2
            q("geopoint", "location", "Vị trí", "Location"),  # row 3
            q("image", "photo", "Ảnh", "Photo"),  # row 4
            {"type": "start", "name": "started"},  # row 5
            q("dateTime", "visited_at", "Giờ thăm", "Visit time"),  # row 6
            q("range", "rating", "Đánh giá", "Rating"),  # row 7
            q("integer", "count", "Số", "Count", appearance="numbers"),  # row 8
            q("text", "phone", "Điện thoại", "Phone", constraint="count-selected(.) > 1"),  # row 9
            q("text", "later", "Sau", "Later", relevant="${ok_first} = ${count}"),  # row 10
            q("integer", "Bad-Name", "Tên sai", "Bad name"),  # row 11
            {"type": "calculate", "name": "today_calc", "calculation": "today()"},  # row 12
            q("text", "msg", "Tin", "Message", constraint_message="Sai"),  # row 13
            {
                "type": "begin repeat",
                "name": "people",
                VI: "Người",
                EN: "People",
                "repeat_count": "3",
            },  # row 14
            q("text", "person", "Người", "Person"),  # row 15
            {"type": "begin repeat", "name": "phones", VI: "Máy", EN: "Phones"},  # row 16
            q("text", "model", "Máy", "Model"),  # row 17
            {"type": "end repeat"},  # row 18
            {"type": "end repeat"},  # row 19
            {"type": "text", "name": "fr", "label::French (fr)": "Remarque", VI: "Ghi chú"},  # 20
            q("text", "slow", "Chậm", "Slow", constraint="regex(., '^(a+)+$')"),  # row 21
        ],
        [
            {"list_name": "unused", "name": "A", VI: "A", "image": "a.png"},
        ],
        {**settings("f_unsupported"), "instance_name": "concat(${ok_first})"},
    )


# The campaign form's cases: (answers, members, expected errors), as in feature_forms().
CAMPAIGN_CASES: list[Case] = [
    (
        {
            "adults": 3,
            "already_level2": 1,
            "helped": "yes",
            "activated": 2,
            "help_date": "2025-07-01",
            "remaining": 2,
        },
        [],
        [],
    ),
    (
        {
            "adults": 2,
            "already_level2": 0,
            "helped": "no",
            "barriers": ["no_chip_card", "away"],
            "remaining": 2,
        },
        [],
        [],
    ),
    ({"adults": 0, "already_level2": 0, "remaining": 0}, [], []),
    (
        {"adults": 2, "already_level2": 0, "helped": "yes", "remaining": 2},
        [],
        [("answers.activated", "required")],
    ),
    (
        {
            "adults": 2,
            "already_level2": 0,
            "helped": "yes",
            "activated": 1,
            "barriers": ["away"],
            "remaining": 2,
        },
        [],
        [("answers.barriers", "not_relevant")],
    ),
    (
        {"adults": 31, "already_level2": 0, "helped": "no", "remaining": 31},
        [],
        [("answers.adults", "maximum")],
    ),
]


def campaign_form() -> bytes:
    """A province's monthly campaign: did the household get help activating VNeID level 2?"""
    return workbook(
        [
            q(
                "note",
                "intro",
                "Chiến dịch hỗ trợ kích hoạt VNeID mức 2 tháng này. Không ghi "
                "số CCCD hay số điện thoại.",
                "This month's VNeID level 2 campaign. Do not write ID or phone numbers.",
            ),
            q(
                "integer",
                "adults",
                "Số người từ 14 tuổi trong hộ",
                "People aged 14 or more",
                required="yes",
                constraint=". >= 0 and . <= 30",
            ),
            q(
                "integer",
                "already_level2",
                "Số người đã có VNeID mức 2",
                "Already at level 2",
                required="yes",
                constraint=". >= 0 and . <= 30",
            ),
            q(
                "select_one yes_no",
                "helped",
                "Tháng này hộ có được tổ hỗ trợ kích hoạt không?",
                "Did the team help the household activate this month?",
                required="yes",
                relevant="${adults} >= 1",
            ),
            {
                "type": "begin group",
                "name": "help",
                VI: "Hỗ trợ",
                EN: "Help",
                "relevant": "${helped} = 'yes'",
            },
            q(
                "integer",
                "activated",
                "Số người kích hoạt thành công",
                "People activated",
                required="yes",
                constraint=". >= 0 and . <= 30",
            ),
            q("date", "help_date", "Ngày hỗ trợ", "Date of help", constraint=". >= '2025-01-01'"),
            {"type": "end group"},
            q(
                "select_multiple barrier",
                "barriers",
                "Vì sao chưa kích hoạt?",
                "Why not activated yet?",
                relevant="${helped} = 'no'",
            ),
            {
                "type": "calculate",
                "name": "remaining",
                "calculation": "${adults} - ${already_level2}",
            },
            q("text", "remark", "Ghi chú", "Remark", constraint="string-length(.) <= 200"),
        ],
        [
            *YES_NO,
            choice("barrier", "no_smartphone", "Không có điện thoại thông minh", "No smartphone"),
            choice("barrier", "no_chip_card", "Chưa có CCCD gắn chip", "No chip ID card"),
            choice("barrier", "away", "Đi làm xa", "Working away"),
            choice("barrier", "refused", "Không muốn", "Did not want to"),
        ],
        {**settings("vneid_level2_campaign", "2025.07"), "form_title": "Hỗ trợ VNeID mức 2"},
    )


def long_form(questions: int = 200) -> bytes:
    """A long form: ``questions`` questions of every supported kind, with conditions,
    constraints and choices, in groups of ten."""
    rows: Rows = []
    choices: Rows = [choice("level", f"l{i}", f"Mức {i}", f"Level {i}") for i in range(6)]
    for index in range(questions):
        if index % 10 == 0:
            rows.append(
                {
                    "type": "begin group",
                    "name": f"g{index}",
                    VI: f"Phần {index}",
                    EN: f"Part {index}",
                }
            )
        kind = ("integer", "decimal", "text", "select_one level", "select_multiple level", "date")[
            index % 6
        ]
        row = q(
            kind,
            f"q{index}",
            f"Câu hỏi {index}",
            f"Question {index}",
            required="yes" if index % 3 == 0 else "no",
        )
        if kind == "integer":
            row["constraint"] = ". >= 0 and . <= 100"
        if kind == "text":
            row["constraint"] = "string-length(.) <= 50"
        if index % 10 == 5:
            row["relevant"] = f"${{q{index - 5}}} >= 1"
        rows.append(row)
        if index % 10 == 9:
            rows.append({"type": "end group"})
    return workbook(rows, choices, settings("long_form"))


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "xlsforms")
    out.mkdir(parents=True, exist_ok=True)
    written = {f"feature_{name}": data for name, (data, _) in feature_forms().items()}
    written |= {
        "unsupported": unsupported_form(),
        "campaign": campaign_form(),
        "long_200": long_form(),
    }
    for name, data in written.items():
        (out / f"{name}.xlsx").write_bytes(data)
        print(f"{out / name}.xlsx  {len(data):,} bytes")
    print(f"{len(written)} XLSForms written to {out}")
