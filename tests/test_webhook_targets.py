"""A webhook cannot point the server at its own network (loopback, private, link-local
addresses), whoever registers it: an official must not be able to make the server call the
database, the metrics or a router's admin page."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.conftest import Accounts

pytestmark = pytest.mark.anyio


async def test_webhooks_to_this_servers_network_are_refused(
    client: AsyncTestClient[Litestar], accounts: Accounts
) -> None:
    admin = await accounts.headers(await accounts.create("admin"))
    province = await accounts.headers(await accounts.create("province_official", "38"))
    for headers in (admin, province):
        for url in (
            "http://127.0.0.1:5432/",
            "http://localhost:8000/metrics",
            "https://10.0.0.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8000/",
            "https://192.168.1.1/",
            "https://no-such-host.invalid/hook",
        ):
            answer = await client.post(
                "/api/v1/webhooks/",
                json={"url": url},
                headers={**headers, "Accept-Language": "en"},
            )
            assert answer.status_code == 400, (url, answer.text)
            (error,) = answer.json()["errors"]
            assert (error["field"], error["code"]) == ("url", "not_public"), error
            assert "public internet address" in error["message"]
    listed = await client.get("/api/v1/webhooks/", headers=admin)
    assert listed.status_code == 200
    assert listed.json() == []
