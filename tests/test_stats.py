"""Ward statistics: counts by hand, rebuild equivalence, periods, targets, suppression,
exports in both locales, and the public card."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import random
import tracemalloc
from datetime import date, timedelta
from typing import Any

import asyncpg
import openpyxl
import pytest
from babel.dates import format_date
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.config import Settings
from api.db import connect, create_pool
from api.i18n import format_number, format_rate
from api.stats.catalog import load_catalog
from api.stats.counters import FOLD_SQL, fold, rebuild
from api.stats.exports import csv_stream, export_rows, on_connection
from api.stats.folder import LEADER_KEY
from api.stats.keys import cell_key_secret, record_keys
from api.stats.periods import add_months, month_start, today
from api.stats.places import Places
from tests.conftest import (
    BA_DINH,
    HA_NOI,
    HAC_THANH,
    HAM_RONG,
    THANH_HOA,
    Accounts,
    member,
    submission,
)
from tests.test_sums import as_defined

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
JULY = "2025-07-10T09:00:00+07:00"


async def ward_team(accounts: Accounts, ward: str) -> dict[str, str]:
    team_id = await accounts.team(ward)
    return await accounts.headers(await accounts.create("team_member", ward, team_id=team_id))


async def new_household(client: Client, headers: dict[str, str], ward: str) -> str:
    response = await client.post("/api/v1/households", json={"wardCode": ward}, headers=headers)
    assert response.status_code == 201, response.text
    household_id: str = response.json()["id"]
    return household_id


async def push(client: Client, headers: dict[str, str], items: list[dict[str, Any]]) -> None:
    response = await client.post("/api/v1/sync/push", json={"submissions": items}, headers=headers)
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["accepted"] * len(items)


async def card(
    client: Client, headers: dict[str, str], code: str, period: str = "current", **extra: str
) -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/stats/areas/{code}", params={"period": period}, headers={**headers, **extra}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def cells(body: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {i["code"]: (i["numerator"], i["denominator"]) for i in body["indicators"]}


async def delete_through_resident(client: Client, team: dict[str, str], household: str) -> None:
    invite = await client.post("/api/v1/invites", json={"householdId": household}, headers=team)
    assert invite.status_code == 201, invite.text
    registered = await client.post(
        "/api/v1/auth/register",
        json={
            "inviteCode": invite.json()["code"],
            "phone": f"03{random.randint(10_000_000, 99_999_999)}",
            "password": "resident pass",
        },
    )
    assert registered.status_code == 201, registered.text
    resident = {"Authorization": f"Bearer {registered.json()['accessToken']}"}
    deleted = await client.delete("/api/v1/me/household", headers=resident)
    assert deleted.status_code == 204, deleted.text


async def test_every_indicator_counts_as_computed_by_hand(
    client: Client, accounts: Accounts
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    h1, h2, h3, h4, h5 = [await new_household(client, team, HAC_THANH) for _ in range(5)]
    first_h3 = submission(
        h3, [member(1970, smartphone=False, vneid="none", cloud_accounts=0, epay=False)],
        collected_at=JULY, hh_broadband="none", hh_smart_devices=0,
    )  # fmt: skip
    await push(
        client,
        team,
        [
            submission(
                h1,
                [
                    member(1990, smartphone=True, vneid="level2", cloud_accounts=2,
                           digital_signature=True, epay=True, eps_used=True, skills_trained=True),
                    member(2010, smartphone=True, vneid="level1", cloud_accounts=1,
                           digital_signature=False, epay=True, eps_used=False),
                    member(2011, smartphone=True, vneid="level2", cloud_accounts=3,
                           epay=False, skills_trained=True),
                ],
                collected_at=JULY, hh_broadband="fibre", hh_smart_devices=2,
            ),
            submission(
                h2,
                [member(1950, smartphone=False, vneid="none", cloud_accounts=0, epay=False)],
                collected_at=JULY, hh_broadband="mobile_only", hh_smart_devices=0,
            ),
            first_h3,
            submission(h4, [member(1980), member(1982)], collected_at=JULY),
        ],
    )  # fmt: skip
    # A re-visit replaces H3's answers; H4's resident deletes their data.
    await push(
        client,
        team,
        [
            submission(
                h3,
                [
                    member(1980, smartphone=True, vneid="level2", cloud_accounts=1,
                           digital_signature=False, epay=True, eps_used=True),
                    member(2012, smartphone=True, vneid="level2", cloud_accounts=0),
                ],
                supersedes=first_h3["id"], collected_at="2025-07-20T10:00:00+07:00",
                hh_broadband="other_fixed", hh_smart_devices=1,
            )
        ],
    )  # fmt: skip
    await delete_through_resident(client, team, h4)
    del h5  # registered, never surveyed

    # Ages in 2025: 35, 15, 14 | 75 | 45, 13. Adults (≥ 15): 4; eligible for e-ID (≥ 14): 5.
    expected = {
        "ADULT_SMARTPHONE": (3, 4),
        "HH_SMART_DEVICE": (2, 3),
        "HH_BROADBAND": (2, 3),
        "ADULT_EID": (3, 5),
        "ADULT_CLOUD": (4, 4),
        "ADULT_DIGSIG": (1, 4),
        "ADULT_EPAY": (3, 4),
        "ADULT_EPS": (2, 4),
        "DIGSKILL": (1, 4),
    }
    body = await card(client, official, HAC_THANH)
    assert cells(body) == expected
    assert body["exact"] is True  # their own ward
    assert body["coverage"] == {"surveyed": 3, "registered": 4, "value": 0.75, "suppressed": False}
    by_code = {i["code"]: i for i in body["indicators"]}
    assert by_code["ADULT_SMARTPHONE"]["value"] == 0.75
    assert by_code["ADULT_SMARTPHONE"]["target"] == 0.8
    assert by_code["ADULT_SMARTPHONE"]["gap"] == 0.05
    assert by_code["ADULT_CLOUD"]["unit"] == "ratio"
    assert not any(i["suppressed"] for i in body["indicators"])  # their own ward: exact
    assert body["area"] == {"code": HAC_THANH, "name": "Phường Hạc Thành", "level": "ward"}

    # As of the end of July 2025 the visits count, H5 (registered today) does not yet.
    july = await card(client, official, HAC_THANH, "2025-07")
    assert cells(july) == expected
    assert july["coverage"] == {"surveyed": 3, "registered": 3, "value": 1.0, "suppressed": False}
    june = await card(client, official, HAC_THANH, "2025-06")
    assert cells(june)["ADULT_SMARTPHONE"] == (0, 0)
    assert june["coverage"]["registered"] == 0
    quarter = await card(client, official, HAC_THANH, "2025-Q3")
    assert cells(quarter) == expected

    # The province is the sum of its wards; protected for its official: 3 to 5 people are
    # perturbed to 0 or to 5 and more (withheld under 10), never published as 1 to 4.
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    province_card = await card(client, province, THANH_HOA)
    assert province_card["exact"] is False
    shown = [
        count
        for i in province_card["indicators"]
        for count in (i["numerator"], i["denominator"])
        if count is not None
    ]
    assert not [count for count in shown if 1 <= count <= 4]
    assert all(i["suppressed"] or i["denominator"] == 0 for i in province_card["indicators"])
    # Learning modules are on today's card: the six starter modules, nobody trained yet.
    assert [m["code"] for m in body["learning"]["modules"]] == sorted(
        m["code"] for m in body["learning"]["modules"]
    )
    assert len(body["learning"]["modules"]) == 6
    assert all(m["learners"] == 0 for m in body["learning"]["modules"])
    assert july["learning"] is None  # counted today only
    english = await card(client, official, HAC_THANH, **{"Accept-Language": "en"})
    assert english["indicators"][0]["name"] == "Adults owning a smartphone"
    assert body["indicators"][0]["name"] == "Người trưởng thành có điện thoại thông minh"


async def counters(db: asyncpg.Connection) -> tuple[list[Any], list[Any]]:
    """Every counter with the unfolded log, as readers see them, shards added up."""
    current = await db.fetch(
        """SELECT area_id, parent_id, measure, sum(numerator), sum(denominator),
                  sum(numerator_key), sum(denominator_key)
           FROM stat_current_live GROUP BY 1, 2, 3
           HAVING sum(numerator) <> 0 OR sum(denominator) <> 0
               OR sum(numerator_key) <> 0 OR sum(denominator_key) <> 0 ORDER BY 1, 3"""
    )
    deltas = await db.fetch(
        """SELECT area_id, measure, month, sum(numerator), sum(denominator),
                  sum(numerator_key), sum(denominator_key)
           FROM stat_delta_live GROUP BY 1, 2, 3
           HAVING sum(numerator) <> 0 OR sum(denominator) <> 0
               OR sum(numerator_key) <> 0 OR sum(denominator_key) <> 0 ORDER BY 1, 2, 3"""
    )
    return [tuple(r) for r in current], [tuple(r) for r in deltas]


@pytest.fixture
async def folds_here(db: asyncpg.Connection) -> None:
    """The test folds, not the app: it holds the folders' lock before the app starts (list
    this fixture before ``client``). Release the lock to let the app's folder lead."""
    assert await db.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY)


async def log_folded(db: asyncpg.Connection, seconds: float = 10.0) -> None:
    """Wait for an app's folder to empty the log (it folds every half second)."""
    for _ in range(int(seconds / 0.05)):
        if not await db.fetchval("SELECT count(*) FROM stat_log"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the log was not folded in time")


async def fold_killed_midway(dsn: str, db: asyncpg.Connection) -> None:
    """A folder that deleted the log and added it to the counters, and died before its
    commit: readers see the same figures meanwhile and after."""
    before = await counters(db)
    folder = await connect(dsn)
    try:
        await folder.execute("BEGIN")
        await folder.execute("SET LOCAL congdongso.folding = 'on'")
        assert await folder.fetch(FOLD_SQL), "the log had rows to fold"
        assert await counters(db) == before
        pid = folder.get_server_pid()
        assert await db.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        folder.terminate()
    assert await counters(db) == before
    assert await db.fetchval("SELECT count(*) FROM stat_log") > 0


async def test_rebuild_equals_the_incremental_counters(
    folds_here: None,
    client: Client,
    accounts: Accounts,
    db: asyncpg.Connection,
    settings: Settings,
    dsn: str,
) -> None:
    rng = random.Random(411)
    teams = {ward: await ward_team(accounts, ward) for ward in (HAC_THANH, HAM_RONG, BA_DINH)}
    heads: dict[str, tuple[str, str, str]] = {}  # household → (ward, head id, collected)
    for step in range(120):
        ward = rng.choice(list(teams))
        team = teams[ward]
        own = [h for h, (w, _, _) in heads.items() if w == ward]
        month = rng.randint(1, 34)  # January 2024 … October 2026
        collected = f"{2024 + (month - 1) // 12}-{(month - 1) % 12 + 1:02d}-15T08:00:00+07:00"
        people = [
            member(rng.randint(1940, 2015), smartphone=rng.random() < 0.7,
                   vneid=rng.choice(["none", "level1", "level2"]),
                   cloud_accounts=rng.randint(0, 3), digital_signature=rng.random() < 0.3,
                   epay=rng.random() < 0.6, eps_used=rng.random() < 0.4,
                   skills_trained=rng.random() < 0.5)
            for _ in range(rng.randint(1, 5))
        ]  # fmt: skip
        answers = {
            "hh_broadband": rng.choice(["fibre", "other_fixed", "mobile_only", "none"]),
            "hh_smart_devices": rng.randint(0, 4),
        }
        action = rng.random()
        if own and action < 0.35:  # a re-visit, sometimes with an earlier clock
            household = rng.choice(own)
            _, head, _ = heads[household]
            item = submission(household, people, supersedes=head, collected_at=collected, **answers)
            await push(client, team, [item])
            heads[household] = (ward, str(item["id"]), collected)
        elif own and action < 0.42 and step % 3 == 0:
            household = rng.choice(own)
            await delete_through_resident(client, team, household)
            del heads[household]
        else:
            household = await new_household(client, team, ward)
            if rng.random() < 0.85:
                item = submission(household, people, collected_at=collected, **answers)
                await push(client, team, [item])
                heads[household] = (ward, str(item["id"]), collected)
        if step % 17 == 16:
            await fold(db)
        elif step == 90:
            await fold_killed_midway(dsn, db)
    incremental = await counters(db)
    assert incremental[0], "the mix produced counters"
    # The province row is the sum of its wards, today and in every month.
    current = incremental[0]
    provinces = {
        (area, measure): tuple(rest) for area, parent, measure, *rest in current if not parent
    }
    summed: dict[tuple[int, str], tuple[int, ...]] = {}
    for _, parent, measure, *rest in current:
        if parent:
            before = summed.get((parent, measure), (0, 0, 0, 0))
            summed[(parent, measure)] = tuple(a + b for a, b in zip(before, rest, strict=True))
    assert provinces == summed
    # Key sums are kept too: the rebuild computes the same from the stored submissions.
    assert any(row[5] for row in current)
    # The app's folder takes over and empties the log; the figures stay.
    await db.execute("SELECT pg_advisory_unlock($1)", LEADER_KEY)
    await log_folded(db)
    assert await counters(db) == incremental
    # The provinces' kept sums, followed fold by fold, read as perturbing every ward would.
    ends = [add_months(date(2024, 1, 1), month) for month in range(-1, 36, 5)]
    provinces = [
        r[0]
        for r in await db.fetch(
            "SELECT id FROM area WHERE scheme = 'vn2025' AND code = ANY($1)", [THANH_HOA, HA_NOI]
        )
    ]
    await as_defined(db, ends, provinces)
    households = await rebuild(db, await load_catalog(db, record_keys(settings)))
    assert households == await db.fetchval("SELECT count(*) FROM household")
    assert await counters(db) == incremental
    await as_defined(db, ends, provinces)  # and refilled by the rebuild


async def test_targets_are_inherited_and_overridden(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    other = await accounts.headers(await accounts.create("province_official", "01"))
    ward = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    admin = await accounts.headers(await accounts.create("admin"))

    def target(body: dict[str, Any], code: str = "ADULT_SMARTPHONE") -> Any:
        return next(i["target"] for i in body["indicators"] if i["code"] == code)

    assert target(await card(client, ward, HAC_THANH)) == 0.8  # the national default
    put = await client.put(
        f"/api/v1/targets/{THANH_HOA}/ADULT_SMARTPHONE",
        json={"year": 2026, "value": 0.85},
        headers=province,
    )
    assert put.status_code == 200, put.text
    assert put.json() == {
        "areaCode": THANH_HOA, "indicator": "ADULT_SMARTPHONE", "year": 2026, "value": 0.85
    }  # fmt: skip
    assert target(await card(client, ward, HAC_THANH)) == 0.85  # the province's, inherited
    assert target(await card(client, ward, HAC_THANH, "2025")) == 0.8  # 2025: still national
    assert target(await card(client, admin, HAM_RONG)) == 0.85
    assert target(await card(client, admin, BA_DINH)) == 0.8  # another province
    ward_put = await client.put(
        f"/api/v1/targets/{HAC_THANH}/ADULT_SMARTPHONE",
        json={"year": 2025, "value": 0.9},
        headers=province,
    )
    assert ward_put.status_code == 200
    assert target(await card(client, ward, HAC_THANH)) == 0.9  # the nearest area wins
    assert target(await card(client, admin, HAM_RONG)) == 0.85
    # Audited with the previous value; out of scope is 404; a ward official may not set one.
    audit = await db.fetch(
        "SELECT subject_id, detail FROM audit_log WHERE action = 'target.set' ORDER BY id"
    )
    assert [(r["subject_id"], r["detail"]["value"]) for r in audit] == [
        (THANH_HOA, 0.85), (HAC_THANH, 0.9)
    ]  # fmt: skip
    again = await client.put(
        f"/api/v1/targets/{THANH_HOA}/ADULT_SMARTPHONE",
        json={"year": 2026, "value": 0.95},
        headers=province,
    )
    assert again.status_code == 200
    assert (await db.fetchval(
        "SELECT detail FROM audit_log WHERE action = 'target.set' ORDER BY id DESC LIMIT 1"
    ))["previous"] == 0.85  # fmt: skip
    assert (
        await client.put(
            f"/api/v1/targets/{THANH_HOA}/ADULT_SMARTPHONE",
            json={"year": 2026, "value": 0.9},
            headers=other,
        )
    ).status_code == 404
    assert (
        await client.put(
            f"/api/v1/targets/{HAC_THANH}/ADULT_SMARTPHONE",
            json={"year": 2026, "value": 0.9},
            headers=ward,
        )
    ).status_code == 403
    too_big = await client.put(
        f"/api/v1/targets/{THANH_HOA}/ADULT_EID",
        json={"year": 2026, "value": 80},
        headers={**province, "Accept-Language": "en"},
    )
    assert too_big.status_code == 400
    assert too_big.json()["errors"][0]["field"] == "value"
    assert too_big.json()["errors"][0]["code"] == "not_a_fraction"  # a rule, not the form's
    unknown = await client.put(
        f"/api/v1/targets/{THANH_HOA}/NOPE", json={"year": 2026, "value": 0.5}, headers=province
    )
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["code"] == "unknown_indicator"
    national = await client.put(
        "/api/v1/targets/VN/ADULT_CLOUD", json={"year": 2026, "value": 1.5}, headers=admin
    )
    assert national.status_code == 200
    assert target(await card(client, ward, HAC_THANH), "ADULT_CLOUD") == 1.5


async def survey_ward(
    client: Client, team: dict[str, str], ward: str, households: int, smartphones: int
) -> None:
    """``households`` one-adult households, the first ``smartphones`` with a smartphone."""
    items = []
    for index in range(households):
        household = await new_household(client, team, ward)
        items.append(
            submission(household, [member(1980, smartphone=index < smartphones)], collected_at=JULY)
        )
    await push(client, team, items)


def near(shown: dict[str, Any], numerator: int, denominator: int) -> bool:
    """A protected cell of a large count: within the perturbation table's D = 2."""
    return abs(shown["numerator"] - numerator) <= 2 and abs(shown["denominator"] - denominator) <= 2


async def test_children_tables_are_protected_cell_by_cell(
    client: Client, accounts: Accounts
) -> None:
    """Every cell is perturbed on its own; small denominators never show as 1 to 9."""
    wards = {HAC_THANH: (30, 20), HAM_RONG: (3, 2), "14812": (12, 6)}  # Bỉm Sơn
    for ward, (households, smartphones) in wards.items():
        await survey_ward(client, await ward_team(accounts, ward), ward, households, smartphones)
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    response = await client.get(
        f"/api/v1/stats/areas/{THANH_HOA}/children",
        params={"indicator": "ADULT_SMARTPHONE", "limit": 500},
        headers={**province, "Accept-Language": "en"},
    )
    assert response.status_code == 200, response.text
    rows = {row["area"]["code"]: row["indicator"] for row in response.json()["items"]}
    assert len(rows) == 166  # every ward of Thanh Hóa, empty ones included
    # 3 adults: perturbed to 0 (shown empty) or to 5 (withheld, being under 10).
    small = rows[HAM_RONG]
    if small["suppressed"]:
        assert (small["reason"], small["numerator"], small["value"]) == ("privacy", None, None)
        assert "privacy" in small["reasonText"]
    else:
        assert (small["numerator"], small["denominator"], small["value"]) == (0, 0, None)
    # Larger cells are published with small noise, and no complementary cell is hidden.
    assert not rows["14812"]["suppressed"]
    assert near(rows["14812"], 6, 12)
    assert near(rows[HAC_THANH], 20, 30)
    empty = next(r for code, r in rows.items() if code not in wards)
    assert (empty["suppressed"], empty["denominator"], empty["value"]) == (False, 0, None)
    # Sorted by gap: areas with no data first (flagged: where the teams should go), then the
    # furthest behind; each row has its coverage.
    items = response.json()["items"]
    flags = [row["noData"] for row in items]
    assert flags == sorted(flags, reverse=True)
    assert all(row["indicator"]["value"] is None for row in items if row["noData"])
    gaps = [row["indicator"]["gap"] for row in items if not row["noData"]]
    assert gaps == sorted(gaps, reverse=True)
    assert len(gaps) >= 2
    covered = {row["area"]["code"]: row["coverage"] for row in items}
    assert abs(covered[HAC_THANH]["registered"] - 30) <= 2
    by_coverage = await client.get(
        f"/api/v1/stats/areas/{THANH_HOA}/children",
        params={"indicator": "ADULT_SMARTPHONE", "sort": "coverage", "limit": 500},
        headers=province,
    )
    coverages = [
        row["coverage"]["value"] for row in by_coverage.json()["items"] if row["coverage"]["value"]
    ]
    assert coverages == sorted(coverages)
    # Pages of 50 give the same rows in the same order, each once.
    paged: list[str] = []
    cursor = None
    while True:
        page = await client.get(
            f"/api/v1/stats/areas/{THANH_HOA}/children",
            params={"indicator": "ADULT_SMARTPHONE", "limit": 50}
            | ({"cursor": cursor} if cursor else {}),
            headers=province,
        )
        assert page.status_code == 200, page.text
        paged += [row["area"]["code"] for row in page.json()["items"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            break
    assert paged == [row["area"]["code"] for row in response.json()["items"]]
    by_name = await client.get(
        f"/api/v1/stats/areas/{THANH_HOA}/children",
        params={"indicator": "ADULT_SMARTPHONE", "sort": "name", "limit": 2},
        headers=province,
    )
    assert [r["area"]["name"] for r in by_name.json()["items"]] == ["Xã An Nông", "Xã Ba Đình"]
    # The same ward's card shows the same cells as the table, for the province official ...
    for code in wards:
        seen = next(
            i
            for i in (await card(client, province, code, **{"Accept-Language": "en"}))["indicators"]
            if i["code"] == "ADULT_SMARTPHONE"
        )
        assert seen == rows[code]
    # ... while the ward's own official works with the exact figures.
    ward_official = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    exact = await card(client, ward_official, HAM_RONG)
    assert exact["exact"] is True
    assert cells(exact)["ADULT_SMARTPHONE"] == (2, 3)
    seen = {i["code"]: i for i in (await card(client, province, HAC_THANH))["indicators"]}
    assert seen["ADULT_DIGSIG"]["numerator"] == 0  # nobody: zero stays zero
    eid = seen["ADULT_EID"]  # 30 of 30: the numerator never exceeds the denominator
    assert eid["numerator"] <= eid["denominator"]
    assert near(eid, 30, 30)


async def test_public_card_is_suppressed_and_cacheable(client: Client, accounts: Accounts) -> None:
    team = await ward_team(accounts, HAC_THANH)
    await survey_ward(client, team, HAC_THANH, 12, 3)
    response = await client.get(f"/api/v1/public/areas/{HAC_THANH}/stats")
    assert response.status_code == 200, response.text
    assert "public" in response.headers["cache-control"]
    body = response.json()
    smartphone = next(i for i in body["indicators"] if i["code"] == "ADULT_SMARTPHONE")
    assert body["exact"] is False
    assert smartphone["numerator"] in (0, 5, 6)  # 3 is perturbed to 0 or 5 (the ptable)
    assert near(smartphone, smartphone["numerator"], 12)
    assert abs(body["coverage"]["surveyed"] - 12) <= 2
    # The public card of a ward is the same as the one its province official sees.
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    seen = await card(client, province, HAC_THANH)
    assert seen["indicators"] == body["indicators"]
    assert seen["coverage"] == body["coverage"]
    nation = await client.get("/api/v1/public/areas/VN/stats", headers={"Accept-Language": "en"})
    assert nation.status_code == 200
    assert nation.json()["area"] == {"code": "VN", "name": "Viet Nam", "level": "nation"}
    assert (await client.get("/api/v1/public/areas/99999/stats")).status_code == 404


async def test_scope_periods_and_bad_input(client: Client, accounts: Accounts) -> None:
    ward = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    other_ward = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    assert (await client.get(f"/api/v1/stats/areas/{HAM_RONG}", headers=ward)).status_code == 404
    assert (await client.get(f"/api/v1/stats/areas/{THANH_HOA}", headers=ward)).status_code == 404
    assert (await client.get("/api/v1/stats/areas/VN", headers=other_ward)).status_code == 404
    assert (await client.get(f"/api/v1/stats/areas/{HAC_THANH}")).status_code == 401
    for period, code in [("2025-13", "format"), ("2019", "format"), ("2099-01", "future_period")]:
        response = await client.get(
            f"/api/v1/stats/areas/{HAC_THANH}",
            params={"period": period},
            headers={**ward, "Accept-Language": "en"},
        )
        assert response.status_code == 400, period
        problem = response.json()
        assert problem["errors"][0]["field"] == "period"
        assert problem["errors"][0]["code"] == code
    vi = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/series", params={"indicator": "X"}, headers=ward
    )
    assert vi.status_code == 400
    assert vi.headers["content-type"].startswith("application/problem+json")
    assert "Chỉ tiêu" in vi.json()["errors"][0]["message"]


async def test_series_follows_each_households_latest_state(
    client: Client, accounts: Accounts
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    now = today()
    this_month = month_start(now)
    last_year = this_month.replace(year=this_month.year - 1)
    household = await new_household(client, team, HAC_THANH)
    first = submission(
        household, [member(1980, smartphone=False)],
        collected_at=f"{last_year:%Y-%m}-05T08:00:00+07:00",
    )  # fmt: skip
    await push(client, team, [first])
    # Re-visited this month (the phone's clock says a month before the first visit: the
    # re-visit still counts from the first visit's month, never before it).
    early = last_year.replace(month=1) if last_year.month > 1 else last_year
    second = submission(
        household, [member(1980, smartphone=True)], supersedes=first["id"],
        collected_at=f"{early:%Y-%m}-01T08:00:00+07:00",
    )  # fmt: skip
    await push(client, team, [second])
    response = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/series",
        params={"indicator": "ADULT_SMARTPHONE", "grain": "month"},
        headers=official,
    )
    assert response.status_code == 200, response.text
    points = response.json()["points"]
    assert len(points) == 24
    assert points[-1]["period"] == f"{this_month:%Y-%m}"
    by_period = {p["period"]: (p["numerator"], p["denominator"]) for p in points}
    before = f"{last_year - timedelta(days=1):%Y-%m}"
    assert by_period[before] == (0, 0)
    assert by_period[f"{last_year:%Y-%m}"] == (1, 1)  # the re-visit replaced it that month
    assert by_period[f"{this_month:%Y-%m}"] == (1, 1)
    quarters = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/series",
        params={"indicator": "ADULT_SMARTPHONE", "grain": "quarter"},
        headers=official,
    )
    assert len(quarters.json()["points"]) == 8


async def test_exports_are_localized_audited_and_suppressed(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    await survey_ward(client, team, HAC_THANH, 40, 30)
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    vi = await client.get(f"/api/v1/stats/areas/{THANH_HOA}/export.csv", headers=province)
    assert vi.status_code == 200, vi.text
    assert vi.headers["content-type"].startswith("text/csv")
    assert "attachment" in vi.headers["content-disposition"]
    text = vi.content.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0][:3] == ["Tháng", "Mã địa bàn", "Địa bàn"]
    assert len(rows) == 1 + (1 + 166) * 9 * 24  # the province and its wards, 24 months
    mine = [r for r in rows if r[1] == HAC_THANH and r[4] == "ADULT_SMARTPHONE"]
    # Protected as on the province official's card of the ward: the same cell, the same value.
    seen = next(
        i for i in (await card(client, province, HAC_THANH))["indicators"]
        if i["code"] == "ADULT_SMARTPHONE"
    )  # fmt: skip
    assert near(seen, 30, 40)
    n, d = seen["numerator"], seen["denominator"]
    assert mine[-1][6:8] == [str(n), str(d)]
    assert mine[-1][8] == f"{n / d * 100:.1f}".replace(".", ",") + "\u00a0%"
    assert mine[-1][9] == "80,0\u00a0%"
    assert mine[-1][0] == f"{today():%m/%Y}"
    assert mine[-1][5] == "Người trưởng thành có điện thoại thông minh"
    en = await client.get(  # the ward's rows only: the province's take 6 s
        f"/api/v1/stats/areas/{HAC_THANH}/export.csv",
        headers={**province, "Accept-Language": "en"},
    )
    en_rows = list(csv.reader(io.StringIO(en.content.decode("utf-8-sig"))))
    assert en_rows[0][:3] == ["Month", "Area code", "Area"]
    mine_en = [r for r in en_rows if r[1] == HAC_THANH and r[4] == "ADULT_SMARTPHONE"]
    assert mine_en[-1][6:9] == [str(n), str(d), f"{n / d * 100:.1f}%"]

    xlsx = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/export.xlsx",
        headers={**province, "Accept-Language": "en"},
    )
    assert xlsx.status_code == 200, xlsx.text
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet.title == "Statistics"
    assert [c.value for c in sheet[1]][:3] == ["Month", "Area code", "Area"]
    mine_xlsx = [row for row in sheet.iter_rows(min_row=2) if row[1].value == HAC_THANH]
    last = [c for c in mine_xlsx if c[4].value == "ADULT_SMARTPHONE"][-1]
    assert last[5].value == "Adults owning a smartphone"
    # Counts and rates as numbers with Excel number formats, never as text.
    assert (last[6].value, last[7].value) == (n, d)
    assert last[6].number_format == "#,##0"
    assert last[8].value == pytest.approx(n / d)
    assert last[8].number_format == "0.0%"
    assert last[9].value == 0.8
    assert last[0].value.date() == month_start(today())
    xlsx_vi = await client.get(f"/api/v1/stats/areas/{HAC_THANH}/export.xlsx", headers=province)
    sheet_vi = openpyxl.load_workbook(io.BytesIO(xlsx_vi.content)).active
    assert [c.value for c in sheet_vi[1]][5] == "Chỉ tiêu"
    assert [
        r
        for r in sheet_vi.iter_rows(min_row=2, values_only=True)
        if r[1] == HAC_THANH and r[4] == "ADULT_SMARTPHONE"
    ][-1][8] == pytest.approx(n / d)
    audited = await db.fetch(
        "SELECT subject_id, detail FROM audit_log WHERE action = 'stats.export' ORDER BY id"
    )
    assert [(r["subject_id"], r["detail"]["format"]) for r in audited] == [
        (THANH_HOA, "csv"), (HAC_THANH, "csv"), (HAC_THANH, "xlsx"), (HAC_THANH, "xlsx")
    ]  # fmt: skip


async def test_a_province_export_streams_in_constant_memory(
    accounts: Accounts, client: Client, db: asyncpg.Connection, settings: Settings
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    await survey_ward(client, team, HAC_THANH, 20, 15)
    catalog = await load_catalog(db, record_keys(settings))
    places = Places()
    place = await places.find(db, THANH_HOA)
    assert place is not None
    # Babel's locale data loads once per process, on first use: not the export's memory.
    format_rate(0.5, "vi"), format_number(1234, "vi"), format_date(today(), locale="vi_VN")
    produced = 0
    tracemalloc.start()
    try:
        async with db.transaction(isolation="repeatable_read", readonly=True):
            rows = export_rows(on_connection(db), catalog, places, place, today())
            async for chunk in csv_stream(rows, "vi"):
                produced += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert produced > 3_000_000  # 36,072 rows of about 100 bytes
    assert peak < produced / 4, (peak, produced)  # never the whole file, nor all the rows


def test_period_points_end_with_the_current_period() -> None:
    from api.stats.periods import parse_period, period_points

    now = date(2026, 11, 23)
    assert [p.label for p in period_points("quarter", now)][-2:] == ["2026-Q3", "2026-Q4"]
    assert period_points("quarter", now)[-1].end == date(2026, 12, 1)
    assert period_points("year", now)[0].label == "2022"
    assert parse_period("2026-Q4", now).end == date(2026, 12, 1)
    assert parse_period("2025", now).end == date(2025, 12, 1)


async def test_areas_read_by_concurrent_first_requests_are_listed_once(dsn: str) -> None:
    """The first requests after a start arrive together; each ward must still be listed once
    (two loads into the same lists once doubled every ward, and the work of every card)."""
    pool = await create_pool(dsn, 4, 4)
    try:
        places = Places()
        found = await asyncio.gather(*(places.find(pool, THANH_HOA) for _ in range(8)))
        province = found[0]
        assert province is not None
        assert all(place == province for place in found)
        wards = await places.children(pool, province.id)
        expected = await pool.fetchval(
            "SELECT count(*) FROM area WHERE parent_id = $1", province.id
        )
        assert len(wards) == len({ward.code for ward in wards}) == expected == 166
    finally:
        await pool.close()


async def test_record_keys_in_sql_are_the_hmac_of_the_unit(
    client: Client, accounts: Accounts, db: asyncpg.Connection, settings: Settings
) -> None:
    """The counters' key sums are written by the writers' Python (the rebuild's SQL computes
    the same: tests/test_catalog_python.py); they must be the HMAC-SHA256 of each unit, and
    a re-visit that keeps the member ids keeps the keys."""
    keys = record_keys(settings)
    secret = cell_key_secret(settings)
    for unit in ("", "a", "x" * 200, "0f0e:1d1c"):
        assert keys.of(unit) == hmac.new(secret, unit.encode(), hashlib.sha256).digest()[0]
    team = await ward_team(accounts, HAM_RONG)
    household = await new_household(client, team, HAM_RONG)
    person = member(1980, smartphone=True)
    first = submission(household, [person], collected_at=JULY)
    await push(client, team, [first])

    async def key_sums(measure: str) -> tuple[int, int]:
        row = await db.fetchrow(
            """SELECT sum(numerator_key), sum(denominator_key) FROM stat_current_live
               WHERE measure = $1 AND area_id = (SELECT id FROM area WHERE code = $2)""",
            measure,
            HAM_RONG,
        )
        return int(row[0]) % 256, int(row[1]) % 256

    household_key = keys.of(household)
    person_key = keys.of(f"{household}:{person['memberId']}")
    assert await key_sums("HH_BROADBAND") == (household_key, household_key)
    assert await key_sums("COVERAGE") == (household_key, household_key)
    assert await key_sums("ADULT_SMARTPHONE") == (person_key, person_key)
    assert await key_sums("ADULT_CLOUD") == (person_key, person_key)  # 1 account × key
    # The same person re-visited without a smartphone: out of the numerator, same key.
    person["answers"]["smartphone"] = False  # type: ignore[index]
    await push(client, team, [submission(household, [person], supersedes=first["id"])])
    assert await key_sums("ADULT_SMARTPHONE") == (0, person_key)


async def test_cards_and_series_carry_a_forecast(client: Client, accounts: Accounts) -> None:
    """Six months in which the ward's smartphone share rises by 5 points a month, from 50 %
    to 75 %: the 80 % target is reached next month; the province sees a forecast made from
    its protected values."""
    team = await ward_team(accounts, HAM_RONG)
    this_month = month_start(today())
    items = []
    for back in range(5, -1, -1):  # oldest first
        month = add_months(this_month, -back)
        with_phone = 10 - back  # 5, 6, ... 10 of each month's 10 one-adult households
        for index in range(10):
            household = await new_household(client, team, HAM_RONG)
            items.append(
                submission(
                    household,
                    [member(1980, smartphone=index < with_phone)],
                    collected_at=f"{month:%Y-%m}-02T09:00:00+07:00",
                )
            )
    await push(client, team, items)
    official = await accounts.headers(await accounts.create("ward_official", HAM_RONG))
    body = await card(client, official, HAM_RONG)
    smartphone = next(i for i in body["indicators"] if i["code"] == "ADULT_SMARTPHONE")
    assert (smartphone["numerator"], smartphone["denominator"]) == (45, 60)
    assert smartphone["forecast"] == {
        "status": "on_pace",
        "month": f"{add_months(this_month, 1):%Y-%m}",
        "monthlyChange": 0.05,
    }
    eid = next(i for i in body["indicators"] if i["code"] == "ADULT_EID")
    assert eid["forecast"]["status"] == "met"  # everyone has level 2
    series = await client.get(
        f"/api/v1/stats/areas/{HAM_RONG}/series",
        params={"indicator": "ADULT_SMARTPHONE"},
        headers=official,
    )
    assert series.json()["forecast"] == smartphone["forecast"]
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    seen = await card(client, province, HAM_RONG)
    protected = next(i for i in seen["indicators"] if i["code"] == "ADULT_SMARTPHONE")
    assert protected["forecast"]["status"] in ("on_pace", "met", "not_within_5_years")
