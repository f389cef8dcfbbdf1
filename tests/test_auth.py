"""Sign-in, token rotation and re-use detection, logout, lockout, bad tokens."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import asyncpg
import jwt
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import HAC_THANH, PASSWORD, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]
SECRET = "test-secret-that-is-long-enough-for-hs256"


async def test_login_returns_tokens_and_user(client: Client, accounts: Accounts) -> None:
    official = await accounts.create("ward_official", HAC_THANH, phone="+84912345678")
    # Both national (0…) and international (+84…) forms sign in.
    for phone in ("0912345678", "+84 912 345 678", "84912345678"):
        response = await client.post(
            "/api/v1/auth/login", json={"phone": phone, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
    body = response.json()
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == 900
    assert body["user"] == {
        "id": str(official.id),
        "phone": "+84912345678",
        "role": "ward_official",
        "areaCode": HAC_THANH,
        "displayName": None,
        "teamId": None,
        "disabled": False,
        "pendingActivation": False,
        "activationExpiresAt": None,
    }
    me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
    assert me.status_code == 200
    assert me.json()["id"] == str(official.id)


async def test_wrong_password_and_unknown_phone_look_the_same(
    client: Client, accounts: Accounts
) -> None:
    user = await accounts.create("admin")
    wrong = await client.post("/api/v1/auth/login", json={"phone": user.phone, "password": "nope"})
    unknown = await client.post(
        "/api/v1/auth/login", json={"phone": "0399999999", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == unknown.json()["code"] == "invalid_credentials"
    assert wrong.json()["detail"] == "Số điện thoại hoặc mật khẩu không đúng."


async def test_refresh_rotates_and_reuse_revokes_the_family(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    user = await accounts.create("admin")
    first = await accounts.login(user)
    second = await client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refreshToken"] != first["refreshToken"]

    # The rotated token keeps working once…
    third = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": rotated["refreshToken"]}
    )
    assert third.status_code == 200
    latest = third.json()["refreshToken"]

    # …but presenting an already-used token again (a thief or a replay) revokes the family,
    reuse = await client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "invalid_refresh_token"
    # so even the newest token of that login is dead now.
    after = await client.post("/api/v1/auth/refresh", json={"refreshToken": latest})
    assert after.status_code == 401
    assert (
        await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'refresh_token_reused'")
        == 1
    )

    # Another login (another family) is unaffected.
    other = await accounts.login(user)
    ok = await client.post("/api/v1/auth/refresh", json={"refreshToken": other["refreshToken"]})
    assert ok.status_code == 200


async def test_logout_ends_the_session(client: Client, accounts: Accounts) -> None:
    user = await accounts.create("admin")
    tokens = await accounts.login(user)
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    out = await client.post(
        "/api/v1/auth/logout", json={"refreshToken": tokens["refreshToken"]}, headers=headers
    )
    assert out.status_code == 204
    again = await client.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert again.status_code == 401


async def test_logout_without_body_ends_every_session(client: Client, accounts: Accounts) -> None:
    user = await accounts.create("admin")
    one, two = await accounts.login(user), await accounts.login(user)
    out = await client.post(
        "/api/v1/auth/logout", json={}, headers={"Authorization": f"Bearer {one['accessToken']}"}
    )
    assert out.status_code == 204
    for tokens in (one, two):
        response = await client.post(
            "/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
        )
        assert response.status_code == 401


def _token(sub: str, *, secret: str = SECRET, exp_delta: int = 300, **claims: object) -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": sub,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=exp_delta)).timestamp()),
        "iss": "congdongso",
        "aud": "congdongso-api",
        "extras": {"role": "admin", "area": None, "prov": None},
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


async def test_expired_tampered_and_foreign_tokens_are_rejected(
    client: Client, accounts: Accounts
) -> None:
    user = await accounts.create("admin")
    good = _token(str(user.id))
    assert (
        await client.get("/api/v1/me", headers={"Authorization": f"Bearer {good}"})
    ).status_code == 200

    expired = _token(str(user.id), exp_delta=-60)
    wrong_key = _token(str(user.id), secret="another-secret-another-secret-12")
    header, _, signature = good.split(".")
    tampered_payload = _token(str(user.id), extras={"role": "admin", "area": 1, "prov": 1}).split(
        "."
    )[1]
    tampered = f"{header}.{tampered_payload}.{signature}"
    wrong_audience = _token(str(user.id), aud="someone-else")
    none_alg = jwt.encode({"sub": str(user.id), "exp": int(time.time()) + 60}, None, "none")
    for bad in (expired, wrong_key, tampered, wrong_audience, none_alg, "garbage", ""):
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, bad
        assert response.json()["code"] == "unauthorized"


async def test_a_remembered_token_still_expires(client: Client, accounts: Accounts) -> None:
    """Checked tokens are remembered (api.auth.VerifiedToken), not their validity."""
    user = await accounts.create("admin")
    expires_at = int(time.time()) + 2
    token = _token(str(user.id), exp_delta=expires_at - int(time.time()))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200  # remembered
    await asyncio.sleep(expires_at - time.time() + 0.05)
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


async def test_lockout_after_repeated_failures(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    user = await accounts.create("admin")
    for _ in range(3):  # settings: login_max_failures=3
        response = await client.post(
            "/api/v1/auth/login", json={"phone": user.phone, "password": "wrong password"}
        )
        assert response.status_code == 401
    locked = await client.post(
        "/api/v1/auth/login",
        json={"phone": user.phone, "password": PASSWORD},
        headers={"Accept-Language": "en"},
    )
    assert locked.status_code == 429
    assert locked.json()["code"] == "login_locked"
    assert int(locked.headers["retry-after"]) > 0
    assert locked.json()["detail"].startswith("Too many failed sign-ins")

    # After the lock expires the right password works and clears the counter.
    await db.execute("UPDATE login_throttle SET locked_until = now() - interval '1 second'")
    assert (await accounts.login(user))["user"]["id"] == str(user.id)
    assert (
        await db.fetchval(
            "SELECT count(*) FROM login_throttle WHERE key = $1", f"phone:{user.phone}"
        )
        == 0
    )


async def test_lockout_per_client_address(client: Client, accounts: Accounts) -> None:
    # One address trying many phones is stopped too (settings: 10 per address).
    for i in range(10):
        response = await client.post(
            "/api/v1/auth/login", json={"phone": f"09100000{i:02d}", "password": "guess"}
        )
        assert response.status_code == 401
    user = await accounts.create("admin")
    blocked = await client.post(
        "/api/v1/auth/login", json={"phone": user.phone, "password": PASSWORD}
    )
    assert blocked.status_code == 429


async def test_disabled_user_cannot_sign_in_or_refresh(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    user = await accounts.create("admin")
    tokens = await accounts.login(user)
    await db.execute("UPDATE app_user SET disabled = true WHERE id = $1", user.id)
    login = await client.post(
        "/api/v1/auth/login", json={"phone": user.phone, "password": PASSWORD}
    )
    assert login.status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}
    )
    assert refresh.status_code == 401


async def test_logins_are_audited_without_secrets(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    user = await accounts.create("admin")
    await accounts.login(user)
    await client.post("/api/v1/auth/login", json={"phone": user.phone, "password": "wrong!"})
    rows = await db.fetch("SELECT action, subject_id, detail::text AS detail FROM audit_log")
    assert [r["action"] for r in rows] == ["login", "login_failed"]
    assert all(r["subject_id"] == str(user.id) for r in rows)
    assert all(PASSWORD not in r["detail"] and "wrong!" not in r["detail"] for r in rows)


async def test_invalid_phone_is_a_field_error(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/login",
        json={"phone": "12345678901", "password": "x"},
        headers={"Accept-Language": "en-US,en;q=0.9"},
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [
        {
            "field": "phone",
            "code": "format",
            "message": "Enter a Vietnamese mobile number, e.g. 0912345678.",
        }
    ]


async def test_concurrent_guesses_get_no_more_checks_than_the_limit(dsn: str) -> None:
    """40 attempts for one phone at once, each on its own connection (as 40 requests over
    several workers would be): the count is taken before the password check, so only the
    limit's worth go ahead; the others wait for the lock."""
    from api.db import connect
    from api.queries.accounts import take_attempt

    conns = [await connect(dsn) for _ in range(40)]
    try:
        waits = await asyncio.gather(
            *(
                take_attempt(conn, [("phone:+84900000999", 5), (f"addr:10.0.0.{i}", 20)], 900)
                for i, conn in enumerate(conns)
            )
        )
    finally:
        for conn in conns:
            await conn.close()
    assert sum(1 for wait in waits if wait == 0) == 5
    assert all(wait > 800 for wait in waits if wait)
