"""Learning modules: content, localized reads with ETags, server-side scoring, idempotent
attempts and progress, offline pushes, versioning, learning statistics, recommendations."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.config import Settings
from api.learning import check_definition
from api.queries.modules import learning_summary
from api.stats.catalog import load_catalog
from api.stats.counters import rebuild
from api.stats.keys import record_keys
from schemas.modules import ModuleDefinition
from tests.conftest import BA_DINH, HAC_THANH, HAM_RONG, THANH_HOA, Accounts, member, submission
from tests.test_sync import new_household, push

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
CONTENT = Path(__file__).resolve().parent.parent / "content" / "modules"
STARTERS = sorted(p.stem for p in CONTENT.glob("*.json"))


def content(code: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONTENT / f"{code}.json").read_text(encoding="utf-8"))
    return data


def right_answers(code: str) -> dict[str, list[str]]:
    return {
        q["key"]: [c["key"] for c in q["choices"] if c["correct"]]
        for q in content(code)["quiz"]["questions"]
    }


async def module_ids(db: asyncpg.Connection) -> dict[str, uuid.UUID]:
    rows = await db.fetch("SELECT code, id FROM learning_module")
    return {row["code"]: row["id"] for row in rows}


@pytest.fixture
async def team(accounts: Accounts) -> dict[str, str]:
    team_id = await accounts.team(HAC_THANH)
    return await accounts.headers(await accounts.create("team_member", HAC_THANH, team_id=team_id))


@pytest.fixture
async def ids(db: asyncpg.Connection) -> dict[str, uuid.UUID]:
    return await module_ids(db)


def test_starter_content_is_valid() -> None:
    assert STARTERS == [
        "cloud_backup",
        "digital_signature",
        "public_services_portal",
        "safe_cashless_payment",
        "scam_awareness",
        "vneid_level2",
    ]
    for code in STARTERS:
        path = CONTENT / f"{code}.json"
        assert path.stat().st_size < 40_000
        data = content(code)
        assert data.pop("code") == code
        definition = msgspec.convert(data, ModuleDefinition)
        assert check_definition(definition) == []
        assert 5 <= definition.minutes <= 15
        assert definition.quiz.pass_mark == 0.7
        assert {q.kind for q in definition.quiz.questions} == {"single_choice", "multi_choice"}


async def test_list_filters_and_pages(
    client: Client, team: dict[str, str], ids: dict[str, uuid.UUID]
) -> None:
    everything = (await client.get("/api/v1/modules", headers=team)).json()
    assert [m["code"] for m in everything["items"]] == STARTERS
    assert everything["nextCursor"] is None
    assert everything["items"][0]["title"] == "Tài khoản đám mây và sao lưu điện thoại"

    scams = await client.get("/api/v1/modules?competence=4.2", headers=team)
    assert [m["code"] for m in scams.json()["items"]] == ["safe_cashless_payment", "scam_awareness"]
    domain2 = await client.get("/api/v1/modules?competence=2&audience=resident", headers=team)
    assert [m["code"] for m in domain2.json()["items"]] == [
        "digital_signature",
        "public_services_portal",
        "vneid_level2",
    ]
    bad = await client.get(
        "/api/v1/modules?competence=9.9", headers={**team, "Accept-Language": "en"}
    )
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")

    seen, cursor = [], None
    while True:
        query = "?limit=4" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/api/v1/modules{query}", headers=team)).json()
        seen += [m["code"] for m in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == STARTERS


async def test_module_in_both_languages_without_answers_and_with_etag(
    client: Client, team: dict[str, str], ids: dict[str, uuid.UUID]
) -> None:
    url = f"/api/v1/modules/{ids['vneid_level2']}"
    vi = await client.get(url, headers=team)
    en = await client.get(url, headers={**team, "Accept-Language": "en-US,en;q=0.9"})
    assert vi.status_code == en.status_code == 200
    assert vi.json()["title"] == "Định danh điện tử mức 2 trên VNeID"
    assert en.json()["title"] == "Level-2 electronic identification on VNeID"
    assert vi.headers["content-language"] == "vi"
    assert en.json()["language"] == "en"
    body = en.json()
    assert body["version"] == 1
    assert body["lessons"][0]["id"] == "level1-vs-level2"
    question = body["quiz"]["questions"][1]
    assert set(question) == {"id", "kind", "prompt", "choices"}
    assert all(set(choice) == {"id", "label"} for choice in question["choices"])
    for response in (vi, en):  # the answers are nowhere in the bundle
        assert '"correct"' not in response.text
        assert "explanation" not in response.text
    assert len(vi.content) < 50_000

    etag = vi.headers["etag"]
    assert etag != en.headers["etag"]
    cached = await client.get(url, headers={**team, "If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    other_language = await client.get(
        url, headers={**team, "If-None-Match": etag, "Accept-Language": "en"}
    )
    assert other_language.status_code == 200

    missing = await client.get(f"/api/v1/modules/{uuid.uuid4()}", headers=team)
    assert missing.status_code == 404
    assert missing.json()["code"] == "module_not_found"


async def attempt(
    client: Client,
    headers: dict[str, str],
    module_id: uuid.UUID,
    answers: dict[str, list[str]],
    language: str = "vi",
    **extra: Any,
) -> Any:
    body = {"attemptId": str(extra.pop("attempt_id", uuid.uuid4())), "answers": answers, **extra}
    return await client.post(
        f"/api/v1/modules/{module_id}/attempts",
        json=body,
        headers={**headers, "Accept-Language": language},
    )


async def test_scoring_single_and_multiple_choice(
    client: Client, team: dict[str, str], ids: dict[str, uuid.UUID]
) -> None:
    module = ids["vneid_level2"]
    right = right_answers("vneid_level2")  # q1, q3, q5 single; q2, q4 multiple
    assert right["q2"] == ["a", "b", "c"]

    perfect = await attempt(client, team, module, right, "en")
    assert perfect.status_code == 201, perfect.text
    body = perfect.json()
    assert (body["score"], body["passed"], body["correct"], body["total"]) == (1.0, True, 5, 5)
    assert body["questions"][0]["explanation"].startswith("Level 2 needs your photo")

    # A multiple choice is right only with exactly the correct set, in any order.
    cases = [
        ({**right, "q2": ["c", "b", "a"]}, 1.0, True),
        ({**right, "q2": ["a", "b"]}, 0.8, True),  # a subset: q2 wrong, 4/5 ≥ 0.7
        ({**right, "q2": ["a", "b", "c", "d"]}, 0.8, True),  # a superset: wrong too
        ({**right, "q2": ["a", "b"], "q4": ["a"]}, 0.6, False),  # 3/5 < 0.7
        ({"q1": right["q1"]}, 0.2, False),  # unanswered questions count as wrong
        ({**right, "q1": ["a"]}, 0.8, True),  # a wrong single choice
    ]
    for answers, score, passed in cases:
        response = await attempt(client, team, module, answers)
        assert response.status_code == 201, response.text
        assert (response.json()["score"], response.json()["passed"]) == (score, passed), answers

    invalid = [
        ({**right, "q9": ["a"]}, "answers.q9", "unknown_question"),
        ({**right, "q1": ["z"]}, "answers.q1", "choice"),
        ({**right, "q1": ["a", "b"]}, "answers.q1", "choose_one"),
        ({}, "answers", "min_items"),
    ]
    for answers, field, code in invalid:
        response = await attempt(client, team, module, answers, "en")
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == field
        assert response.json()["errors"][0]["code"] == code
    vi = await attempt(client, team, module, {**right, "q1": ["a", "b"]})
    assert vi.json()["errors"][0]["message"] == ("Chọn đúng một đáp án cho câu hỏi một lựa chọn.")


async def test_attempts_are_idempotent(
    client: Client, team: dict[str, str], ids: dict[str, uuid.UUID], db: asyncpg.Connection
) -> None:
    module = ids["scam_awareness"]
    right = right_answers("scam_awareness")
    attempt_id = uuid.uuid4()
    first = await attempt(client, team, module, right, attempt_id=attempt_id)
    assert first.status_code == 201
    reordered = {k: list(reversed(v)) for k, v in reversed(list(right.items()))}
    retry = await attempt(client, team, module, reordered, attempt_id=attempt_id)
    assert retry.status_code == 200
    assert retry.json() == first.json()
    other = await attempt(client, team, module, {"q1": ["a"]}, "en", attempt_id=attempt_id)
    assert other.status_code == 409
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["code"] == "content_differs"
    assert other.json()["title"] == "Conflict"
    assert await db.fetchval("SELECT count(*) FROM learning_attempt") == 1
    counters = await db.fetchrow("SELECT learners, passed, attempts FROM ward_learning")
    assert tuple(counters) == (1, 1, 1)


async def test_progress_is_idempotent_and_completes(
    client: Client, team: dict[str, str], ids: dict[str, uuid.UUID], db: asyncpg.Connection
) -> None:
    module = ids["cloud_backup"]
    lessons = [lesson["key"] for lesson in content("cloud_backup")["lessons"]]
    url = f"/api/v1/modules/{module}/progress"
    first = await client.put(url, json={"lessons": lessons[:2]}, headers=team)
    assert first.status_code == 200, first.text
    assert first.json()["completed"] is False
    again = await client.put(url, json={"lessons": lessons[:1]}, headers=team)
    assert again.json() == first.json()  # completion only accumulates
    done = await client.put(url, json={"lessons": lessons[2:]}, headers=team)
    assert done.json()["completed"] is True
    assert sorted(done.json()["lessons"]) == sorted(lessons)
    repeat = await client.put(url, json={"lessons": lessons}, headers=team)
    assert repeat.json() == done.json()
    assert await db.fetchval("SELECT completions FROM ward_learning") == 1
    assert await db.fetchval("SELECT learners FROM ward_learning") == 0  # no attempt yet

    unknown = await client.put(
        url, json={"lessons": ["nope"]}, headers={**team, "Accept-Language": "en"}
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == [
        {
            "field": "lessons[0]",
            "code": "unknown_lesson",
            "message": "This module has no lesson with this id.",
        }
    ]
    elsewhere = await client.put(
        url, json={"lessons": lessons, "householdId": str(uuid.uuid4())}, headers=team
    )
    assert elsewhere.status_code == 404


async def test_a_day_offline_syncs_in_one_push(
    client: Client, team: dict[str, str], ids: dict[str, uuid.UUID], db: asyncpg.Connection
) -> None:
    household = await new_household(client, team)
    grandmother = str(uuid.uuid4())
    survey = submission(household, [member(1950, member_id=grandmother, vneid="level1")])
    lessons = [lesson["key"] for lesson in content("vneid_level2")["lessons"]]
    progress = {
        "id": str(uuid.uuid4()),
        "moduleId": str(ids["vneid_level2"]),
        "lessons": lessons,
        "householdId": household,
        "memberId": grandmother,
    }
    quiz = {
        "attemptId": str(uuid.uuid4()),
        "moduleId": str(ids["vneid_level2"]),
        "version": 1,
        "answers": right_answers("vneid_level2"),
        "householdId": household,
        "memberId": grandmother,
        "takenAt": "2025-07-01T10:00:00+07:00",
    }
    bad_progress = {"id": str(uuid.uuid4()), "moduleId": str(uuid.uuid4()), "lessons": ["x"]}
    bad_attempt = {"attemptId": str(uuid.uuid4()), "answers": {"q1": ["a"]}}  # no moduleId
    body = {
        "submissions": [survey],
        "progress": [progress, bad_progress],
        "attempts": [quiz, bad_attempt],
    }
    response = await client.post(
        "/api/v1/sync/push", json=body, headers={**team, "Accept-Language": "en"}
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["id"], r["status"]) for r in results] == [
        (survey["id"], "accepted"),
        (progress["id"], "accepted"),
        (bad_progress["id"], "rejected"),
        (quiz["attemptId"], "accepted"),
        (bad_attempt["attemptId"], "rejected"),
    ]
    assert results[2]["errors"][0]["code"] == "module_not_found"
    assert results[3]["score"] == 1.0
    assert results[3]["passed"] is True
    assert results[4]["errors"][0] == {
        "field": "moduleId",
        "code": "required",
        "message": "This field is required.",
    }
    # The whole push again: nothing new.
    again = await client.post("/api/v1/sync/push", json=body, headers=team)
    assert [r["status"] for r in again.json()["results"]] == [
        "duplicate",
        "duplicate",
        "rejected",
        "duplicate",
        "rejected",
    ]
    row = await db.fetchrow(
        """SELECT learner_id, household_id, completed, passed, attempts, a.code AS ward
           FROM learner_module l JOIN area a ON a.id = l.ward_id"""
    )
    assert str(row["learner_id"]) == grandmother
    assert str(row["household_id"]) == household
    assert (row["completed"], row["passed"], row["attempts"], row["ward"]) == (
        True,
        True,
        1,
        HAC_THANH,
    )
    counters = await db.fetchrow(
        "SELECT learners, completions, passed, attempts FROM ward_learning"
    )
    assert tuple(counters) == (1, 1, 1, 1)

    # Another phone of the ward pulls the grandmother's progress; a later pull has nothing
    # new until it changes again.
    pulled = (await client.get("/api/v1/sync/pull", headers=team)).json()
    assert [
        (p["learnerId"], p["householdId"], p["completed"], p["passed"], p["attempts"])
        for p in pulled["progress"]
    ] == [(grandmother, household, True, True, 1)]
    assert sorted(pulled["progress"][0]["lessons"]) == sorted(lessons)
    quiet = await client.get(f"/api/v1/sync/pull?since={pulled['cursor']}", headers=team)
    assert quiet.json()["progress"] == []
    retake = {**quiz, "attemptId": str(uuid.uuid4()), "answers": {"q1": ["a"]}}
    await client.post("/api/v1/sync/push", json={"attempts": [retake]}, headers=team)
    later = await client.get(f"/api/v1/sync/pull?since={pulled['cursor']}", headers=team)
    assert [(p["learnerId"], p["attempts"]) for p in later.json()["progress"]] == [(grandmother, 2)]

    too_many = {"progress": [progress] * 300, "attempts": [quiz] * 201}
    refused = await client.post("/api/v1/sync/push", json=too_many, headers=team)
    assert refused.status_code == 400


async def test_publishing_makes_a_new_version_and_keeps_the_old_one(
    client: Client,
    accounts: Accounts,
    team: dict[str, str],
    ids: dict[str, uuid.UUID],
    db: asyncpg.Connection,
) -> None:
    admin = await accounts.headers(await accounts.create("admin"))
    module = ids["public_services_portal"]
    before_pull = (await client.get("/api/v1/sync/pull", headers=team)).json()
    assert sorted(m["code"] for m in before_pull["modules"]) == STARTERS
    v1_row = await db.fetchval(
        "SELECT definition FROM learning_module_version WHERE module_id = $1", module
    )
    v1_etag = (await client.get(f"/api/v1/modules/{module}", headers=team)).headers["etag"]

    draft = await client.get(f"/api/v1/modules/{module}/draft", headers=admin)
    assert draft.status_code == 200
    assert draft.json()["fromVersion"] == 1
    definition = draft.json()["definition"]
    assert definition["quiz"]["questions"][0]["choices"][0]["correct"] is True  # authors see it
    definition["title"]["vi"] = "Cổng Dịch vụ công quốc gia (bản mới)"
    definition["quiz"]["questions"][0]["choices"][0]["correct"] = False
    definition["quiz"]["questions"][0]["choices"][1]["correct"] = True
    saved = await client.put(f"/api/v1/modules/{module}/draft", json=definition, headers=admin)
    assert saved.status_code == 200, saved.text
    assert (await client.post(f"/api/v1/modules/{module}/publish", headers=admin)).json() == {
        "moduleId": str(module),
        "version": 2,
    }
    no_draft = await client.post(f"/api/v1/modules/{module}/publish", headers=admin)
    assert no_draft.status_code == 409

    latest = await client.get(
        f"/api/v1/modules/{module}", headers={**team, "If-None-Match": v1_etag}
    )
    assert latest.status_code == 200  # the old ETag no longer matches
    assert (latest.json()["version"], latest.json()["title"]) == (
        2,
        "Cổng Dịch vụ công quốc gia (bản mới)",
    )
    assert (
        await db.fetchval(
            "SELECT definition FROM learning_module_version WHERE module_id = $1 AND version = 1",
            module,
        )
        == v1_row
    )
    # An attempt made offline on version 1 is scored against version 1.
    old = await attempt(client, team, module, {"q1": ["a"]}, version=1)
    new = await attempt(client, team, module, {"q1": ["a"]})
    assert old.json()["questions"][0]["correct"] is True
    assert (new.json()["version"], new.json()["questions"][0]["correct"]) == (2, False)
    unknown = await attempt(client, team, module, {"q1": ["a"]}, version=3)
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["code"] == "unknown_version"

    after_pull = (
        await client.get(f"/api/v1/sync/pull?since={before_pull['cursor']}", headers=team)
    ).json()
    assert [(m["code"], m["version"]) for m in after_pull["modules"]] == [
        ("public_services_portal", 2)
    ]
    actions = await db.fetch(
        "SELECT action FROM audit_log WHERE subject_type = 'learning_module' ORDER BY id"
    )
    assert [a["action"] for a in actions] == ["module_draft_saved", "module_published"]


async def test_authors_create_modules_and_others_cannot(
    client: Client, accounts: Accounts, team: dict[str, str]
) -> None:
    official = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    definition = content("cloud_backup")
    definition.pop("code")
    created = await client.post(
        "/api/v1/modules",
        json={"code": "cloud_backup_2", "definition": definition},
        headers=official,
    )
    assert created.status_code == 201, created.text
    module = created.json()["id"]
    assert (await client.get(f"/api/v1/modules/{module}", headers=team)).status_code == 404
    assert (await client.post(f"/api/v1/modules/{module}/publish", headers=official)).json()[
        "version"
    ] == 1
    assert (await client.get(f"/api/v1/modules/{module}", headers=team)).status_code == 200
    taken = await client.post(
        "/api/v1/modules",
        json={"code": "cloud_backup_2", "definition": definition},
        headers=official,
    )
    assert taken.status_code == 409

    broken = json.loads(json.dumps(definition))
    for choice in broken["quiz"]["questions"][0]["choices"]:
        choice["correct"] = True
    rejected = await client.post(
        "/api/v1/modules",
        json={"code": "broken", "definition": broken},
        headers={**official, "Accept-Language": "en"},
    )
    assert rejected.status_code == 400
    assert rejected.json()["errors"] == [
        {
            "field": "definition.quiz.questions[0].choices",
            "code": "correct_choices",
            "message": "A single-choice question has exactly one correct choice.",
        }
    ]
    forbidden = await client.post(
        "/api/v1/modules", json={"code": "mine", "definition": definition}, headers=team
    )
    assert forbidden.status_code == 403
    # Officials above the ward author modules but do not take quizzes (no ward to count in).
    quiz = await attempt(client, official, uuid.UUID(module), {"q1": ["a"]})
    assert quiz.status_code == 403


async def _resident_of(client: Client, team: dict[str, str], household: str) -> dict[str, str]:
    invite = await client.post("/api/v1/invites", json={"householdId": household}, headers=team)
    registered = await client.post(
        "/api/v1/auth/register",
        json={
            "inviteCode": invite.json()["code"],
            "phone": "0388000111",
            "password": "resident pw",
        },
    )
    assert registered.status_code == 201, registered.text
    return {"Authorization": f"Bearer {registered.json()['accessToken']}"}


async def test_learning_statistics_per_ward_and_province(
    client: Client,
    accounts: Accounts,
    team: dict[str, str],
    ids: dict[str, uuid.UUID],
    db: asyncpg.Connection,
    settings: Settings,
) -> None:
    vneid, scams = ids["vneid_level2"], ids["scam_awareness"]
    right = right_answers("vneid_level2")
    household = await new_household(client, team)
    resident = await _resident_of(client, team, household)
    # A team member teaches two members of a household: one passes, one does not.
    pupil, other = str(uuid.uuid4()), str(uuid.uuid4())
    assert (
        await attempt(client, team, vneid, right, householdId=household, memberId=pupil)
    ).json()["passed"]
    await attempt(client, team, vneid, {"q1": ["a"]}, householdId=household, memberId=other)
    await attempt(client, team, vneid, right, householdId=household, memberId=other)  # retake
    # The team member's own attempt counts in their ward, and the resident's in the household's.
    await attempt(client, team, scams, right_answers("scam_awareness"))
    assert (await attempt(client, resident, vneid, {"q1": ["b"]})).status_code == 201
    lessons = [lesson["key"] for lesson in content("vneid_level2")["lessons"]]
    progress = await client.put(
        f"/api/v1/modules/{vneid}/progress", json={"lessons": lessons}, headers=resident
    )
    assert progress.json()["completed"] is True
    # Another ward of the same province.
    other_team_id = await accounts.team(HAM_RONG)
    other_team = await accounts.headers(
        await accounts.create("team_member", HAM_RONG, team_id=other_team_id)
    )
    await attempt(client, other_team, vneid, right)

    def by_code(body: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
        return {
            m["code"]: (m["learners"], m["completions"], m["passed"], m["attempts"])
            for m in body["modules"]
        }

    ward_official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    ward = await client.get(f"/api/v1/stats/areas/{HAC_THANH}/learning", headers=ward_official)
    assert ward.status_code == 200, ward.text
    assert ward.json()["area"]["code"] == HAC_THANH
    assert by_code(ward.json())["vneid_level2"] == (3, 1, 2, 4)
    assert by_code(ward.json())["scam_awareness"] == (1, 0, 1, 1)
    assert by_code(ward.json())["cloud_backup"] == (0, 0, 0, 0)
    competences = {c["component"]: c for c in ward.json()["competences"]}
    assert competences["2.6"]["learners"] == 3 + 0  # vneid_level2 and digital_signature
    assert competences["4.2"]["passed"] == 1  # scam_awareness and safe_cashless_payment

    province_official = await accounts.headers(
        await accounts.create("province_official", THANH_HOA)
    )
    province = await client.get(
        f"/api/v1/stats/areas/{THANH_HOA}/learning",
        headers={**province_official, "Accept-Language": "en"},
    )
    # Outside their own ward, officials get protected counts: the province adds up its
    # wards' perturbed counts (3 learners and 1 learner each shown as 0 or 5), so 0, 5
    # (withheld, as under 10) or 10; never 1 to 9.
    modules = {m["code"]: m for m in province.json()["modules"]}
    if modules["vneid_level2"]["suppressed"]:
        assert modules["vneid_level2"]["reason"] == "privacy"
        assert modules["vneid_level2"]["learners"] is None
    elif by_code(province.json())["vneid_level2"][0] == 0:
        assert by_code(province.json())["vneid_level2"][:3] == (0, 0, 0)
    else:
        learners, completions, passed, _ = by_code(province.json())["vneid_level2"]
        assert learners == 10
        assert 0 <= completions <= 10
        assert 0 <= passed <= 10
    assert by_code(province.json())["cloud_backup"] == (0, 0, 0, 0)  # nobody: nothing to hide
    titles = {m["code"]: m["title"] for m in province.json()["modules"]}
    assert titles["vneid_level2"] == "Level-2 electronic identification on VNeID"

    # The summary itself is exact: 4 learners, 1 completion, 3 passes, 5 attempts.
    province_ids = [
        r["id"]
        for r in await db.fetch(
            "SELECT id FROM area WHERE parent_id = (SELECT id FROM area WHERE code = $1)", THANH_HOA
        )
    ]
    exact = await learning_summary(db, province_ids)
    assert {m.code: m.counts[:4] for m in exact.modules}["vneid_level2"] == (4, 1, 3, 5)
    nation = await learning_summary(db, None)
    assert {m.code: m.counts.learners for m in nation.modules}["vneid_level2"] == 4

    # Scope: out of scope is 404, residents are not officials.
    for headers, code in (
        (ward_official, HAM_RONG),
        (ward_official, THANH_HOA),
        (province_official, BA_DINH),
        (team, "99999"),
    ):
        response = await client.get(f"/api/v1/stats/areas/{code}/learning", headers=headers)
        assert response.status_code == 404, code
    forbidden = await client.get(f"/api/v1/stats/areas/{HAC_THANH}/learning", headers=resident)
    assert forbidden.status_code == 403

    # A household's deletion takes its learners out of the counters.
    assert (await client.delete("/api/v1/me/household", headers=resident)).status_code in (
        200,
        204,
    )
    after = await client.get(f"/api/v1/stats/areas/{HAC_THANH}/learning", headers=ward_official)
    assert by_code(after.json())["vneid_level2"] == (0, 0, 0, 0)
    assert by_code(after.json())["scam_awareness"] == (1, 0, 1, 1)

    # The learning counters and their key sums, kept one change at a time (and by the
    # deletion trigger), equal a rebuild from the learners.
    learning = "SELECT * FROM ward_learning WHERE learners <> 0 OR attempts <> 0 ORDER BY 1, 3"
    incremental = [tuple(r) for r in await db.fetch(learning)]
    assert any(row[-4] for row in incremental), "learners carry record keys"
    await rebuild(db, await load_catalog(db, record_keys(settings)))
    assert [tuple(r) for r in await db.fetch(learning)] == incremental


async def recommended(
    client: Client, headers: dict[str, str], household: str, language: str = "vi"
) -> list[tuple[str, str]]:
    response = await client.get(
        f"/api/v1/households/{household}/recommended-modules",
        headers={**headers, "Accept-Language": language},
    )
    assert response.status_code == 200, response.text
    return [(item["module"]["code"], item["reason"]) for item in response.json()["items"]]


async def test_recommendations_follow_the_households_gaps(
    client: Client, accounts: Accounts, team: dict[str, str]
) -> None:
    fresh = await new_household(client, team)
    default = await recommended(client, team, fresh, "en")
    assert [code for code, _ in default][:2] == ["vneid_level2", "scam_awareness"]
    assert len(default) == 6
    assert default[0][1] == "Recommended for every household; a survey visit tailors this list."

    # Nobody aged 14+ has level 2 (the child does not count): VNeID first.
    no_eid = await new_household(client, team)
    members = [member(1970, vneid="level1"), member(1975, vneid="none"), member(2015, vneid="none")]
    assert (await push(client, team, [submission(no_eid, members)]))[0]["status"] == "accepted"
    ranked = await recommended(client, team, no_eid)
    assert ranked[0] == (
        "vneid_level2",
        "Chưa ai từ 14 tuổi trở lên trong hộ có tài khoản VNeID mức 2.",
    )

    # Everyone has level 2; two adults want help with signatures and nobody has one.
    signatures = await new_household(client, team)
    members = [
        member(1970, help_wanted=["signature"]),
        member(1975, help_wanted=["signature", "cloud"]),
    ]
    await push(client, team, [submission(signatures, members)])
    ranked = await recommended(client, team, signatures, "en")
    assert ranked[0] == ("digital_signature", "Members who asked for help with this: 2.")
    # Nothing missing for VNeID and e-payment: they come last, as refreshers.
    assert {code for code, _ in ranked[-2:]} == {"vneid_level2", "safe_cashless_payment"}
    assert dict(ranked)["vneid_level2"] == "The household already does this: a refresher."

    # A well-equipped household without any cloud account.
    cloud = await new_household(client, team)
    members = [
        member(
            1980,
            cloud_accounts=0,
            digital_signature=True,
            eps_used=True,
            skills_trained=True,
        ),
        member(1982, cloud_accounts=0, digital_signature=True, eps_used=True, skills_trained=True),
    ]
    await push(client, team, [submission(cloud, members)])
    ranked = await recommended(client, team, cloud, "en")
    assert ranked[0] == ("cloud_backup", "Adults without a cloud account: 2.")

    # Scope like GET /households/{id}.
    other_team_id = await accounts.team(HAM_RONG)
    outsider = await accounts.headers(
        await accounts.create("team_member", HAM_RONG, team_id=other_team_id)
    )
    hidden = await client.get(f"/api/v1/households/{cloud}/recommended-modules", headers=outsider)
    assert hidden.status_code == 404
