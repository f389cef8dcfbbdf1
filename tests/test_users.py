"""Officials manage accounts inside their own area; everything else is 404 (or 403 for roles)."""

from __future__ import annotations

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import BA_DINH, HAC_THANH, HAM_RONG, THANH_HOA, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


def new_user(phone: str, role: str, area: str | None, **extra: object) -> dict[str, object]:
    return {"phone": phone, "role": role, "areaCode": area, **extra}


async def test_ward_official_creates_a_team_member_in_their_ward(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    official = await accounts.create("ward_official", HAC_THANH)
    headers = await accounts.headers(official)
    team = await client.post(
        "/api/v1/teams",
        json={"wardCode": HAC_THANH, "name": "Tổ công nghệ số khu phố 3"},
        headers=headers,
    )
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]

    created = await client.post(
        "/api/v1/users",
        json=new_user(
            "0987 654 321", "team_member", HAC_THANH, teamId=team_id, displayName="Chị Lan"
        ),
        headers=headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["phone"] == "+84987654321"
    assert body["teamId"] == team_id
    assert body["displayName"] == "Chị Lan"
    assert body["pendingActivation"] is True

    # The new member activates the account with the code, chooses a password and sees their
    # team.
    login = await client.post(
        "/api/v1/auth/activate",
        json={
            "phone": "0987654321",
            "activationCode": body["activationCode"],
            "password": "a long password",
        },
    )
    assert login.status_code == 200, login.text
    member_headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    members = await client.get(f"/api/v1/teams/{team_id}/members", headers=member_headers)
    assert [m["phone"] for m in members.json()["items"]] == ["+84987654321"]
    assert (await client.get(f"/api/v1/teams/{team_id}", headers=member_headers)).json()[
        "memberCount"
    ] == 1

    actions = [r["action"] for r in await db.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert "team_created" in actions
    assert "user_created" in actions


async def test_ward_official_cannot_see_or_create_users_of_another_ward(
    client: Client, accounts: Accounts
) -> None:
    official = await accounts.create("ward_official", HAC_THANH)
    other_official = await accounts.create("ward_official", HAM_RONG)
    elsewhere = await accounts.create(
        "team_member", HAM_RONG, team_id=await accounts.team(HAM_RONG)
    )
    headers = await accounts.headers(official)

    assert (await client.get(f"/api/v1/users/{elsewhere.id}", headers=headers)).status_code == 404
    assert (
        await client.get(f"/api/v1/users/{other_official.id}", headers=headers)
    ).status_code == 404
    listed = await client.get("/api/v1/users", headers=headers)
    assert {u["id"] for u in listed.json()["items"]} == {str(official.id)}
    filtered = await client.get("/api/v1/users", params={"area": HAM_RONG}, headers=headers)
    assert filtered.status_code == 404

    team_elsewhere = await accounts.team(HAM_RONG, "Tổ khác")
    created = await client.post(
        "/api/v1/users",
        json=new_user("0911111111", "team_member", HAM_RONG, teamId=str(team_elsewhere)),
        headers=headers,
    )
    assert created.status_code == 404
    assert created.json()["code"] == "area_not_found"
    patched = await client.patch(
        f"/api/v1/users/{elsewhere.id}", json={"displayName": "x"}, headers=headers
    )
    assert patched.status_code == 404
    assert (await client.get(f"/api/v1/teams/{team_elsewhere}", headers=headers)).status_code == 404


async def test_officials_only_assign_roles_below_their_own(
    client: Client, accounts: Accounts
) -> None:
    ward_official = await accounts.create("ward_official", HAC_THANH)
    headers = await accounts.headers(ward_official)
    peer = await client.post(
        "/api/v1/users", json=new_user("0922222222", "ward_official", HAC_THANH), headers=headers
    )
    assert peer.status_code == 403
    assert peer.json()["code"] == "role_not_allowed"

    province_official = await accounts.create("province_official", THANH_HOA)
    p_headers = await accounts.headers(province_official)
    ok = await client.post(
        "/api/v1/users", json=new_user("0933333333", "ward_official", HAM_RONG), headers=p_headers
    )
    assert ok.status_code == 201
    # A ward official must be placed in a ward, not the province.
    wrong_level = await client.post(
        "/api/v1/users", json=new_user("0944444444", "ward_official", THANH_HOA), headers=p_headers
    )
    assert wrong_level.status_code == 400
    assert wrong_level.json()["errors"][0]["field"] == "areaCode"
    # Nor outside the province.
    outside = await client.post(
        "/api/v1/users", json=new_user("0955555555", "ward_official", BA_DINH), headers=p_headers
    )
    assert outside.status_code == 404
    # A province official cannot promote to their own rank…
    promoted = await client.patch(
        f"/api/v1/users/{ok.json()['id']}",
        json={"role": "province_official", "areaCode": THANH_HOA},
        headers=p_headers,
    )
    assert promoted.status_code == 403
    # …and cannot manage a peer (visible, but not manageable).
    peer_po = await accounts.create("province_official", THANH_HOA)
    assert (await client.get(f"/api/v1/users/{peer_po.id}", headers=p_headers)).status_code == 200
    assert (
        await client.patch(
            f"/api/v1/users/{peer_po.id}", json={"disabled": True}, headers=p_headers
        )
    ).status_code == 403


async def test_team_members_and_residents_cannot_manage_users(
    client: Client, accounts: Accounts
) -> None:
    member = await accounts.create("team_member", HAC_THANH, team_id=await accounts.team(HAC_THANH))
    headers = await accounts.headers(member)
    assert (await client.get("/api/v1/users", headers=headers)).status_code == 403
    created = await client.post(
        "/api/v1/users", json=new_user("0966666666", "team_member", HAC_THANH), headers=headers
    )
    assert created.status_code == 403


async def test_role_change_is_audited_and_ends_sessions(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    admin = await accounts.create("admin")
    target = await accounts.create("ward_official", HAC_THANH)
    target_tokens = await accounts.login(target)
    team = await accounts.team(HAC_THANH)
    response = await client.patch(
        f"/api/v1/users/{target.id}",
        json={"role": "team_member", "teamId": str(team)},
        headers=await accounts.headers(admin),
    )
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "team_member"
    assert response.json()["teamId"] == str(team)
    row = await db.fetchrow(
        "SELECT actor_id, detail FROM audit_log WHERE action = 'user_updated' AND subject_id = $1",
        str(target.id),
    )
    assert row["actor_id"] == admin.id
    assert row["detail"]["role"] == {"from": "ward_official", "to": "team_member"}
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": target_tokens["refreshToken"]}
    )
    assert refresh.status_code == 401  # must sign in again to get the new role


async def test_cannot_change_own_role_but_can_change_own_password(
    client: Client, accounts: Accounts
) -> None:
    official = await accounts.create("province_official", THANH_HOA)
    headers = await accounts.headers(official)
    own_role = await client.patch(
        f"/api/v1/users/{official.id}", json={"role": "ward_official"}, headers=headers
    )
    assert own_role.status_code == 403
    own_password = await client.patch(
        f"/api/v1/users/{official.id}", json={"password": "a brand new password"}, headers=headers
    )
    assert own_password.status_code == 200
    login = await client.post(
        "/api/v1/auth/login", json={"phone": official.phone, "password": "a brand new password"}
    )
    assert login.status_code == 200


async def test_duplicate_phone_is_a_conflict(client: Client, accounts: Accounts) -> None:
    admin = await accounts.create("admin")
    headers = await accounts.headers(admin)
    body = new_user("0977777777", "province_official", THANH_HOA)
    assert (await client.post("/api/v1/users", json=body, headers=headers)).status_code == 201
    again = await client.post(
        "/api/v1/users", json={**body, "phone": "+84977777777"}, headers=headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "phone_taken"


async def test_user_lists_page_without_gaps(client: Client, accounts: Accounts) -> None:
    admin = await accounts.create("admin")
    headers = await accounts.headers(admin)
    for _ in range(7):
        await accounts.create("ward_official", HAC_THANH)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, "area": HAC_THANH, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/users", params=params, headers=headers)).json()
        seen += [u["id"] for u in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 7


async def test_team_creation_is_idempotent_by_id(client: Client, accounts: Accounts) -> None:
    official = await accounts.create("ward_official", HAC_THANH)
    headers = await accounts.headers(official)
    body = {"id": "5d1e0000-0000-4000-8000-0000000000aa", "wardCode": HAC_THANH, "name": "Tổ 7"}
    first = await client.post("/api/v1/teams", json=body, headers=headers)
    second = await client.post("/api/v1/teams", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    clash = await client.post("/api/v1/teams", json={**body, "name": "Tổ 8"}, headers=headers)
    assert clash.status_code == 409
