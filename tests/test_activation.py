"""Accounts created by someone else: the creator gets a one-time activation code, never a
password; the holder chooses the password at their first sign-in (POST /auth/activate)."""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.config import settings_from_env
from tests.conftest import HAC_THANH, HAM_RONG, PASSWORD, THANH_HOA, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]

HOLDER_PASSWORD = "the holder's own password"


async def create(
    client: Client, headers: dict[str, str], phone: str, role: str, area: str, **extra: object
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/users",
        json={"phone": phone, "role": role, "areaCode": area, **extra},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def activate(
    client: Client, phone: str, code: str, password: str = HOLDER_PASSWORD, **headers: str
) -> Any:
    return await client.post(
        "/api/v1/auth/activate",
        json={"phone": phone, "activationCode": code, "password": password},
        headers=headers,
    )


async def login(client: Client, phone: str, password: str = HOLDER_PASSWORD) -> Any:
    return await client.post("/api/v1/auth/login", json={"phone": phone, "password": password})


async def province_official(accounts: Accounts) -> dict[str, str]:
    return await accounts.headers(await accounts.create("province_official", THANH_HOA))


async def test_a_created_account_waits_for_its_holder_and_activates_once(
    client: Client, accounts: Accounts
) -> None:
    headers = await province_official(accounts)
    created = await create(client, headers, "0981000001", "ward_official", HAC_THANH)
    code = created["activationCode"]
    assert re.fullmatch(r"[A-HJKMNP-Z2-9]{4}(-[A-HJKMNP-Z2-9]{4}){4}", code)
    assert created["pendingActivation"] is True
    assert created["activationExpiresAt"] is not None
    # Shown once: reading the account again never shows the code.
    again = await client.get(f"/api/v1/users/{created['id']}", headers=headers)
    assert again.status_code == 200
    assert "activationCode" not in again.json()
    assert again.json()["pendingActivation"] is True

    # A pending account cannot sign in with a password, whatever it is.
    refused = await login(client, "0981000001")
    assert refused.status_code == 403
    assert refused.json()["code"] == "activation_required"
    assert "mã kích hoạt" in refused.json()["detail"]
    english = await client.post(
        "/api/v1/auth/login",
        json={"phone": "0981000001", "password": "anything at all"},
        headers={"Accept-Language": "en"},
    )
    assert english.status_code == 403
    assert "activation code" in english.json()["detail"]

    # The holder activates (case, spaces and dashes do not matter) and is signed in.
    typed = code.lower().replace("-", " ")
    tokens = await activate(client, "+84 981 000 001", typed)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert set(body) == {"accessToken", "refreshToken", "tokenType", "expiresIn", "user"}
    assert body["tokenType"] == "Bearer"
    assert body["user"]["id"] == created["id"]
    assert body["user"]["pendingActivation"] is False
    assert body["user"]["activationExpiresAt"] is None
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.json()["role"] == "ward_official"

    # The code works once; the password the holder chose works from now on.
    used = await activate(client, "0981000001", code, "someone else's password")
    assert used.status_code == 409
    assert used.json()["code"] == "activation_code_used"
    assert (await login(client, "0981000001", "someone else's password")).status_code == 401
    assert (await login(client, "0981000001")).status_code == 200


async def test_the_creator_cannot_choose_or_set_the_password(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    headers = await province_official(accounts)
    chosen = "the creator's choice"
    sent = await client.post(
        "/api/v1/users",
        json={
            "phone": "0981000002",
            "password": chosen,
            "role": "ward_official",
            "areaCode": HAC_THANH,
        },
        headers=headers,
    )
    assert sent.status_code == 400
    problem = sent.json()
    assert problem["errors"][0]["field"] == "password"
    assert problem["errors"][0]["code"] == "password_not_allowed"
    assert "mã kích hoạt" in problem["errors"][0]["message"]
    assert await db.fetchval("SELECT count(*) FROM app_user WHERE phone = '+84981000002'") == 0
    assert (await login(client, "0981000002", chosen)).status_code == 401

    # Nor can the creator set it afterwards, on a pending or an active account.
    created = await create(client, headers, "0981000002", "ward_official", HAC_THANH)
    patched = await client.patch(
        f"/api/v1/users/{created['id']}", json={"password": chosen}, headers=headers
    )
    assert patched.status_code == 400
    assert patched.json()["errors"][0]["code"] == "password_not_allowed"
    assert (await activate(client, "0981000002", created["activationCode"])).status_code == 200
    patched = await client.patch(
        f"/api/v1/users/{created['id']}", json={"password": chosen}, headers=headers
    )
    assert patched.status_code == 400
    assert (await login(client, "0981000002", chosen)).status_code == 401
    assert (await login(client, "0981000002")).status_code == 200


async def test_wrong_codes_are_throttled_like_wrong_passwords(
    client: Client, accounts: Accounts
) -> None:
    headers = await province_official(accounts)
    created = await create(client, headers, "0981000003", "ward_official", HAC_THANH)
    # The test settings lock a phone after 3 failures.
    for _ in range(3):
        wrong = await activate(client, "0981000003", "ABCD-EFGH-JKMN-PQRS-TUVW")
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "invalid_activation_code"
    locked = await activate(client, "0981000003", created["activationCode"])
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert "Retry-After" in locked.headers
    # The same lock as wrong passwords: signing in is locked too.
    assert (await login(client, "0981000003")).status_code == 429

    # An unknown phone answers exactly like a wrong code, and counts against the address.
    unknown = await activate(client, "0981999999", created["activationCode"])
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "invalid_activation_code"


async def test_wrong_codes_lock_the_client_address(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    headers = await province_official(accounts)
    created = await create(client, headers, "0981000004", "ward_official", HAC_THANH)
    # 10 failures per address in the test settings, spread over phones that are not locked.
    for i in range(10):
        await activate(client, f"09820000{i:02d}", "ABCD-EFGH-JKMN-PQRS-TUVW")
    locked = await activate(client, "0981000004", created["activationCode"])
    assert locked.status_code == 429
    failures = await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'activation_failed' "
        "AND detail->>'reason' = 'wrong_code' AND client_addr IS NOT NULL"
    )
    assert failures == 10


async def test_an_expired_code_is_refused(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    headers = await province_official(accounts)
    created = await create(client, headers, "0981000005", "ward_official", HAC_THANH)
    await db.execute(
        "UPDATE app_user SET activation_expires_at = now() - interval '1 second' WHERE id = $1",
        created["id"],
    )
    expired = await activate(client, "0981000005", created["activationCode"])
    assert expired.status_code == 400
    assert expired.json()["errors"][0]["field"] == "activationCode"
    assert expired.json()["errors"][0]["code"] == "activation_code_expired"
    english = await activate(
        client, "0981000005", created["activationCode"], **{"Accept-Language": "en"}
    )
    assert "has expired" in english.json()["errors"][0]["message"]
    # Still pending; the right (expired) code is no guess, so nothing is locked.
    for _ in range(3):
        await activate(client, "0981000005", created["activationCode"])
    assert (await login(client, "0981000005")).status_code == 403

    # A new code from the official works.
    reissued = await client.post(f"/api/v1/users/{created['id']}/activation", headers=headers)
    assert reissued.status_code == 201
    assert (await activate(client, "0981000005", reissued.json()["activationCode"])).is_success


async def test_reissuing_invalidates_the_old_code_and_resets_an_active_account(
    client: Client, accounts: Accounts
) -> None:
    headers = await province_official(accounts)
    created = await create(client, headers, "0981000006", "ward_official", HAC_THANH)
    first = created["activationCode"]
    reissued = await client.post(f"/api/v1/users/{created['id']}/activation", headers=headers)
    assert reissued.status_code == 201, reissued.text
    second = reissued.json()["activationCode"]
    assert second != first
    assert reissued.json()["pendingActivation"] is True
    assert (await activate(client, "0981000006", first)).status_code == 401
    tokens = await activate(client, "0981000006", second)
    assert tokens.status_code == 200

    # An active account is reset to pending: its password and sessions end.
    reset = await client.post(f"/api/v1/users/{created['id']}/activation", headers=headers)
    assert reset.status_code == 201
    assert reset.json()["pendingActivation"] is True
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": tokens.json()["refreshToken"]}
    )
    assert refresh.status_code == 401
    assert (await login(client, "0981000006")).json()["code"] == "activation_required"
    assert (await activate(client, "0981000006", second)).status_code == 401
    again = await activate(client, "0981000006", reset.json()["activationCode"], "a new password")
    assert again.status_code == 200
    assert (await login(client, "0981000006", "a new password")).status_code == 200


async def test_issuing_a_code_follows_the_scope_of_account_changes(
    client: Client, accounts: Accounts
) -> None:
    ward_official = await accounts.create("ward_official", HAC_THANH)
    headers = await accounts.headers(ward_official)
    team = await accounts.team(HAC_THANH)
    own_member = await accounts.create("team_member", HAC_THANH, team_id=team)
    other_member = await accounts.create(
        "team_member", HAM_RONG, team_id=await accounts.team(HAM_RONG)
    )
    peer = await accounts.create("ward_official", HAC_THANH)

    elsewhere = await client.post(f"/api/v1/users/{other_member.id}/activation", headers=headers)
    assert elsewhere.status_code == 404
    assert elsewhere.json()["code"] == "user_not_found"
    assert (await accounts.login(other_member))["user"]["pendingActivation"] is False

    same_rank = await client.post(f"/api/v1/users/{peer.id}/activation", headers=headers)
    assert same_rank.status_code == 403
    own = await client.post(f"/api/v1/users/{ward_official.id}/activation", headers=headers)
    assert own.status_code == 403
    assert own.json()["code"] == "own_account"

    member_headers = await accounts.headers(own_member)
    by_member = await client.post(
        f"/api/v1/users/{other_member.id}/activation", headers=member_headers
    )
    assert by_member.status_code == 403

    ok = await client.post(f"/api/v1/users/{own_member.id}/activation", headers=headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["teamId"] == str(team)

    # A disabled account gets no code until it is enabled again.
    await client.patch(f"/api/v1/users/{own_member.id}", json={"disabled": True}, headers=headers)
    disabled = await client.post(f"/api/v1/users/{own_member.id}/activation", headers=headers)
    assert disabled.status_code == 409
    assert disabled.json()["code"] == "user_disabled"
    # …and cannot be activated with the code it had.
    refused = await activate(client, own_member.phone, ok.json()["activationCode"])
    assert refused.status_code == 401


async def test_codes_and_activations_are_audited_without_the_code(
    client: Client, accounts: Accounts, db: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    official = await accounts.create("province_official", THANH_HOA)
    headers = await accounts.headers(official)
    created = await create(client, headers, "0981000007", "ward_official", HAC_THANH)
    reissued = await client.post(f"/api/v1/users/{created['id']}/activation", headers=headers)
    codes = [created["activationCode"], reissued.json()["activationCode"]]
    await activate(client, "0981000007", "ABCD-EFGH-JKMN-PQRS-TUVW")
    assert (await activate(client, "0981000007", codes[1])).status_code == 200
    await activate(client, "0981000007", codes[1])  # used
    reset = await client.post(f"/api/v1/users/{created['id']}/activation", headers=headers)
    codes.append(reset.json()["activationCode"])

    rows = await db.fetch(
        """SELECT action, actor_id, client_addr, detail, province_id FROM audit_log
           WHERE subject_id = $1 ORDER BY id""",
        created["id"],
    )
    assert [(r["action"], r["detail"].get("reason", r["detail"].get("reset"))) for r in rows] == [
        ("user_created", None),
        ("activation_code_issued", False),
        ("activation_code_issued", False),
        ("activation_failed", "wrong_code"),
        ("user_activated", None),
        ("activation_failed", "used"),
        ("activation_code_issued", True),
    ]
    for row in rows:
        assert row["client_addr"]
        assert row["province_id"] is not None
        expected_actor = {"activation_code_issued": official.id, "user_created": official.id}
        if row["action"] in expected_actor:
            assert row["actor_id"] == official.id
    activated = next(r for r in rows if r["action"] == "user_activated")
    assert str(activated["actor_id"]) == created["id"]

    # Neither the codes (in any spelling) nor the password are in the trail or the logs.
    trail = "\n".join(str(dict(r)) for r in await db.fetch("SELECT * FROM audit_log"))
    for secret in [*codes, *(c.replace("-", "") for c in codes), HOLDER_PASSWORD]:
        assert secret not in trail
        assert secret not in caplog.text
    stored = await db.fetchrow(
        "SELECT activation_hash, password_hash FROM app_user WHERE id = $1", created["id"]
    )
    assert stored["password_hash"] is None
    assert all(c.encode() not in stored["activation_hash"] for c in codes)


async def test_activation_lifetime_is_configurable() -> None:
    assert settings_from_env({}).activation_ttl == 72 * 3600
    assert settings_from_env({"CONGDONGSO_ACTIVATION_TTL": "3600"}).activation_ttl == 3600


async def test_login_and_tokens_of_directly_created_accounts_are_unchanged(
    client: Client, accounts: Accounts
) -> None:
    # The operator's accounts (create-user, demo, these fixtures) have a password at once.
    admin = await accounts.create("admin")
    body = await accounts.login(admin, PASSWORD)
    assert body["user"]["pendingActivation"] is False
