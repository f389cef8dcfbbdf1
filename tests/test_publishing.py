"""Safe publishing (each rule), closing a survey, province scope and campaign chains."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import BA_DINH, HAC_THANH, HOUSEHOLD_DIGITAL, THANH_HOA, Accounts, submission

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


def label(text: str) -> dict[str, str]:
    return {"vi": text, "en": text}


def campaign_definition() -> dict[str, Any]:
    return {
        "title": label("VNeID campaign"),
        "noticeVersion": "c1",
        "questions": [
            {
                "kind": "single_choice",
                "key": "helped",
                "label": label("Helped with VNeID level 2?"),
                "choices": [
                    {"value": "yes", "label": label("Yes")},
                    {"value": "no", "label": label("No")},
                    {"value": "later", "label": label("Later")},
                ],
            },
            {"kind": "integer", "key": "people", "label": label("People helped"), "min": 0},
        ],
    }


def campaign_item(
    survey_id: str, household: str, version: int = 1, **answers: Any
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "surveyId": survey_id,
        "surveyVersion": version,
        "householdId": household,
        "collectedAt": "2025-07-01T09:00:00+07:00",
        "consent": {"given": True, "noticeVersion": "c1"},
        "answers": answers or {"helped": "yes", "people": 2},
        "members": [],
    }


@pytest.fixture
async def people(accounts: Accounts) -> dict[str, dict[str, str]]:
    team_id = await accounts.team(HAC_THANH)
    return {
        "admin": await accounts.headers(await accounts.create("admin")),
        "province": await accounts.headers(await accounts.create("province_official", THANH_HOA)),
        "other_province": await accounts.headers(await accounts.create("province_official", "01")),
        "team": await accounts.headers(
            await accounts.create("team_member", HAC_THANH, team_id=team_id)
        ),
        "ward": await accounts.headers(await accounts.create("ward_official", HAC_THANH)),
        "hanoi_ward": await accounts.headers(await accounts.create("ward_official", BA_DINH)),
    }


async def create(client: Client, headers: dict[str, str], definition: dict[str, Any]) -> str:
    response = await client.post(
        "/api/v1/surveys",
        json={"code": f"c_{uuid.uuid4().hex[:8]}", "definition": definition},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    survey_id: str = response.json()["id"]
    return survey_id


async def draft_and_publish(
    client: Client, headers: dict[str, str], survey_id: str, definition: dict[str, Any]
) -> Any:
    saved = await client.put(f"/api/v1/surveys/{survey_id}/draft", json=definition, headers=headers)
    assert saved.status_code == 200, saved.text
    return await client.post(
        f"/api/v1/surveys/{survey_id}/publish", headers={**headers, "Accept-Language": "en"}
    )


async def household(client: Client, headers: dict[str, str]) -> str:
    response = await client.post(
        "/api/v1/households", json={"wardCode": HAC_THANH}, headers=headers
    )
    assert response.status_code == 201, response.text
    household_id: str = response.json()["id"]
    return household_id


async def push(client: Client, headers: dict[str, str], items: list[dict[str, Any]]) -> list[Any]:
    response = await client.post(
        "/api/v1/sync/push",
        json={"submissions": items},
        headers={**headers, "Accept-Language": "en"},
    )
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    return results


def problems(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "incompatible_draft"
    return [(e["field"], e["code"]) for e in body["errors"]]


async def test_a_key_changing_kind_is_refused(client: Client, people: dict[str, Any]) -> None:
    admin = people["admin"]
    definition = campaign_definition()
    survey_id = await create(client, admin, definition)
    assert (await draft_and_publish(client, admin, survey_id, definition)).status_code == 201
    changed = copy.deepcopy(definition)
    changed["questions"][1] = {"kind": "text", "key": "people", "label": label("Who")}
    response = await draft_and_publish(client, admin, survey_id, changed)
    assert problems(response) == [("questions.people", "kind_changed")]
    message = response.json()["errors"][0]["message"]
    assert "people" in message
    assert "integer" in message
    assert "text" in message
    # Moving a key into the roster is a change of level.
    moved = copy.deepcopy(definition)
    people_question = moved["questions"].pop(1)
    moved["roster"] = {"label": label("Members"), "questions": [people_question]}
    response = await draft_and_publish(client, admin, survey_id, moved)
    assert problems(response) == [("roster.questions.people", "level_changed")]


async def test_labels_hints_and_new_optional_questions_change_freely(
    client: Client, people: dict[str, Any]
) -> None:
    admin = people["admin"]
    definition = campaign_definition()
    survey_id = await create(client, admin, definition)
    await draft_and_publish(client, admin, survey_id, definition)
    changed = copy.deepcopy(definition)
    changed["title"] = label("Renamed")
    changed["questions"][0]["label"] = label("Was the household helped?")
    changed["questions"][0]["hint"] = label("Ask the head of household")
    changed["questions"][0]["choices"][0]["label"] = label("Yes, done")
    changed["questions"].append(
        {"kind": "text", "key": "remark", "label": label("Remark"), "required": False}
    )
    response = await draft_and_publish(client, admin, survey_id, changed)
    assert response.status_code == 201, response.text
    assert response.json()["version"] == 2


async def test_a_new_required_question_needs_a_default(
    client: Client, people: dict[str, Any]
) -> None:
    admin = people["admin"]
    definition = campaign_definition()
    survey_id = await create(client, admin, definition)
    await draft_and_publish(client, admin, survey_id, definition)
    changed = copy.deepcopy(definition)
    changed["questions"].append({"kind": "integer", "key": "visits", "label": label("Visits")})
    assert problems(await draft_and_publish(client, admin, survey_id, changed)) == [
        ("questions.visits", "required_without_default")
    ]
    # An optional question made required is the same case.
    optional_first = copy.deepcopy(definition)
    optional_first["questions"].append(
        {"kind": "integer", "key": "visits", "label": label("Visits"), "required": False}
    )
    assert (await draft_and_publish(client, admin, survey_id, optional_first)).status_code == 201
    required_now = copy.deepcopy(optional_first)
    required_now["questions"][-1]["required"] = True
    assert problems(await draft_and_publish(client, admin, survey_id, required_now)) == [
        ("questions.visits", "required_without_default")
    ]
    # A default that is not a valid answer is refused with the draft.
    required_now["questions"][-1]["default"] = "many"
    bad = await client.put(f"/api/v1/surveys/{survey_id}/draft", json=required_now, headers=admin)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "questions[2].default"
    required_now["questions"][-1]["default"] = 0
    assert (await draft_and_publish(client, admin, survey_id, required_now)).status_code == 201


async def test_a_choice_stored_answers_use_cannot_disappear(
    client: Client, people: dict[str, Any]
) -> None:
    admin, team = people["admin"], people["team"]
    definition = campaign_definition()
    survey_id = await create(client, admin, definition)
    await draft_and_publish(client, admin, survey_id, definition)
    home = await household(client, team)
    (result,) = await push(client, team, [campaign_item(survey_id, home, helped="no", people=0)])
    assert result["status"] == "accepted", result
    without_no = copy.deepcopy(definition)
    without_no["questions"][0]["choices"] = [
        c for c in without_no["questions"][0]["choices"] if c["value"] != "no"
    ]
    response = await draft_and_publish(client, admin, survey_id, without_no)
    assert problems(response) == [("questions.helped", "choice_in_use")]
    assert "no" in response.json()["errors"][0]["message"]
    # A choice nobody answered can go.
    without_later = copy.deepcopy(definition)
    without_later["questions"][0]["choices"] = [
        c for c in without_later["questions"][0]["choices"] if c["value"] != "later"
    ]
    assert (await draft_and_publish(client, admin, survey_id, without_later)).status_code == 201


async def test_keys_the_indicators_read_must_stay(
    client: Client, people: dict[str, Any], db: asyncpg.Connection
) -> None:
    admin = people["admin"]
    v1 = await client.get(f"/api/v1/surveys/{HOUSEHOLD_DIGITAL}/versions/1", headers=admin)
    definition = v1.json()["definition"]
    changed = copy.deepcopy(definition)
    # hh_broadband disappears; vneid loses level2 (which ADULT_EID counts); a free label edit.
    changed["questions"] = [q for q in changed["questions"] if q["key"] != "hh_broadband"]
    for question in changed["roster"]["questions"]:
        if question["key"] == "vneid":
            question["choices"] = [c for c in question["choices"] if c["value"] != "level2"]
        if question["key"] == "epay":
            question["label"] = label("E-payment")
    found = problems(await draft_and_publish(client, admin, HOUSEHOLD_DIGITAL, changed))
    assert sorted(found) == [
        ("questions.hh_broadband", "indicator_key_removed"),
        ("roster.questions.vneid", "indicator_key_changed"),
    ]
    # Only the label change: publishes as version 2.
    relabelled = copy.deepcopy(definition)
    relabelled["roster"]["questions"][0]["label"] = label("Year of birth")
    response = await draft_and_publish(client, admin, HOUSEHOLD_DIGITAL, relabelled)
    assert response.status_code == 201, response.text
    audited = await db.fetch(
        "SELECT action FROM audit_log WHERE subject_id = $1::text ORDER BY id",
        HOUSEHOLD_DIGITAL,
    )
    assert [row["action"] for row in audited][-1] == "survey_published"


async def test_close_stops_new_submissions_and_keeps_the_data(
    client: Client, people: dict[str, Any], db: asyncpg.Connection
) -> None:
    province, team = people["province"], people["team"]
    definition = campaign_definition()
    survey_id = await create(client, province, definition)
    await draft_and_publish(client, province, survey_id, definition)
    home = await household(client, team)
    first = campaign_item(survey_id, home)
    assert (await push(client, team, [first]))[0]["status"] == "accepted"

    closed = await client.post(f"/api/v1/surveys/{survey_id}/close", headers=province)
    assert closed.status_code == 200, closed.text
    assert closed.json()["closed"] is True
    again = campaign_item(survey_id, home, helped="later", people=0)
    again["supersedes"] = first["id"]
    (result,) = await push(client, team, [again])
    assert result["status"] == "rejected"
    assert [(e["field"], e["code"]) for e in result["errors"]] == [("surveyId", "survey_closed")]
    single = await client.post(
        "/api/v1/submissions", json=again, headers={**team, "Accept-Language": "en"}
    )
    assert single.status_code == 409
    assert single.json()["code"] == "survey_closed"
    # The data stays readable, and a retry of an item stored before is still a duplicate.
    stored = await client.get(f"/api/v1/submissions/{first['id']}", headers=team)
    assert stored.status_code == 200
    assert stored.json()["answers"] == {"helped": "yes", "people": 2}
    # Publishing a closed survey is refused; closing twice changes nothing.
    republish = await draft_and_publish(client, province, survey_id, definition)
    assert republish.status_code == 409
    assert republish.json()["code"] == "survey_closed"
    assert (
        await client.post(f"/api/v1/surveys/{survey_id}/close", headers=province)
    ).status_code == 200
    actions = await db.fetch(
        "SELECT action FROM audit_log WHERE subject_id = $1::text ORDER BY id", survey_id
    )
    assert [row["action"] for row in actions] == [
        "survey_created",
        "survey_draft_saved",
        "survey_published",
        "survey_closed",
        "survey_draft_saved",
    ]
    # The built-in household survey cannot be closed.
    builtin = await client.post(
        f"/api/v1/surveys/{HOUSEHOLD_DIGITAL}/close", headers=people["admin"]
    )
    assert builtin.status_code == 409


async def test_province_surveys_are_seen_by_their_wards_only(
    client: Client, people: dict[str, Any]
) -> None:
    province = people["province"]
    definition = campaign_definition()
    survey_id = await create(client, province, definition)
    listed = await client.get("/api/v1/surveys", headers=province)
    mine = next(s for s in listed.json() if s["id"] == survey_id)
    assert mine["provinceCode"] == THANH_HOA
    assert mine["hasDraft"] is True
    await draft_and_publish(client, province, survey_id, definition)

    for who in ("team", "ward"):
        codes = {s["id"] for s in (await client.get("/api/v1/surveys", headers=people[who])).json()}
        assert {survey_id, HOUSEHOLD_DIGITAL} <= codes
        pulled = (await client.get("/api/v1/sync/pull", headers=people[who])).json()
        assert {v["surveyId"] for v in pulled["surveyVersions"]} == {HOUSEHOLD_DIGITAL, survey_id}
    hanoi = people["hanoi_ward"]
    assert survey_id not in {
        s["id"] for s in (await client.get("/api/v1/surveys", headers=hanoi)).json()
    }
    pulled = (await client.get("/api/v1/sync/pull", headers=hanoi)).json()
    assert {v["surveyId"] for v in pulled["surveyVersions"]} == {HOUSEHOLD_DIGITAL}
    version = await client.get(f"/api/v1/surveys/{survey_id}/versions/1", headers=hanoi)
    assert version.status_code == 404
    # Another province's official cannot even see it; a province official cannot change a
    # national survey.
    other = people["other_province"]
    assert (
        await client.post(f"/api/v1/surveys/{survey_id}/close", headers=other)
    ).status_code == 404
    assert (
        await client.put(f"/api/v1/surveys/{survey_id}/draft", json=definition, headers=other)
    ).status_code == 404
    national = await client.post(f"/api/v1/surveys/{HOUSEHOLD_DIGITAL}/publish", headers=province)
    assert national.status_code == 403
    # The admin's survey is national.
    national_id = await create(client, people["admin"], campaign_definition())
    listed = await client.get("/api/v1/surveys", headers=people["admin"])
    assert next(s for s in listed.json() if s["id"] == national_id)["provinceCode"] is None


async def test_a_campaign_keeps_its_own_chain_and_leaves_the_household_state(
    client: Client, people: dict[str, Any], db: asyncpg.Connection
) -> None:
    province, team = people["province"], people["team"]
    definition = campaign_definition()
    survey_id = await create(client, province, definition)
    await draft_and_publish(client, province, survey_id, definition)
    home = await household(client, team)
    state = submission(home)
    assert (await push(client, team, [state]))[0]["status"] == "accepted"
    first = campaign_item(survey_id, home)
    (result,) = await push(client, team, [first])
    assert result["status"] == "accepted", result
    assert result["currentSubmissionId"] == first["id"]
    head = await db.fetchval(
        "SELECT current_submission_id FROM household WHERE id = $1", uuid.UUID(home)
    )
    assert str(head) == state["id"]  # the statistics still read the household survey
    # A second campaign visit must supersede the campaign's head, not the household's.
    wrong = campaign_item(survey_id, home)
    wrong["supersedes"] = state["id"]
    right = campaign_item(survey_id, home, helped="no", people=0)
    right["supersedes"] = first["id"]
    wrong_result, right_result = await push(client, team, [wrong, right])
    assert (wrong_result["status"], wrong_result["errors"][0]["code"]) == (
        "conflict",
        "stale_supersedes",
    )
    assert right_result["status"] == "accepted"
    heads = await db.fetchval(
        "SELECT count(*) FROM survey_head WHERE survey_id = $1", uuid.UUID(survey_id)
    )
    assert heads == 1
    # Another province's wards cannot submit to it.
    hanoi = people["hanoi_ward"]
    created = await client.post("/api/v1/households", json={"wardCode": BA_DINH}, headers=hanoi)
    (outside,) = await push(client, hanoi, [campaign_item(survey_id, created.json()["id"])])
    assert outside["status"] == "rejected"
    assert outside["errors"][0]["code"] == "unknown_survey_version"
