"""The visit plan: hand-built wards whose right order is known, reasons in vi and en,
pagination, scope, the stale cut-off setting, and the plan in a team member's pull."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import HAC_THANH, HAM_RONG, Account, Accounts, member, submission

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
PLAN = f"/api/v1/areas/{HAC_THANH}/visit-plan"
SETTINGS = f"/api/v1/areas/{HAC_THANH}/settings"
YEAR = datetime.now(UTC).year


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


def adult(**answers: object) -> dict[str, object]:
    """An adult who is counted in ADULT_EPS and ADULT_EID unless told otherwise."""
    return member(YEAR - 40, **{"eps_used": True, **answers})


def child(**answers: object) -> dict[str, object]:
    return member(YEAR - 10, **{"eps_used": False, "vneid": "none", **answers})


class Ward:
    """Phường Hạc Thành with a team member, a ward official and their headers."""

    def __init__(self, client: Client, accounts: Accounts) -> None:
        self.client = client
        self.accounts = accounts

    async def setup(self) -> Ward:
        self.team_id = await self.accounts.team(HAC_THANH)
        self.member = await self.accounts.create("team_member", HAC_THANH, team_id=self.team_id)
        self.official = await self.accounts.create("ward_official", HAC_THANH)
        self.member_headers = await self.accounts.headers(self.member)
        self.official_headers = await self.accounts.headers(self.official)
        return self

    async def household(
        self, label: str, *, headers: dict[str, str] | None = None, hamlet: str | None = None
    ) -> str:
        body: dict[str, Any] = {"wardCode": HAC_THANH, "label": label}
        if hamlet is not None:
            body["hamletId"] = hamlet
        response = await self.client.post(
            "/api/v1/households", json=body, headers=headers or self.member_headers
        )
        assert response.status_code == 201, response.text
        household_id: str = response.json()["id"]
        return household_id

    async def survey(
        self,
        household: str,
        members: list[dict[str, object]],
        days: int,
        supersedes: str | None = None,
    ) -> None:
        item = submission(household, members, collected_at=days_ago(days), supersedes=supersedes)
        response = await self.client.post(
            "/api/v1/sync/push", json={"submissions": [item]}, headers=self.member_headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["status"] == "accepted", response.text

    async def hamlet(self, name: str) -> str:
        response = await self.client.post(
            f"/api/v1/areas/{HAC_THANH}/hamlets", json={"name": name}, headers=self.official_headers
        )
        assert response.status_code == 201, response.text
        code: str = response.json()["code"]
        return code

    async def plan(
        self,
        headers: dict[str, str] | None = None,
        language: str = "en",
        **params: Any,
    ) -> list[dict[str, Any]]:
        """Every row of the plan, page after page."""
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            response = await self.client.get(
                PLAN,
                params=query,
                headers={**(headers or self.official_headers), "Accept-Language": language},
            )
            assert response.status_code == 200, response.text
            page = response.json()
            rows += page["items"]
            cursor = page["nextCursor"]
            if cursor is None:
                return rows


async def only_lagging(db: asyncpg.Connection, targets: dict[str, float]) -> None:
    """Ward targets: the given ones, every other indicator's 0 (met whatever the figures)."""
    codes = [row["code"] for row in await db.fetch("SELECT code FROM indicator")]
    await db.executemany(
        """INSERT INTO target (area_id, indicator, year, value)
           SELECT id, $2, 2020, $3 FROM area WHERE scheme = 'vn2025' AND code = $1""",
        [(HAC_THANH, code, targets.get(code, 0.0)) for code in codes],
    )


@pytest.fixture
async def ward(client: Client, accounts: Accounts) -> Ward:
    return await Ward(client, accounts).setup()


@pytest.fixture
async def built(ward: Ward, db: asyncpg.Connection) -> dict[str, str]:
    """A ward whose right order is known. Lagging: ADULT_EPS (target 0.9, most adults have
    not used online public services: the furthest behind), then ADULT_EID (target 1.0, a
    few members without level 2); every other indicator is met (target 0)."""
    await only_lagging(db, {"ADULT_EPS": 0.9, "ADULT_EID": 1.0})
    h: dict[str, str] = {}
    for label in "ABCDEFGHIJ":
        h[label] = await ward.household(f"Nhà {label}")
    # A, B: never surveyed (A registered first). C: 8 months ago; D: 12 months ago (stale).
    await ward.survey(h["C"], [adult(), adult()], days=250)
    await ward.survey(h["D"], [adult(), adult()], days=380)
    # E: one adult asks for help with online public services (furthest from target); the
    # child asking too is below the indicator's age and does not count.
    await ward.survey(
        h["E"],
        [adult(eps_used=False, help_wanted=["eps"]), adult(), child(help_wanted=["eps"])],
        days=20,
    )
    # F: two members without level-2 VNeID ask for help with it (the second indicator):
    # after E although more members asked.
    await ward.survey(
        h["F"],
        [adult(vneid="level1", help_wanted=["vneid"]), adult(vneid="none", help_wanted=["vneid"])],
        days=20,
    )
    # G: asks for help with digital signatures, which is met: not a help_wanted row; but no
    # adult uses online public services, so it misses the furthest-behind indicator (3 of 3).
    await ward.survey(
        h["G"],
        [
            adult(eps_used=False, help_wanted=["signature"]),
            adult(eps_used=False),
            adult(eps_used=False),
        ],
        days=20,
    )
    # H: up to date and counted in every lagging indicator: not in the plan.
    await ward.survey(h["H"], [adult(), adult(), child(vneid="level2")], days=20)
    # I: one adult of two without level-2 VNeID (the second indicator).
    await ward.survey(h["I"], [adult(vneid="level1"), adult()], days=20)
    # J: two adults of three have not used online public services (after G: fewer members).
    await ward.survey(h["J"], [adult(eps_used=False), adult(eps_used=False), adult()], days=20)
    # Many adults without online public services elsewhere keep ADULT_EPS furthest behind.
    return h


EXPECTED = [
    ("A", "never_surveyed", None, None, "Never surveyed."),
    ("B", "never_surveyed", None, None, "Never surveyed."),
    ("D", "stale", None, None, "Last surveyed 12 months ago."),
    ("C", "stale", None, None, "Last surveyed 8 months ago."),
    (
        "E",
        "help_wanted",
        "ADULT_EPS",
        1,
        "Members asking for help with online public services, the indicator furthest from "
        "target: 1.",
    ),
    (
        "F",
        "help_wanted",
        "ADULT_EID",
        2,
        "Members asking for help with level-2 VNeID, an indicator behind target: 2.",
    ),
    (
        "G",
        "misses_indicator",
        "ADULT_EPS",
        3,
        "No adult in the household uses online public services.",
    ),
    (
        "J",
        "misses_indicator",
        "ADULT_EPS",
        2,
        "Adults not using online public services (12 months): 2 of 3.",
    ),
    (
        "I",
        "misses_indicator",
        "ADULT_EID",
        1,
        "Members aged 14 or over without level-2 VNeID: 1 of 2.",
    ),
]


async def test_the_plan_is_in_the_known_order(ward: Ward, built: dict[str, str]) -> None:
    by_id = {household: label for label, household in built.items()}
    rows = await ward.plan()
    assert [by_id[r["householdId"]] for r in rows] == [e[0] for e in EXPECTED]
    assert "H" not in [by_id[r["householdId"]] for r in rows]  # up to date: left out


async def test_each_row_says_why_it_is_there(ward: Ward, built: dict[str, str]) -> None:
    rows = await ward.plan()
    assert [(r["reason"], r["indicator"], r["members"], r["reasonText"]) for r in rows] == [
        e[1:] for e in EXPECTED
    ]


async def test_reasons_in_vietnamese(ward: Ward, built: dict[str, str]) -> None:
    texts = [r["reasonText"] for r in await ward.plan(language="vi")]
    assert texts == [
        "Chưa từng được khảo sát.",
        "Chưa từng được khảo sát.",
        "Khảo sát lần cuối cách đây 12 tháng.",
        "Khảo sát lần cuối cách đây 8 tháng.",
        "Số thành viên cần hỗ trợ về dịch vụ công trực tuyến, chỉ tiêu xa mục tiêu nhất: 1.",
        "Số thành viên cần hỗ trợ về VNeID mức 2, một chỉ tiêu chưa đạt mục tiêu: 2.",
        "Không người trưởng thành nào trong hộ sử dụng dịch vụ công trực tuyến.",
        "Người trưởng thành chưa dùng dịch vụ công trực tuyến (12 tháng): 2/3.",
        "Thành viên từ 14 tuổi trở lên chưa có VNeID mức 2: 1/2.",
    ]


async def test_rows_show_what_the_team_already_reads_never_answers(
    ward: Ward, built: dict[str, str]
) -> None:
    rows = await ward.plan()
    assert set(rows[0]) == {
        "householdId",
        "label",
        "hamletId",
        "hamletName",
        "lastVisitAt",
        "reason",
        "reasonText",
        "indicator",
        "members",
        "ownHamlet",
    }
    assert rows[0]["label"] == "Nhà A"
    assert rows[0]["lastVisitAt"] is None
    stale = datetime.fromisoformat(rows[3]["lastVisitAt"])
    assert timedelta(days=249) < datetime.now(UTC) - stale < timedelta(days=251)


async def test_pages_follow_each_other_without_gaps(ward: Ward, built: dict[str, str]) -> None:
    whole = await ward.plan(limit=200)
    paged = await ward.plan(limit=2)
    assert paged == whole
    first = await ward.client.get(PLAN, params={"limit": 4}, headers=ward.official_headers)
    assert len(first.json()["items"]) == 4
    assert first.json()["nextCursor"] is not None


async def test_a_bad_cursor_or_member_is_a_400(ward: Ward, built: dict[str, str]) -> None:
    bad_cursor = await ward.client.get(
        PLAN, params={"cursor": "bm90LWEtY3Vyc29y"}, headers=ward.official_headers
    )
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"
    stranger = await ward.client.get(
        PLAN, params={"member": str(uuid.uuid4())}, headers=ward.official_headers
    )
    assert stranger.status_code == 400
    assert stranger.json()["errors"][0]["code"] == "unknown_member"
    not_a_member = await ward.client.get(
        PLAN, params={"member": str(ward.official.id)}, headers=ward.official_headers
    )
    assert not_a_member.status_code == 400


async def test_the_setting_moves_the_stale_cut_off(ward: Ward, built: dict[str, str]) -> None:
    by_id = {household: label for label, household in built.items()}
    changed = await ward.client.put(
        SETTINGS, json={"staleAfterMonths": 10}, headers=ward.official_headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"wardCode": HAC_THANH, "staleAfterMonths": 10}
    rows = await ward.plan()
    stale = [by_id[r["householdId"]] for r in rows if r["reason"] == "stale"]
    # C (8 months, every lagging indicator counted) is now up to date: out of the plan.
    assert stale == ["D"]
    assert "C" not in [by_id[r["householdId"]] for r in rows]
    await ward.client.put(SETTINGS, json={"staleAfterMonths": 7}, headers=ward.official_headers)
    rows = await ward.plan()
    assert [by_id[r["householdId"]] for r in rows if r["reason"] == "stale"] == ["D", "C"]


async def test_settings_are_validated_audited_and_scoped(
    ward: Ward, accounts: Accounts, db: asyncpg.Connection
) -> None:
    read = await ward.client.get(SETTINGS, headers=ward.member_headers)
    assert read.json() == {"wardCode": HAC_THANH, "staleAfterMonths": 6}
    for value in (0, 61, "six"):
        refused = await ward.client.put(
            SETTINGS, json={"staleAfterMonths": value}, headers=ward.official_headers
        )
        assert refused.status_code == 400, value
        assert refused.json()["errors"][0]["field"] == "staleAfterMonths"
    by_member = await ward.client.put(
        SETTINGS, json={"staleAfterMonths": 3}, headers=ward.member_headers
    )
    assert by_member.status_code == 403
    other = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    elsewhere = await ward.client.put(SETTINGS, json={"staleAfterMonths": 3}, headers=other)
    assert elsewhere.status_code == 404
    assert (await ward.client.get(SETTINGS, headers=other)).status_code == 404
    done = await ward.client.put(
        SETTINGS, json={"staleAfterMonths": 3}, headers=ward.official_headers
    )
    assert done.status_code == 200
    audit = await db.fetchrow(
        "SELECT actor_id, subject_id, detail FROM audit_log WHERE action = 'ward_settings.set'"
    )
    assert audit["actor_id"] == ward.official.id
    assert audit["subject_id"] == HAC_THANH
    assert audit["detail"] == {"staleAfterMonths": 3, "previous": 6}
    assert (await ward.client.get(SETTINGS, headers=ward.member_headers)).json()[
        "staleAfterMonths"
    ] == 3


async def test_scope(ward: Ward, accounts: Accounts) -> None:
    other_ward = await ward.client.get(
        f"/api/v1/areas/{HAM_RONG}/visit-plan", headers=ward.member_headers
    )
    assert other_ward.status_code == 404
    assert other_ward.json()["code"] == "area_not_found"
    unknown = await ward.client.get("/api/v1/areas/99999/visit-plan", headers=ward.member_headers)
    assert unknown.status_code == 404
    province = await ward.client.get("/api/v1/areas/38/visit-plan", headers=ward.member_headers)
    assert province.status_code == 404
    for role, area in (("province_official", "38"), ("ward_official", HAM_RONG), ("admin", None)):
        headers = await accounts.headers(await accounts.create(role, area))
        assert (await ward.client.get(PLAN, headers=headers)).status_code == 404, role
    household = await ward.household("Nhà R")
    resident = await resident_of(ward, accounts, household)
    refused = await ward.client.get(PLAN, headers=resident)
    assert refused.status_code == 403
    assert (await ward.client.get(PLAN, headers=ward.member_headers)).status_code == 200


async def resident_of(ward: Ward, accounts: Accounts, household: str) -> dict[str, str]:
    invite = await ward.client.post(
        "/api/v1/invites", json={"householdId": household}, headers=ward.member_headers
    )
    assert invite.status_code == 201, invite.text
    registered = await ward.client.post(
        "/api/v1/auth/register",
        json={"inviteCode": invite.json()["code"], "phone": "0987654321", "password": "pw-123456"},
    )
    assert registered.status_code == 201, registered.text
    return {"Authorization": f"Bearer {registered.json()['accessToken']}"}


async def test_a_members_own_hamlets_come_first(ward: Ward, accounts: Accounts) -> None:
    """Accounts carry no hamlet: a member's hamlets are those of the households they
    registered or whose current survey they collected."""
    dong, tay = await ward.hamlet("Thôn Đông"), await ward.hamlet("Thôn Tây")
    other: Account = await accounts.create("team_member", HAC_THANH, team_id=ward.team_id)
    other_headers = await accounts.headers(other)
    q = await ward.household("Q", headers=other_headers, hamlet=tay)
    r = await ward.household("R", headers=other_headers, hamlet=dong)
    s = await ward.household("S", headers=other_headers)  # no hamlet
    p = await ward.household("P", hamlet=dong)  # registered by ward.member
    # The official without a member: by registration time.
    rows = await ward.plan()
    assert [row["householdId"] for row in rows] == [q, r, s, p]
    assert not any(row["ownHamlet"] for row in rows)
    # The member (by default, themselves): Thôn Đông first, whoever registered there.
    mine = await ward.plan(headers=ward.member_headers)
    assert [row["householdId"] for row in mine] == [r, p, q, s]
    assert [row["ownHamlet"] for row in mine] == [True, True, False, False]
    assert mine[0]["hamletName"] == "Thôn Đông"
    # An official looking at the other member's plan: both hamlets are theirs.
    theirs = await ward.plan(member=str(other.id))
    assert [row["householdId"] for row in theirs] == [q, r, p, s]
    # Pages keep the grouping.
    assert await ward.plan(headers=ward.member_headers, limit=1) == mine


async def test_the_plan_is_in_the_team_members_pull(
    ward: Ward, built: dict[str, str], accounts: Accounts
) -> None:
    online = await ward.plan(headers=ward.member_headers, language="vi")
    response = await ward.client.get(
        "/api/v1/sync/pull", headers={**ward.member_headers, "Accept-Language": "vi"}
    )
    page = response.json()
    assert page["more"] is False
    assert page["visitPlan"] == {"items": online, "nextCursor": None}
    # Only the last page of a pull carries it; officials' pulls never do.
    partial = await ward.client.get(
        "/api/v1/sync/pull", params={"limit": 1}, headers=ward.member_headers
    )
    assert partial.json()["more"] is True
    assert partial.json()["visitPlan"] is None
    official = await ward.client.get("/api/v1/sync/pull", headers=ward.official_headers)
    assert official.json()["visitPlan"] is None


async def test_a_new_survey_moves_its_household(
    ward: Ward, built: dict[str, str], db: asyncpg.Connection
) -> None:
    """Facts are computed once per submission: a re-visit gets its own, and facts kept
    under other indicator rules are recomputed."""
    by_id = {household: label for label, household in built.items()}
    assert [by_id[r["householdId"]] for r in await ward.plan()] == [e[0] for e in EXPECTED]
    head = await db.fetchval(
        "SELECT current_submission_id FROM household WHERE id = $1", uuid.UUID(built["I"])
    )
    # I's member got level-2 VNeID: I leaves the plan (counted in every lagging indicator).
    await ward.survey(built["I"], [adult(), adult()], days=1, supersedes=str(head))
    after = [by_id[r["householdId"]] for r in await ward.plan()]
    assert after == [e[0] for e in EXPECTED if e[0] != "I"]
    assert await db.fetchval("SELECT count(*) FROM visit_fact") == 9  # 8 surveyed + 1 re-visit
    # Facts counted under other rules (a catalog changed by a migration) are recomputed.
    await db.execute("UPDATE visit_fact SET catalog_key = 0, missing = 0, asking = 0")
    assert [by_id[r["householdId"]] for r in await ward.plan()] == after
    # Only the superseded visit's facts, which no plan reads, keep the old key.
    assert await db.fetchval("SELECT count(*) FROM visit_fact WHERE catalog_key = 0") == 1


async def test_nothing_lagging_leaves_never_surveyed_and_stale(
    ward: Ward, db: asyncpg.Connection
) -> None:
    await only_lagging(db, {})
    fresh = await ward.household("fresh")
    await ward.survey(fresh, [adult(eps_used=False, help_wanted=["eps"])], days=10)
    old = await ward.household("old")
    await ward.survey(old, [adult()], days=400)
    never = await ward.household("never")
    rows = await ward.plan()
    assert [(r["householdId"], r["reason"]) for r in rows] == [
        (never, "never_surveyed"),
        (old, "stale"),
    ]
