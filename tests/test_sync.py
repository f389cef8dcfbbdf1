"""Offline sync: idempotent pushes, conflicts, consent, validation, pulls, scope."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.stats.folder import FOLDER
from tests.conftest import (
    HAC_THANH,
    HAM_RONG,
    HOUSEHOLD_DIGITAL,
    ROOT,
    Accounts,
    member,
    submission,
)

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


@pytest.fixture
async def team(accounts: Accounts) -> dict[str, str]:
    """Headers of a team member of Phường Hạc Thành."""
    team_id = await accounts.team(HAC_THANH)
    account = await accounts.create("team_member", HAC_THANH, team_id=team_id)
    return await accounts.headers(account)


async def new_household(client: Client, headers: dict[str, str], **extra: Any) -> str:
    response = await client.post(
        "/api/v1/households", json={"wardCode": HAC_THANH, **extra}, headers=headers
    )
    assert response.status_code == 201, response.text
    household_id: str = response.json()["id"]
    return household_id


async def push(
    client: Client, headers: dict[str, str], items: list[dict[str, Any]], language: str = "vi"
) -> list[dict[str, Any]]:
    response = await client.post(
        "/api/v1/sync/push",
        json={"submissions": items},
        headers={**headers, "Accept-Language": language},
    )
    assert response.status_code == 200, response.text
    results: list[dict[str, Any]] = response.json()["results"]
    return results


async def snapshot(db: asyncpg.Connection) -> list[Any]:
    return [
        await db.fetch("SELECT * FROM submission ORDER BY id"),
        await db.fetch("SELECT id, current_submission_id, change_xid::text FROM household"),
    ]


async def test_same_batch_twice_is_accepted_then_duplicate(
    client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    households = [await new_household(client, team) for _ in range(3)]
    batch = [submission(h) for h in households]
    first = await push(client, team, batch)
    assert [r["status"] for r in first] == ["accepted"] * 3
    before = await snapshot(db)
    second = await push(client, team, batch)
    assert [r["status"] for r in second] == ["duplicate"] * 3
    assert [r["id"] for r in second] == [item["id"] for item in batch]
    assert await snapshot(db) == before  # nothing changed, not even sync markers
    # Key order and time-zone spelling do not make a retry look different.
    reordered = dict(reversed(list(batch[0].items())))
    reordered["collectedAt"] = "2025-07-01T02:30:00Z"
    assert (await push(client, team, [reordered]))[0]["status"] == "duplicate"


async def test_same_id_with_other_content_is_a_conflict(
    client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    household = await new_household(client, team)
    item = submission(household)
    await push(client, team, [item])
    changed = {**item, "answers": {**item["answers"], "hh_smart_devices": 5}}  # type: ignore[dict-item]
    (result,) = await push(client, team, [changed], "en")
    assert result["status"] == "conflict"
    assert result["errors"][0]["code"] == "content_differs"
    stored = await db.fetchval(
        "SELECT answers FROM submission WHERE id = $1", uuid.UUID(str(item["id"]))
    )
    assert stored["hh_smart_devices"] == 3


async def test_edits_must_supersede_the_current_head(
    client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    household = await new_household(client, team)
    first = submission(household)
    second = submission(household, supersedes=first["id"], hh_broadband="none")
    results = await push(client, team, [first, second])  # a chain inside one batch
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    assert results[1]["currentSubmissionId"] == second["id"]

    stale = submission(household, supersedes=first["id"])  # first is no longer the head
    without = submission(household)  # a "first visit" for a household that has one
    (r_stale,) = await push(client, team, [stale])
    (r_without,) = await push(client, team, [without])
    assert (r_stale["status"], r_stale["errors"][0]["code"]) == ("conflict", "stale_supersedes")
    assert (r_without["status"], r_without["errors"][0]["code"]) == ("conflict", "not_head")
    assert r_stale["currentSubmissionId"] == second["id"]  # what the client should supersede
    head = await db.fetchval(
        "SELECT current_submission_id FROM household WHERE id = $1", uuid.UUID(household)
    )
    assert str(head) == second["id"]


async def test_no_consent_stores_nothing(
    client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    household = await new_household(client, team)
    (result,) = await push(client, team, [submission(household, consent=False)], "en")
    assert result["status"] == "rejected"
    assert result["errors"] == [
        {
            "field": "consent.given",
            "code": "consent_required",
            "message": "Consent is required: nothing about this household was stored.",
        }
    ]
    assert await db.fetchval("SELECT count(*) FROM submission") == 0
    assert (
        await db.fetchval(
            "SELECT current_submission_id FROM household WHERE id = $1", uuid.UUID(household)
        )
        is None
    )


async def test_a_mixed_batch_stores_exactly_its_valid_items(
    client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    households = [await new_household(client, team) for _ in range(4)]
    good = [submission(households[0]), submission(households[1])]
    batch = [
        good[0],
        submission(households[2], hh_size=99),  # out of range
        {"id": "not-a-uuid", "answers": {}},  # not even a submission
        good[1],
        submission(households[3], consent=False),
        submission(str(uuid.uuid4())),  # unknown household
    ]
    results = await push(client, team, batch)
    assert [r["status"] for r in results] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
    ]
    assert results[2]["id"] is None
    assert results[5]["errors"][0]["code"] == "household_not_found"
    stored = {str(r["id"]) for r in await db.fetch("SELECT id FROM submission")}
    assert stored == {good[0]["id"], good[1]["id"]}


SURVEY = json.loads((ROOT / "migrations/data/household_digital_v1.json").read_text("utf-8"))


def _not_allowed(key: str) -> str:
    """The English choice error: it lists the question's choices, label and value."""
    questions = SURVEY["questions"] + SURVEY["roster"]["questions"]
    (question,) = [q for q in questions if q["key"] == key]
    listed = ", ".join(f"{c['label']['en']} ({c['value']})" for c in question["choices"])
    return f"Is not one of the allowed values: {listed}."


VALIDATION_CASES = [
    # (answers / members change, field, code, English message)
    (
        {"answers": {"hh_smart_devices": None}},
        "answers.hh_smart_devices",
        "required",
        "This field is required.",
    ),
    ({"answers": {"hh_size": "3"}}, "answers.hh_size", "type", "Expected an integer."),
    ({"answers": {"hh_size": 3.5}}, "answers.hh_size", "type", "Expected an integer."),
    (
        {"answers": {"hh_smart_devices": -1}},
        "answers.hh_smart_devices",
        "minimum",
        "Must be at least 0.",
    ),
    (
        {"answers": {"hh_smart_devices": 51}},
        "answers.hh_smart_devices",
        "maximum",
        "Must be at most 50.",
    ),
    (
        {"answers": {"hh_broadband": "satellite"}},
        "answers.hh_broadband",
        "choice",
        _not_allowed("hh_broadband"),
    ),
    (
        {"answers": {"favourite_colour": "red"}},
        "answers.favourite_colour",
        "unknown_question",
        "This is not a question of this survey version.",
    ),
    (
        {"member": {"birth_year": 2026}},
        "members[0].answers.birth_year",
        "maximum",
        "Must be at most 2025.",
    ),  # the year of collectedAt
    (
        {"member": {"vneid": "level3"}},
        "members[0].answers.vneid",
        "choice",
        _not_allowed("vneid"),
    ),
    (
        {"member": {"smartphone": "yes"}},
        "members[0].answers.smartphone",
        "type",
        "Expected true or false.",
    ),
    (
        {"member": {"help_wanted": ["vneid", "bitcoin"]}},
        "members[0].answers.help_wanted",
        "choice",
        _not_allowed("help_wanted"),
    ),
    (
        {"member": {"cloud_accounts": 21}},
        "members[0].answers.cloud_accounts",
        "maximum",
        "Must be at most 20.",
    ),
    (
        {"answers": {"hh_size": 5}},
        "members",
        "count_mismatch",
        "There are 3 members but the household size is 5.",
    ),
]


@pytest.mark.parametrize(("change", "field", "code", "english"), VALIDATION_CASES)
async def test_each_rule_rejects_with_field_and_code(
    client: Client,
    team: dict[str, str],
    change: dict[str, Any],
    field: str,
    code: str,
    english: str,
) -> None:
    household = await new_household(client, team)
    item = submission(household)
    if "answers" in change:
        item["answers"] = {**item["answers"], **change["answers"]}  # type: ignore[dict-item]
    if "member" in change:
        members: list[dict[str, Any]] = item["members"]  # type: ignore[assignment]
        members[0]["answers"].update(change["member"])
    (en,) = await push(client, team, [item], "en")
    (vi,) = await push(client, team, [item], "vi")
    for result in (en, vi):
        assert result["status"] == "rejected"
        assert [(e["field"], e["code"]) for e in result["errors"]] == [(field, code)]
    assert en["errors"][0]["message"] == english
    assert vi["errors"][0]["message"] != english  # Vietnamese, from the vi catalog


async def test_skip_logic_and_other_kinds_with_a_published_survey(
    client: Client, accounts: Accounts, team: dict[str, str]
) -> None:
    """A survey published through the API: skip logic, text, date and multiple choice."""
    admin = await accounts.headers(await accounts.create("admin"))
    definition = {
        "title": {"vi": "Khảo sát thử", "en": "Trial survey"},
        "noticeVersion": "t1",
        "questions": [
            {
                "kind": "single_choice",
                "key": "hh_broadband",
                "label": {"vi": "Internet", "en": "Internet"},
                "choices": [
                    {"value": "fibre", "label": {"vi": "Cáp quang", "en": "Fibre"}},
                    {"value": "none", "label": {"vi": "Không", "en": "None"}},
                ],
            },
            {
                "kind": "integer",
                "key": "fibre_speed",
                "label": {"vi": "Tốc độ", "en": "Speed"},
                "relevant": {"key": "hh_broadband", "op": "in", "value": ["fibre"]},
                "min": 1,
                "max": 10000,
            },
            {
                "kind": "text",
                "key": "note",
                "label": {"vi": "Ghi chú", "en": "Note"},
                "required": False,
                "minLength": 2,
                "maxLength": 10,
            },
            {
                "kind": "date",
                "key": "installed",
                "label": {"vi": "Ngày lắp", "en": "Installed"},
                "required": False,
            },
        ],
        "roster": {
            "label": {"vi": "Thành viên", "en": "Members"},
            "questions": [
                {
                    "kind": "integer",
                    "key": "birth_year",
                    "label": {"vi": "Năm sinh", "en": "Born"},
                    "min": 1900,
                    "max": "collectedYear",
                },
                {
                    "kind": "boolean",
                    "key": "works",
                    "label": {"vi": "Đi làm", "en": "Works"},
                    "relevant": {"key": "$age", "op": "ge", "value": 15},
                },
            ],
        },
    }
    created = await client.post(
        "/api/v1/surveys", json={"code": "trial", "definition": definition}, headers=admin
    )
    assert created.status_code == 201, created.text
    survey_id = created.json()["id"]
    published = await client.post(f"/api/v1/surveys/{survey_id}/publish", headers=admin)
    assert published.json() == {"surveyId": survey_id, "version": 1}

    household = await new_household(client, team)

    def trial(answers: dict[str, Any], members: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": str(uuid.uuid4()),
            "surveyId": survey_id,
            "surveyVersion": 1,
            "householdId": household,
            "collectedAt": "2025-05-01T08:00:00Z",
            "consent": {"given": True, "noticeVersion": "t1"},
            "answers": answers,
            "members": members,
        }

    child = {"memberId": str(uuid.uuid4()), "answers": {"birth_year": 2015, "works": False}}
    adult = {"memberId": str(uuid.uuid4()), "answers": {"birth_year": 1990}}
    cases = [
        (
            trial({"hh_broadband": "none", "fibre_speed": 100}, []),
            [("answers.fibre_speed", "not_relevant")],
        ),
        (trial({"hh_broadband": "fibre"}, []), [("answers.fibre_speed", "required")]),
        (trial({"hh_broadband": "none", "note": "x"}, []), [("answers.note", "min_length")]),
        (
            trial({"hh_broadband": "none", "note": "far too long"}, []),
            [("answers.note", "max_length")],
        ),
        (
            trial({"hh_broadband": "none", "installed": "01/07/2025"}, []),
            [("answers.installed", "format")],
        ),
        (trial({"hh_broadband": "none"}, [child]), [("members[0].answers.works", "not_relevant")]),
        (trial({"hh_broadband": "none"}, [adult]), [("members[0].answers.works", "required")]),
    ]
    results = await push(client, team, [item for item, _ in cases], "en")
    for (_, expected), result in zip(cases, results, strict=True):
        assert result["status"] == "rejected"
        assert [(e["field"], e["code"]) for e in result["errors"]] == expected

    ok = trial(
        {"hh_broadband": "fibre", "fibre_speed": 300, "installed": "2024-12-31"},
        [{"memberId": str(uuid.uuid4()), "answers": {"birth_year": 1990, "works": True}}],
    )
    assert (await push(client, team, [ok]))[0]["status"] == "accepted"

    # Published versions are immutable: a new draft does not change version 1.
    definition["title"] = {"vi": "Đổi tên", "en": "Renamed"}
    assert (
        await client.put(f"/api/v1/surveys/{survey_id}/draft", json=definition, headers=admin)
    ).status_code == 200
    v1 = await client.get(f"/api/v1/surveys/{survey_id}/versions/1", headers=team)
    assert v1.json()["definition"]["title"]["en"] == "Trial survey"
    republished = await client.post(f"/api/v1/surveys/{survey_id}/publish", headers=admin)
    assert republished.json()["version"] == 2


async def test_survey_versions_have_etags(client: Client, team: dict[str, str]) -> None:
    url = f"/api/v1/surveys/{HOUSEHOLD_DIGITAL}/versions/1"
    first = await client.get(url, headers=team)
    assert first.status_code == 200
    body = first.json()
    assert body["code"] == "household_digital"
    assert [q["key"] for q in body["definition"]["roster"]["questions"]][:4] == [
        "birth_year",
        "sex",
        "smartphone",
        "vneid",
    ]
    etag = first.headers["etag"]
    again = await client.get(url, headers={**team, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert (
        await client.get(f"/api/v1/surveys/{HOUSEHOLD_DIGITAL}/versions/2", headers=team)
    ).status_code == 404
    listed = await client.get("/api/v1/surveys", headers=team)
    assert [s["code"] for s in listed.json()] == ["household_digital"]


async def test_households_are_idempotent_and_scoped(
    client: Client, accounts: Accounts, team: dict[str, str]
) -> None:
    household_id = str(uuid.uuid4())
    body = {"id": household_id, "wardCode": HAC_THANH, "label": "Nhà số 12"}
    first = await client.post("/api/v1/households", json=body, headers=team)
    again = await client.post("/api/v1/households", json=body, headers=team)
    assert (first.status_code, again.status_code) == (201, 200)  # a replay is a 200
    assert first.json() == again.json()
    clash = await client.post("/api/v1/households", json={**body, "label": "Nhà 13"}, headers=team)
    assert clash.status_code == 409

    other_ward = await accounts.create(
        "team_member", HAM_RONG, team_id=await accounts.team(HAM_RONG)
    )
    other = await accounts.headers(other_ward)
    assert (
        await client.get(f"/api/v1/households/{household_id}", headers=other)
    ).status_code == 404
    assert (
        await client.get("/api/v1/households", params={"ward": HAC_THANH}, headers=other)
    ).status_code == 404
    elsewhere = await client.post("/api/v1/households", json={"wardCode": HAC_THANH}, headers=other)
    assert elsewhere.status_code == 404
    # A push from another ward cannot touch this household.
    (result,) = await push(client, other, [submission(household_id)])
    assert result["errors"][0]["code"] == "household_not_found"

    listing = await client.get("/api/v1/households", headers=team)
    assert [h["id"] for h in listing.json()["items"]] == [household_id]
    province = await accounts.headers(await accounts.create("province_official", "38"))
    assert (
        await client.get(f"/api/v1/households/{household_id}", headers=province)
    ).status_code == 404


async def test_single_submission_endpoint(client: Client, team: dict[str, str]) -> None:
    household = await new_household(client, team)
    item = submission(household)
    created = await client.post("/api/v1/submissions", json=item, headers=team)
    assert created.status_code == 201
    assert created.json()["status"] == "accepted"
    retried = await client.post("/api/v1/submissions", json=item, headers=team)
    assert retried.status_code == 200
    assert retried.json()["status"] == "duplicate"
    conflicting = await client.post("/api/v1/submissions", json=submission(household), headers=team)
    assert conflicting.status_code == 409
    assert conflicting.json()["code"] == "not_head"
    invalid = await client.post(
        "/api/v1/submissions", json=submission(household, hh_size=0), headers=team
    )
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["field"] == "answers.hh_size"
    stored = await client.get(f"/api/v1/submissions/{item['id']}", headers=team)
    assert stored.status_code == 200
    assert stored.json()["answers"] == item["answers"]
    assert stored.json()["members"] == item["members"]


async def test_a_dropped_connection_then_retry_stores_each_item_once(
    client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    households = [await new_household(client, team) for _ in range(40)]
    batch = [submission(h) for h in households]
    # The connection drops at various points: before, during or after the commit.
    for delay in (0.0, 0.002, 0.005, 0.01, 0.02):
        task = asyncio.create_task(
            client.post("/api/v1/sync/push", json={"submissions": batch}, headers=team)
        )
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    results = await push(client, team, batch)
    assert {r["status"] for r in results} <= {"accepted", "duplicate"}
    rows = await db.fetch("SELECT household_id, count(*) AS n FROM submission GROUP BY 1")
    assert len(rows) == 40
    assert all(row["n"] == 1 for row in rows)
    heads = await db.fetchval(
        "SELECT count(*) FROM household WHERE current_submission_id IS NOT NULL"
    )
    assert heads == 40


async def _pull_all(
    client: Client, headers: dict[str, str], cursor: str | None, limit: int = 7
) -> tuple[list[dict[str, Any]], list[str], str]:
    households: list[dict[str, Any]] = []
    deleted: list[str] = []
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/sync/pull", params=params, headers=headers)).json()
        households += page["households"]
        deleted += page["deletedHouseholds"]
        cursor = page["nextCursor"]
        if not page["more"]:
            assert cursor is not None
            return households, deleted, cursor


async def test_pull_pages_through_the_ward(client: Client, team: dict[str, str]) -> None:
    households = [await new_household(client, team) for _ in range(20)]
    await push(client, team, [submission(h) for h in households[:10]])
    first = await client.get("/api/v1/sync/pull", headers=team)
    assert [v["code"] for v in first.json()["surveyVersions"]] == ["household_digital"]
    pulled, deleted, cursor = await _pull_all(client, team, None)
    assert sorted(h["id"] for h in pulled) == sorted(households)
    assert deleted == []
    with_answers = [h for h in pulled if h["current"] is not None]
    assert len(with_answers) == 10
    assert with_answers[0]["current"]["answers"]["hh_broadband"] == "fibre"
    # Nothing changed: an empty pull. One change: exactly that household.
    again, _, cursor = await _pull_all(client, team, cursor)
    assert again == []
    await push(client, team, [submission(households[15])])
    changed, _, _ = await _pull_all(client, team, cursor)
    assert [h["id"] for h in changed] == [households[15]]


async def test_a_pull_right_after_a_push_does_not_wait_for_a_fold(
    client: Client, team: dict[str, str], dsn: str
) -> None:
    """A fold that began before a push and is still running holds back no pull: the folder
    writes no row a pull reads. Any other older transaction still does, until it ends."""
    households = [await new_household(client, team) for _ in range(2)]
    _, _, cursor = await _pull_all(client, team, None)
    for name, held_back in ((FOLDER, False), ("congdongso", True)):
        older = await asyncpg.connect(dsn, server_settings={"application_name": name})
        try:
            await older.execute("BEGIN")
            await older.execute("SELECT pg_current_xact_id()")  # an xid older than the push's
            household = households.pop()
            await push(client, team, [submission(household)])
            changed, _, after = await _pull_all(client, team, cursor)
            assert [h["id"] for h in changed] == ([] if held_back else [household])
            if held_back:
                await older.execute("ROLLBACK")
                changed, _, after = await _pull_all(client, team, after)
                assert [h["id"] for h in changed] == [household]  # now, and only once
            cursor = after
        finally:
            await older.close()


async def test_pull_never_skips_or_repeats_under_concurrent_pushes(
    client: Client, team: dict[str, str]
) -> None:
    households = [await new_household(client, team) for _ in range(60)]
    _, _, cursor = await _pull_all(client, team, None)
    seen: list[str] = []
    writers_done = asyncio.Event()

    # One client shared by every task: a second client would run the app's lifespan again.
    async def writer(chunk: list[str]) -> None:
        for household in chunk:
            (result,) = await push(client, team, [submission(household)])
            assert result["status"] == "accepted"
            await asyncio.sleep(0)

    async def reader() -> None:
        nonlocal cursor
        deadline = None
        while True:
            if writers_done.is_set() and deadline is None:
                deadline = asyncio.get_running_loop().time() + 30
            changed, _, cursor = await _pull_all(client, team, cursor, limit=5)
            seen.extend(h["id"] for h in changed)
            # A pull delivers changes up to the oldest transaction still running anywhere
            # on the server (xids are cluster-wide: other tests' databases count), so the
            # last writes may come a few pulls after the writers are done — never skipped.
            if deadline is not None and (len(seen) >= len(households) or _now() > deadline):
                return
            await asyncio.sleep(0.001 if deadline is None else 0.05)

    def _now() -> float:
        return asyncio.get_running_loop().time()

    read = asyncio.create_task(reader())
    await asyncio.gather(*(writer(households[i::4]) for i in range(4)))
    writers_done.set()
    await read
    changed, _, cursor = await _pull_all(client, team, cursor)  # nothing more comes
    seen.extend(h["id"] for h in changed)
    # Every pushed household arrives exactly once (each changed exactly once).
    assert sorted(seen) == sorted(households)


async def test_pull_is_for_ward_level_accounts(client: Client, accounts: Accounts) -> None:
    province = await accounts.headers(await accounts.create("province_official", "38"))
    assert (await client.get("/api/v1/sync/pull", headers=province)).status_code == 403
    bad = await client.get("/api/v1/sync/pull", params={"cursor": "garbage!"}, headers=province)
    assert bad.status_code in (400, 403)


async def test_a_hand_made_cursor_is_a_400_not_a_500(client: Client, team: dict[str, str]) -> None:
    """Cursors that decode but hold what the server never writes there."""
    for position in ([0, None, None, "not-a-uuid"], [0, None, None, 7], ["x"], {"low": 0}):
        made = base64.urlsafe_b64encode(msgspec.json.encode(position)).decode().rstrip("=")
        answer = await client.get("/api/v1/sync/pull", params={"cursor": made}, headers=team)
        assert answer.status_code == 400, (position, answer.text)
        assert answer.json()["errors"][0]["code"] == "invalid_cursor"


async def test_push_limit(client: Client, team: dict[str, str]) -> None:
    items = [member()] * 501
    response = await client.post("/api/v1/sync/push", json={"submissions": items}, headers=team)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "max_items"


def test_an_item_reads_whole_floats_as_integers_but_no_strings() -> None:
    # 2.0 is an integer to JSON Schema (and so to the document); "2" is a text.
    from msgspec import ValidationError

    from api.ingest import decode_item
    from schemas.modules import ProgressUpdate

    item = b'{"lessons": ["intro"], "version": 2.0}'
    assert decode_item(item, ProgressUpdate).version == 2
    assert type(decode_item(item, ProgressUpdate).version) is int
    with pytest.raises(ValidationError):
        decode_item(item.replace(b"2.0", b'"2"'), ProgressUpdate)
    with pytest.raises(ValidationError):
        decode_item(item.replace(b"2.0", b"2.5"), ProgressUpdate)


async def test_pushes_beyond_the_slots_wait_and_then_are_refused_whole(
    app: Litestar, client: Client, team: dict[str, str], db: asyncpg.Connection
) -> None:
    """A worker works on its slots' worth of pushes at once: the next waits (without a pool
    connection), and one that waits too long is a 503 ``busy`` with Retry-After, nothing of it
    stored; sent again, it is accepted."""
    from api.routes.sync import PushSlots

    slots = app.state.push_slots = PushSlots(1, wait=0.3)
    household = await new_household(client, team)
    item = submission(household)
    async with slots.slot():  # another push holds the only slot
        refused = await client.post(
            "/api/v1/sync/push",
            json={"submissions": [item]},
            headers={**team, "Accept-Language": "en"},
        )
    assert refused.status_code == 503
    assert refused.json()["code"] == "busy"
    assert "nothing of this one was stored" in refused.json()["detail"]
    assert refused.headers["retry-after"] == "5"
    assert not await db.fetchval(
        "SELECT count(*) FROM submission WHERE id = $1", uuid.UUID(str(item["id"]))
    )

    async def release_soon() -> None:
        async with slots.slot():
            await asyncio.sleep(0.1)

    holder = asyncio.create_task(release_soon())
    await asyncio.sleep(0)
    waited = await client.post("/api/v1/sync/push", json={"submissions": [item]}, headers=team)
    await holder
    assert waited.status_code == 200
    assert waited.json()["results"][0]["status"] == "accepted"
