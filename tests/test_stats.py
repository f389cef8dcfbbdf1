"""Ward statistics: counts by hand, rebuild equivalence, periods, targets, suppression,
exports in both locales, and the public card."""

from __future__ import annotations

import csv
import io
import random
import tracemalloc
import uuid
import zipfile
from datetime import date
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.exports import csv_stream
from api.indicators import load_catalog
from api.queries.stats import rebuild
from api.stats import export_rows, find_place, month_start, today
from tests.conftest import (
    BA_DINH,
    HAC_THANH,
    HAM_RONG,
    THANH_HOA,
    Accounts,
    member,
    submission,
)

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
            "phone": f"03{random.randint(10_000_000, 99_999_999)}",  # noqa: S311
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
    assert body["coverage"] == {"surveyed": 3, "registered": 4, "value": 0.75}
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
    assert july["coverage"] == {"surveyed": 3, "registered": 3, "value": 1.0}
    june = await card(client, official, HAC_THANH, "2025-06")
    assert cells(june)["ADULT_SMARTPHONE"] == (0, 0)
    assert june["coverage"]["registered"] == 0
    quarter = await card(client, official, HAC_THANH, "2025-Q3")
    assert cells(quarter) == expected

    # The province is the sum of its wards; suppressed for its official (small numbers).
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    province_card = await card(client, province, THANH_HOA)
    assert province_card["coverage"]["surveyed"] == 3
    assert all(i["suppressed"] for i in province_card["indicators"])
    english = await card(client, official, HAC_THANH, **{"Accept-Language": "en"})
    assert english["indicators"][0]["name"] == "Adults owning a smartphone"
    assert body["indicators"][0]["name"] == "Người trưởng thành có điện thoại thông minh"
