"""XLSForm import: one real workbook per supported feature (imported, published, then
submissions checked against it), every unsupported feature reported per row, a typical
campaign form end to end, and a 200-question form's import time."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.answers import evaluate
from schemas.surveys import Formula
from tests.conftest import HAC_THANH, THANH_HOA, Accounts
from tests.xlsforms import (
    CAMPAIGN_CASES,
    campaign_form,
    feature_forms,
    long_form,
    unsupported_form,
)

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FEATURES = feature_forms()


@pytest.fixture
async def people(accounts: Accounts) -> dict[str, dict[str, str]]:
    team_id = await accounts.team(HAC_THANH)
    return {
        "province": await accounts.headers(await accounts.create("province_official", THANH_HOA)),
        "team": await accounts.headers(
            await accounts.create("team_member", HAC_THANH, team_id=team_id)
        ),
    }


async def upload(
    client: Client, headers: dict[str, str], data: bytes, *, partial: bool = False
) -> Any:
    return await client.post(
        "/api/v1/surveys/import" + ("?partial=true" if partial else ""),
        files={"file": ("form.xlsx", data, XLSX)},
        headers={**headers, "Accept-Language": "en"},
    )


async def publish_and_push(
    client: Client, people: dict[str, dict[str, str]], survey_id: str, cases: list[Any]
) -> list[dict[str, Any]]:
    published = await client.post(
        f"/api/v1/surveys/{survey_id}/publish", headers=people["province"]
    )
    assert published.status_code == 201, published.text
    team = people["team"]
    items = []
    for answers, members, _ in cases:
        created = await client.post(
            "/api/v1/households", json={"wardCode": HAC_THANH}, headers=team
        )
        items.append(
            {
                "id": str(uuid.uuid4()),
                "surveyId": survey_id,
                "surveyVersion": 1,
                "householdId": created.json()["id"],
                "collectedAt": "2025-07-01T09:00:00+07:00",
                "consent": {"given": True, "noticeVersion": "1"},
                "answers": answers,
                "members": members,
            }
        )
    response = await client.post(
        "/api/v1/sync/push",
        json={"submissions": items},
        headers={**team, "Accept-Language": "en"},
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


@pytest.mark.parametrize("feature", sorted(FEATURES))
async def test_each_supported_feature_imports_and_validates(
    client: Client, people: dict[str, dict[str, str]], feature: str
) -> None:
    data, cases = FEATURES[feature]
    response = await upload(client, people["province"], data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["formId"] == f"f_{feature}"
    assert body["formVersion"] == "2025.1"
    assert body["leftOut"] == []
    assert body["survey"]["provinceCode"] == THANH_HOA
    assert body["survey"]["hasDraft"] is True
    results = await publish_and_push(client, people, body["survey"]["id"], cases)
    for (answers, _, expected), result in zip(cases, results, strict=True):
        found = [(e["field"], e["code"]) for e in result.get("errors") or []]
        assert found == expected, (answers, result)
        assert result["status"] == ("rejected" if expected else "accepted"), (answers, result)


async def test_labels_hints_and_settings_come_through(
    client: Client, people: dict[str, dict[str, str]]
) -> None:
    response = await upload(client, people["province"], FEATURES["labels"][0])
    survey_id = response.json()["survey"]["id"]
    await client.post(f"/api/v1/surveys/{survey_id}/publish", headers=people["province"])
    version = await client.get(f"/api/v1/surveys/{survey_id}/versions/1", headers=people["team"])
    (question,) = version.json()["definition"]["questions"]
    assert question["label"] == {"vi": "Ghi chú", "en": "Remark"}
    assert question["hint"] == {"vi": "Không ghi số điện thoại", "en": "No phone numbers"}
    assert question["required"] is False  # XLSForm's default, not the definition's
    filtered = await upload(client, people["province"], FEATURES["choice_filter"][0])
    draft = filtered.json()["survey"]["id"]
    await client.post(f"/api/v1/surveys/{draft}/publish", headers=people["province"])
    version = await client.get(f"/api/v1/surveys/{draft}/versions/1", headers=people["team"])
    ward = version.json()["definition"]["questions"][1]
    assert ward["choiceFilter"] == {"column": "province", "key": "province"}
    assert ward["choices"][0] == {
        "value": "hac_thanh",
        "label": {"vi": "Phường Hạc Thành", "en": "Phường Hạc Thành"},
        "filters": {"province": "th"},
    }


EXPECTED_UNSUPPORTED = [
    ("survey[3].type", "geopoint"),
    ("survey[4].type", "photo"),
    ("survey[5].type", "start"),
    ("survey[6].type", "dateTime"),
    ("survey[7].type", "range"),
    ("survey[8].appearance", "appearance"),
    ("survey[9].constraint", "constraint"),
    ("survey[10].relevant", "condition"),
    ("survey[11].name", "Bad-Name"),
    ("survey[12].calculation", "today()"),
    ("survey[13].constraint_message", "constraint_message"),
    ("survey[14].repeat_count", "repeat_count"),
    ("survey[16].type", "repeat inside a repeat"),
    ("survey[20].label::French (fr)", "French (fr)"),
    ("survey[21].constraint", "(a+)+"),
    ("choices[2].image", "image"),
    ("settings[2].instance_name", "instance_name"),
]


async def test_every_unsupported_row_is_reported_and_nothing_is_created(
    client: Client, people: dict[str, dict[str, str]], db: asyncpg.Connection
) -> None:
    before = await db.fetchval("SELECT count(*) FROM survey")
    response = await upload(client, people["province"], unsupported_form())
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "unsupported_rows"
    errors = body["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [
        (field, "unsupported") for field, _ in EXPECTED_UNSUPPORTED
    ]
    for error, (field, mentioned) in zip(errors, EXPECTED_UNSUPPORTED, strict=True):
        sheet, _, rest = field.partition("[")
        row = rest.split("]")[0]
        # Each message names the sheet, the row, the column, what and what instead.
        assert error["message"].startswith(f"Sheet {sheet}, row {row}, column "), error
        assert mentioned in error["message"], error
        assert ";" in error["message"]
    assert "no location is collected" in errors[0]["message"]
    assert await db.fetchval("SELECT count(*) FROM survey") == before
    # In Vietnamese too.
    vi = await client.post(
        "/api/v1/surveys/import",
        files={"file": ("form.xlsx", unsupported_form(), XLSX)},
        headers={**people["province"], "Accept-Language": "vi"},
    )
    assert vi.json()["errors"][0]["message"].startswith("Trang survey, dòng 3, cột type")


async def test_partial_import_leaves_the_unsupported_rows_out(
    client: Client, people: dict[str, dict[str, str]], db: asyncpg.Connection
) -> None:
    response = await upload(client, people["province"], unsupported_form(), partial=True)
    assert response.status_code == 201, response.text
    body = response.json()
    assert [(r["sheet"], r["row"], r["column"]) for r in body["leftOut"]] == [
        (field.split("[")[0], int(field.split("[")[1].split("]")[0]), field.split("].")[1])
        for field, _ in EXPECTED_UNSUPPORTED
    ]
    draft = await db.fetchval(
        "SELECT draft FROM survey WHERE id = $1", uuid.UUID(body["survey"]["id"])
    )
    # The questions whose type, name or expression is unsupported are left out; those with
    # only an unsupported column keep the supported part; the roster keeps its first level.
    assert [q["key"] for q in draft["questions"]] == ["ok_first", "count", "msg", "fr"]
    assert [q["key"] for q in draft["roster"]["questions"]] == ["person"]
    audit = await db.fetchrow(
        "SELECT action, detail FROM audit_log WHERE subject_id = $1::text",
        body["survey"]["id"],
    )
    assert audit["action"] == "survey_imported"
    assert audit["detail"]["leftOut"] == len(EXPECTED_UNSUPPORTED)


async def test_a_typical_campaign_form_end_to_end(
    client: Client, people: dict[str, dict[str, str]]
) -> None:
    response = await upload(client, people["province"], campaign_form())
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["survey"]["code"] == "vneid_level2_campaign"
    assert body["survey"]["title"]["vi"] == "Hỗ trợ VNeID mức 2"
    assert body["formVersion"] == "2025.07"
    cases = CAMPAIGN_CASES
    results = await publish_and_push(client, people, body["survey"]["id"], cases)
    for (answers, _, expected), result in zip(cases, results, strict=True):
        assert [(e["field"], e["code"]) for e in result.get("errors") or []] == expected, (
            answers,
            result,
        )


async def test_a_200_question_form_imports_in_under_two_seconds(
    client: Client, people: dict[str, dict[str, str]]
) -> None:
    data = long_form(200)
    started = time.perf_counter()
    response = await upload(client, people["province"], data)
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert elapsed < 2.0, f"import took {elapsed:.2f} s"


async def test_bad_files_and_roles(
    client: Client, people: dict[str, dict[str, str]], accounts: Accounts
) -> None:
    broken = await upload(client, people["province"], b"not a workbook")
    assert broken.status_code == 400
    assert broken.json()["errors"][0]["code"] == "invalid_xlsform"
    denied = await upload(client, people["team"], campaign_form())
    assert denied.status_code == 403
    first = await upload(client, people["province"], campaign_form())
    assert first.status_code == 201
    again = await upload(client, people["province"], campaign_form())
    assert again.status_code == 409  # the form_id is the survey's code


def test_formulas_evaluate_like_xpath() -> None:
    def f(op: str, *args: float | str) -> Formula:
        return Formula(
            op=op,  # type: ignore[arg-type]
            args=[Formula(key=a) if isinstance(a, str) else Formula(value=a) for a in args],
        )

    assert evaluate(f("add", "a", 2), {"a": 3}) == 5
    assert evaluate(f("sub", "a", "b", 1), {"a": 10, "b": 4}) == 5
    assert evaluate(f("div", "a", 0), {"a": 3}) is None
    assert evaluate(f("mod", "a", 3), {"a": -7}) == -1  # the sign of the dividend
    assert evaluate(f("neg", "a"), {"a": 2}) == -2
    assert evaluate(f("mul", "a", 2), {}) is None  # an empty answer empties the result
    assert evaluate(f("mul", "a", 2), {"a": True}) is None  # booleans are not numbers
    assert evaluate(f("mul", "a", 2), {"a": "3"}) is None
