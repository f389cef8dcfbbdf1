"""Field work in a team: assignments (and their scope in pull), team progress, and the
review round trip (needs_fix reaches the member's pull; their edit is pending again)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import openpyxl
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import HAC_THANH, HAM_RONG, Accounts, member, submission

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


class Ward:
    def __init__(self) -> None:
        self.team_id = ""
        self.official: dict[str, str] = {}
        self.a: dict[str, str] = {}
        self.b: dict[str, str] = {}
        self.a_id = ""
        self.b_id = ""
        self.hamlet = ""
        self.other_hamlet = ""


@pytest.fixture
async def ward(client: Client, accounts: Accounts) -> Ward:
    w = Ward()
    team_id = await accounts.team(HAC_THANH)
    w.team_id = str(team_id)
    w.official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    a = await accounts.create("team_member", HAC_THANH, team_id=team_id)
    b = await accounts.create("team_member", HAC_THANH, team_id=team_id)
    w.a_id, w.b_id = str(a.id), str(b.id)
    w.a, w.b = await accounts.headers(a), await accounts.headers(b)
    for attribute, name in (("hamlet", "Thôn 1"), ("other_hamlet", "Thôn 2")):
        created = await client.post(
            f"/api/v1/areas/{HAC_THANH}/hamlets", json={"name": name}, headers=w.official
        )
        assert created.status_code == 201, created.text
        setattr(w, attribute, created.json()["code"])
    return w


async def household(client: Client, headers: dict[str, str], hamlet: str | None = None) -> str:
    response = await client.post(
        "/api/v1/households",
        json={"wardCode": HAC_THANH, **({"hamletId": hamlet} if hamlet else {})},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    household_id: str = response.json()["id"]
    return household_id


async def pull_all(client: Client, headers: dict[str, str], limit: int) -> list[dict[str, Any]]:
    pages = []
    cursor = None
    while True:
        response = await client.get(
            "/api/v1/sync/pull",
            params={"limit": limit, **({"cursor": cursor} if cursor else {})},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages.append(page)
        cursor = page["nextCursor"]
        if not page["more"]:
            return pages


async def push(client: Client, headers: dict[str, str], items: list[dict[str, Any]]) -> list[Any]:
    response = await client.post("/api/v1/sync/push", json={"submissions": items}, headers=headers)
    assert response.status_code == 200, response.text
    results: list[Any] = response.json()["results"]
    return results


async def test_assignments_are_validated_scoped_and_audited(
    client: Client, ward: Ward, accounts: Accounts, db: asyncpg.Connection
) -> None:
    home = await household(client, ward.a)
    url = f"/api/v1/teams/{ward.team_id}/assignments"
    given = {
        "assignments": [
            {"memberId": ward.a_id, "hamletId": ward.hamlet},
            {"memberId": ward.b_id, "householdId": home},
        ]
    }
    response = await client.put(url, json=given, headers=ward.official)
    assert response.status_code == 200, response.text
    assert len(response.json()["assignments"]) == 2
    # Members read them; only the ward's officials set them.
    assert (await client.get(url, headers=ward.b)).json() == response.json()
    assert (await client.put(url, json=given, headers=ward.a)).status_code == 403
    other = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    assert (await client.put(url, json=given, headers=other)).status_code == 404
    assert (await client.get(url, headers=other)).status_code == 404

    outsider = await accounts.create(
        "team_member", HAC_THANH, team_id=await accounts.team(HAC_THANH)
    )
    elsewhere = await client.post(
        f"/api/v1/areas/{HAM_RONG}/hamlets", json={"name": "Thôn xa"}, headers=other
    )
    bad = {
        "assignments": [
            {"memberId": str(outsider.id), "hamletId": ward.hamlet},
            {"memberId": ward.a_id, "hamletId": elsewhere.json()["code"]},
            {"memberId": ward.a_id},
            {"memberId": ward.b_id, "householdId": home},
            {"memberId": ward.a_id, "householdId": home},
        ]
    }
    refused = await client.put(url, json=bad, headers=ward.official)
    assert refused.status_code == 400
    assert sorted((e["field"], e["code"]) for e in refused.json()["errors"]) == [
        ("assignments[0].memberId", "invalid"),
        ("assignments[1].hamletId", "not_found"),
        ("assignments[2]", "invalid"),
        ("assignments[4].householdId", "duplicate"),
    ]
    actions = await db.fetch("SELECT action FROM audit_log WHERE action = 'team_assignments.set'")
    assert len(actions) == 1


async def test_a_members_first_pull_brings_their_households_first(
    client: Client, ward: Ward
) -> None:
    in_hamlet = [await household(client, ward.official, ward.hamlet) for _ in range(3)]
    elsewhere = [await household(client, ward.official, ward.other_hamlet) for _ in range(4)]
    single = await household(client, ward.official)
    response = await client.put(
        f"/api/v1/teams/{ward.team_id}/assignments",
        json={
            "assignments": [
                {"memberId": ward.a_id, "hamletId": ward.hamlet},
                {"memberId": ward.a_id, "householdId": single},
            ]
        },
        headers=ward.official,
    )
    assert response.status_code == 200, response.text
    # A household registered later in an assigned hamlet is theirs too.
    later = await household(client, ward.official, ward.hamlet)
    mine = sorted([*in_hamlet, single, later])

    pages = await pull_all(client, ward.a, limit=3)
    first = [h["id"] for page in pages[:2] for h in page["households"]]
    assert first == mine  # the assigned households, in id order, before anything else
    assert pages[0]["surveyVersions"] == []
    everything = {h["id"] for page in pages for h in page["households"]}
    assert everything == {*mine, *elsewhere}  # the whole ward stays readable
    last = pages[-1]
    assert {(a["hamletId"], a["householdId"]) for a in last["assignments"]} == {
        (ward.hamlet, None),
        (None, single),
    }
    # The other member has no assignments: the stream as before.
    other = await pull_all(client, ward.b, limit=100)
    assert len(other) == 1
    assert {h["id"] for h in other[0]["households"]} == {*mine, *elsewhere}
    assert other[0]["assignments"] == []
    # An incremental pull is the stream only.
    again = await client.get(
        "/api/v1/sync/pull", params={"cursor": pages[-1]["nextCursor"]}, headers=ward.a
    )
    assert again.json()["households"] == []


def now_in_vietnam(days_ago: int = 0) -> str:
    moment = datetime.now(UTC) - timedelta(days=days_ago, minutes=5)
    return moment.isoformat()


async def test_team_progress_counts_visits_reviews_and_the_never_visited(
    client: Client, ward: Ward
) -> None:
    homes = [await household(client, ward.official, ward.hamlet) for _ in range(4)]
    unassigned = [await household(client, ward.official, ward.other_hamlet) for _ in range(2)]
    await client.put(
        f"/api/v1/teams/{ward.team_id}/assignments",
        json={"assignments": [{"memberId": ward.a_id, "hamletId": ward.hamlet}]},
        headers=ward.official,
    )
    today = datetime.now(UTC) + timedelta(hours=7)
    first = submission(homes[0], collected_at=now_in_vietnam())
    results = await push(
        client,
        ward.a,
        [
            first,
            submission(homes[1], collected_at=now_in_vietnam()),
            submission(unassigned[0], collected_at=now_in_vietnam()),
        ],
    )
    assert [r["status"] for r in results] == ["accepted"] * 3
    # A re-visit of the same household counts once.
    assert (
        await push(
            client,
            ward.a,
            [submission(homes[0], supersedes=first["id"], collected_at=now_in_vietnam())],
        )
    )[0]["status"] == "accepted"

    url = f"/api/v1/teams/{ward.team_id}/progress"
    response = await client.get(url, headers=ward.official)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["period"] == f"{today.year:04d}-{today.month:02d}"
    by_member = {m["memberId"]: m for m in body["members"]}
    a, b = by_member[ward.a_id], by_member[ward.b_id]
    assert (a["assignedHouseholds"], a["visitedThisMonth"], a["visitedThisWeek"]) == (4, 3, 3)
    assert a["waitingForReview"] == 3  # the current submissions of the three households
    assert a["neverVisited"] == 2
    assert (b["assignedHouseholds"], b["visitedThisMonth"], b["waitingForReview"]) == (0, 0, 0)
    assert body["unassignedNeverVisited"] == 1
    # An earlier month saw nothing; a future one is refused; members cannot read it.
    earlier = await client.get(url, params={"period": "2025-01"}, headers=ward.official)
    assert {m["visitedThisMonth"] for m in earlier.json()["members"]} == {0}
    assert (
        await client.get(url, params={"period": "2999-01"}, headers=ward.official)
    ).status_code == 400
    assert (
        await client.get(url, params={"period": "2025-13"}, headers=ward.official)
    ).status_code == 400
    assert (await client.get(url, headers=ward.a)).status_code == 403


async def test_review_round_trip(
    client: Client, ward: Ward, accounts: Accounts, db: asyncpg.Connection
) -> None:
    home = await household(client, ward.a)
    first = submission(home, collected_at=now_in_vietnam())
    assert (await push(client, ward.a, [first]))[0]["status"] == "accepted"
    url = f"/api/v1/submissions/{first['id']}/review"

    assert (
        await client.put(url, json={"status": "needs_fix"}, headers=ward.official)
    ).status_code == 400
    assert (await client.put(url, json={"status": "approved"}, headers=ward.a)).status_code == 403
    other = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    assert (await client.put(url, json={"status": "approved"}, headers=other)).status_code == 404

    comment = "Hộ có 4 người, phiếu ghi 3: kiểm tra lại."
    decided = await client.put(
        url, json={"status": "needs_fix", "comment": comment}, headers=ward.official
    )
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "needs_fix"

    pulled = (await pull_all(client, ward.a, limit=500))[-1]
    assert [(f["submissionId"], f["comment"]) for f in pulled["fixRequests"]] == [
        (first["id"], comment)
    ]
    # Only the member who collected it is asked.
    assert (await pull_all(client, ward.b, limit=500))[-1]["fixRequests"] == []
    progress = await client.get(f"/api/v1/teams/{ward.team_id}/progress", headers=ward.official)
    by_member = {m["memberId"]: m for m in progress.json()["members"]}
    assert by_member[ward.a_id]["waitingForReview"] == 0

    fixed = submission(
        home,
        [member(1980), member(1985), member(2012), member(1950)],
        supersedes=first["id"],
        collected_at=now_in_vietnam(),
    )
    assert (await push(client, ward.a, [fixed]))[0]["status"] == "accepted"
    pulled = (await pull_all(client, ward.a, limit=500))[-1]
    assert pulled["fixRequests"] == []
    progress = await client.get(f"/api/v1/teams/{ward.team_id}/progress", headers=ward.official)
    by_member = {m["memberId"]: m for m in progress.json()["members"]}
    assert by_member[ward.a_id]["waitingForReview"] == 1  # the edit is pending again

    approved = await client.put(
        f"/api/v1/submissions/{fixed['id']}/review",
        json={"status": "approved"},
        headers=ward.official,
    )
    assert approved.status_code == 200
    progress = await client.get(f"/api/v1/teams/{ward.team_id}/progress", headers=ward.official)
    assert {m["waitingForReview"] for m in progress.json()["members"]} == {0}
    audited = await db.fetch(
        "SELECT subject_id, detail FROM audit_log WHERE action = 'submission_reviewed' ORDER BY id"
    )
    assert [(row["subject_id"], row["detail"]["status"]) for row in audited] == [
        (first["id"], "needs_fix"),
        (fixed["id"], "approved"),
    ]


async def test_a_closed_month_keeps_its_figures(
    client: Client, ward: Ward, accounts: Accounts, db: asyncpg.Connection
) -> None:
    homes = [await household(client, ward.a) for _ in range(3)]
    july = "2025-07-10T09:00:00+07:00"
    results = await push(client, ward.a, [submission(h, collected_at=july) for h in homes[:2]])
    assert [r["status"] for r in results] == ["accepted", "accepted"]
    card_url = f"/api/v1/stats/areas/{HAC_THANH}"

    async def july_card() -> dict[str, Any]:
        response = await client.get(
            card_url,
            params={"period": "2025-07"},
            headers={**ward.official, "Accept-Language": "en"},
        )
        assert response.status_code == 200, response.text
        card: dict[str, Any] = response.json()
        return card

    before = await july_card()
    assert before["coverage"]["surveyed"] == 2
    assert "closed" not in before or before["closed"] is None

    close_url = f"/api/v1/stats/areas/{HAC_THANH}/periods/2025-07/close"
    assert (await client.post(close_url, headers=ward.a)).status_code == 403
    other = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    assert (await client.post(close_url, headers=other)).status_code == 404
    current = datetime.now(UTC) + timedelta(hours=7)
    this_month = (
        f"/api/v1/stats/areas/{HAC_THANH}/periods/{current.year:04d}-{current.month:02d}/close"
    )
    assert (await client.post(this_month, headers=ward.official)).status_code == 400
    closed = await client.post(close_url, headers={**ward.official, "Accept-Language": "en"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["text"].startswith("Closed on ")
    assert (await client.post(close_url, headers=ward.official)).status_code == 409

    # A late submission collected in July: July stays as closed, August is live.
    late = await push(client, ward.a, [submission(homes[2], collected_at=july)])
    assert late[0]["status"] == "accepted"
    after = await july_card()
    assert after["coverage"] == before["coverage"]
    assert [i["numerator"] for i in after["indicators"]] == [
        i["numerator"] for i in before["indicators"]
    ]
    assert after["closed"]["text"] == closed.json()["text"]
    august = await client.get(card_url, params={"period": "2025-08"}, headers=ward.official)
    assert august.json()["coverage"]["surveyed"] == 3
    assert august.json().get("closed") is None
    vi = await client.get(
        card_url, params={"period": "2025-07"}, headers={**ward.official, "Accept-Language": "vi"}
    )
    assert vi.json()["closed"]["text"].startswith("Đã chốt ngày ")
    audited = await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'period_closed'")
    assert audited == 1
    # The officials' report of the closed month says so on its summary sheet.
    report = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/report.xlsx",
        params={"period": "2025-07"},
        headers={**ward.official, "Accept-Language": "en"},
    )
    assert report.status_code == 200, report.text
    summary = openpyxl.load_workbook(io.BytesIO(report.content)).worksheets[0]
    cover = {row[0]: row[1] for row in summary.iter_rows(max_col=2, values_only=True)}
    assert cover["Month closed"] == closed.json()["text"]
