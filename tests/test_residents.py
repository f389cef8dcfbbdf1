"""Residents: invited by their team, answer for their own household, see and delete its data."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import HAC_THANH, Accounts, submission
from tests.test_sync import new_household, push

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def _resident(
    client: Client, accounts: Accounts
) -> tuple[dict[str, str], dict[str, str], str]:
    team_id = await accounts.team(HAC_THANH)
    team = await accounts.headers(await accounts.create("team_member", HAC_THANH, team_id=team_id))
    household = await new_household(client, team, label="Nhà số 5")
    invite = await client.post("/api/v1/invites", json={"householdId": household}, headers=team)
    assert invite.status_code == 201, invite.text
    code = invite.json()["code"]
    assert len(code) == 9  # XXXX-XXXX
    registered = await client.post(
        "/api/v1/auth/register",
        json={"inviteCode": code.lower(), "phone": "0388123456", "password": "resident pass"},
    )
    assert registered.status_code == 201, registered.text
    body = registered.json()
    assert body["user"]["role"] == "resident"
    # The code works once.
    again = await client.post(
        "/api/v1/auth/register",
        json={"inviteCode": code, "phone": "0388123457", "password": "resident pass"},
    )
    assert again.status_code == 401
    assert again.json()["code"] == "invalid_invite"
    return team, {"Authorization": f"Bearer {body['accessToken']}"}, household


async def test_resident_answers_for_their_own_household_only(
    client: Client, accounts: Accounts
) -> None:
    team, resident, household = await _resident(client, accounts)
    own = await client.post("/api/v1/submissions", json=submission(household), headers=resident)
    assert own.status_code == 201
    neighbour = await new_household(client, team)
    other = await client.post("/api/v1/submissions", json=submission(neighbour), headers=resident)
    assert other.status_code == 404
    assert (
        await client.get(f"/api/v1/households/{neighbour}", headers=resident)
    ).status_code == 404
    # A resident pulls only their own household.
    pulled = (await client.get("/api/v1/sync/pull", headers=resident)).json()
    assert [h["id"] for h in pulled["households"]] == [household]


async def test_resident_sees_and_deletes_their_data(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    team, resident, household = await _resident(client, accounts)
    first = submission(household)
    await push(client, team, [first, submission(household, supersedes=first["id"])])
    mine = await client.get("/api/v1/me/household", headers=resident)
    assert mine.status_code == 200
    assert mine.json()["household"]["label"] == "Nhà số 5"
    assert len(mine.json()["submissions"]) == 2

    _, _, cursor = await _pull_cursor(client, team)
    deleted = await client.delete("/api/v1/me/household", headers=resident)
    assert deleted.status_code == 204
    assert await db.fetchval("SELECT count(*) FROM submission") == 0
    assert (
        await db.fetchval("SELECT count(*) FROM household WHERE id = $1", uuid.UUID(household)) == 0
    )
    audit = await db.fetchrow("SELECT detail FROM audit_log WHERE action = 'household_deleted'")
    assert audit["detail"]["submissions"] == 2
    # Other systems hear of it, from the same transaction (tests/test_webhooks.py delivers).
    events = await db.fetch(
        "SELECT type, body FROM outbox WHERE household_id = $1 ORDER BY id", uuid.UUID(household)
    )
    assert [e["type"] for e in events] == [
        "submission.accepted",
        "submission.accepted",
        "household.deleted",
    ]
    assert events[-1]["body"]["wardCode"] == HAC_THANH
    # The team's devices are told to forget it.
    page = (await client.get("/api/v1/sync/pull", params={"cursor": cursor}, headers=team)).json()
    assert page["deletedHouseholds"] == [household]
    assert (await client.get("/api/v1/me/household", headers=resident)).status_code == 404
    # The id can never be reused for another household.
    reused = await client.post(
        "/api/v1/households", json={"id": household, "wardCode": HAC_THANH}, headers=team
    )
    assert reused.status_code == 409


async def _pull_cursor(client: Client, headers: dict[str, str]) -> tuple[None, None, str]:
    cursor = None
    while True:
        params = {"cursor": cursor} if cursor else {}
        page = (await client.get("/api/v1/sync/pull", params=params, headers=headers)).json()
        cursor = page["nextCursor"]
        if not page["more"]:
            return None, None, cursor


async def test_hamlets_are_listed_under_their_ward(client: Client, accounts: Accounts) -> None:
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    for name in ("Tổ dân phố 2", "Thôn Đông", "Thôn Bắc"):
        created = await client.post(
            f"/api/v1/areas/{HAC_THANH}/hamlets", json={"name": name}, headers=official
        )
        assert created.status_code == 201, created.text
        assert created.json()["level"] == "hamlet"
    listed = await client.get("/api/v1/areas", params={"parent": HAC_THANH}, headers=official)
    assert [a["name"] for a in listed.json()["items"]] == ["Thôn Bắc", "Thôn Đông", "Tổ dân phố 2"]
    code = listed.json()["items"][0]["code"]
    one = await client.get(f"/api/v1/areas/{code}", headers=official)
    assert one.json()["parentCode"] == HAC_THANH
    duplicate = await client.post(
        f"/api/v1/areas/{HAC_THANH}/hamlets", json={"name": "thôn bắc"}, headers=official
    )
    assert duplicate.status_code == 409
