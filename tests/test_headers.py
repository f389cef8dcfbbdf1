"""Every answer carries the security headers; tokens and personal data are never cached."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import HAC_THANH, PASSWORD, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


def secured(headers: dict[str, str] | object) -> None:
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert headers["referrer-policy"] == "no-referrer"  # type: ignore[index]
    assert headers["x-frame-options"] == "DENY"  # type: ignore[index]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]  # type: ignore[index]


async def test_security_headers_everywhere(client: Client, accounts: Accounts) -> None:
    official = await accounts.create("ward_official", HAC_THANH)
    login = await client.post(
        "/api/v1/auth/login", json={"phone": official.phone, "password": PASSWORD}
    )
    assert login.status_code == 200
    secured(login.headers)
    assert login.headers["cache-control"] == "no-store"  # it carries tokens
    headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    me = await client.get("/api/v1/me", headers=headers)
    secured(me.headers)
    assert me.headers["cache-control"] == "no-store"
    households = await client.get("/api/v1/households", params={"ward": HAC_THANH}, headers=headers)
    assert households.headers["cache-control"] == "no-store"
    assert me.headers["content-security-policy"].startswith("default-src 'none'")
    rejected = await client.get("/api/v1/me")  # refused before any handler
    assert rejected.status_code == 401
    secured(rejected.headers)
    # What a handler marks cacheable stays cacheable.
    public = await client.get(f"/api/v1/public/areas/{HAC_THANH}/stats")
    secured(public.headers)
    assert public.headers["cache-control"].startswith("public")
    docs = await client.get("/schema")
    secured(docs.headers)
    assert "script-src" in docs.headers["content-security-policy"]
