"""Operations: liveness, readiness (database and migrations), metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import migrate
from api.app import create_app
from api.config import Settings
from tests.conftest import SCRAPER, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def test_health_and_readiness(client: Client) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "revision": migrate.head_revision()}


async def test_not_ready_when_migrations_are_behind(empty_db: str, settings: Settings) -> None:
    await asyncio.to_thread(migrate.upgrade, empty_db, "0001")
    async with AsyncTestClient(app=create_app(empty_db, settings)) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["code"] == "not_ready"
        assert response.headers["retry-after"] == "5"
        assert (await client.get("/healthz")).status_code == 200


async def test_metrics_count_requests_by_route(client: Client, accounts: Accounts) -> None:
    headers = await accounts.headers(await accounts.create("admin"))
    await client.get("/api/v1/areas/38", headers=headers)
    await client.get("/api/v1/areas/01", headers=headers)
    text = (await client.get("/metrics", headers=SCRAPER)).text
    assert 'http_requests_total{method="GET",route="/api/v1/areas/{code}",status="200"} 2.0' in (
        text
    )
    assert "http_request_duration_seconds_bucket" in text
    assert "db_pool_size" in text
    assert "db_pool_in_use" in text


async def test_metrics_show_the_folder_at_work(client: Client, db: asyncpg.Connection) -> None:
    """The folds, the rows they folded, how long they took, when the last one committed (the
    folder's lag is now minus that) and the log left after it."""
    ward = await db.fetchrow("SELECT id, province_id FROM area WHERE code = '14797'")
    await db.executemany(
        """INSERT INTO stat_log (ward_id, province_id, month, measure, numerator, denominator,
                                 numerator_key, denominator_key)
           VALUES ($1, $2, date_trunc('month', now())::date, $3, 1, 1, 7, 7)""",
        [(ward["id"], ward["province_id"], measure) for measure in ("COVERAGE", "HH_BROADBAND")],
    )
    before = time.time()
    for _ in range(200):  # the app's folder folds every half second
        if not await db.fetchval("SELECT count(*) FROM stat_log"):
            break
        await asyncio.sleep(0.05)
    text = (await client.get("/metrics", headers=SCRAPER)).text
    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith("stat_")
    }
    assert samples["stat_folds_total"] >= 1
    assert samples["stat_folded_log_rows_total"] == 2
    assert samples["stat_fold_duration_seconds_count"] == samples["stat_folds_total"]
    assert before - 1 <= samples["stat_last_fold_timestamp_seconds"] <= time.time()
    assert samples["stat_log_rows_after_fold"] == 0


async def test_openapi_document(client: Client) -> None:
    response = await client.get("/schema/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    operation_ids = {
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    assert {
        "login",
        "refresh",
        "logout",
        "me",
        "listAreas",
        "getArea",
        "createUser",
        "listUsers",
        "updateUser",
        "createTeam",
        "healthz",
        "readyz",
    } <= operation_ids
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert "application/problem+json" in login["responses"]["401"]["content"]
    # The browsable documentation is public too.
    assert (await client.get("/schema")).status_code == 200


async def test_logs_never_contain_secrets(client: Client, accounts: Accounts, caplog) -> None:  # type: ignore[no-untyped-def]
    user = await accounts.create("admin")
    caplog.set_level("DEBUG")
    tokens = await accounts.login(user)
    await client.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['accessToken']}"})
    await client.post("/api/v1/auth/login", json={"phone": user.phone, "password": "s3cret-wrong"})
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "congdongso.access" in {record.name for record in caplog.records}
    for secret in (tokens["accessToken"], tokens["refreshToken"], "s3cret-wrong", user.phone):
        assert secret not in logged


async def test_metrics_need_the_token(client: Client) -> None:
    assert (await client.get("/metrics")).status_code == 404  # the test client is not local
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (await client.get("/metrics", headers=wrong)).status_code == 404
    assert (await client.get("/metrics", headers=SCRAPER)).status_code == 200


async def test_readiness_answers_within_its_budget_when_the_pool_is_exhausted(
    app: Litestar, client: Client
) -> None:
    """Every pooled connection busy: /readyz says 503 within about 2 s, never hangs."""
    pool = app.state.pool  # lives on the app's event loop, run by the client's portal

    async def take_all() -> list[Any]:
        return [await pool.acquire() for _ in range(pool.get_max_size())]

    async def give_back(held: list[Any]) -> None:
        for conn in held:
            await pool.release(conn)

    held = client.blocking_portal.call(take_all)
    try:
        started = time.monotonic()
        response = await client.get("/readyz")
        took = time.monotonic() - started
    finally:
        client.blocking_portal.call(give_back, held)
    assert response.status_code == 503
    assert took < 3.5


async def test_a_request_that_gets_no_connection_in_time_is_a_503(
    app: Litestar, client: Client, accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pooled connection busy (long exports, a stuck query): other requests get a
    503 with Retry-After once the wait is over, instead of hanging."""
    import api.db

    monkeypatch.setattr(api.db, "POOL_WAIT", 0.5)
    admin = await accounts.headers(await accounts.create("admin"))
    pool = app.state.pool

    async def take_all() -> list[Any]:
        return [await pool.acquire() for _ in range(pool.get_max_size())]

    async def give_back(held: list[Any]) -> None:
        for conn in held:
            await pool.release(conn)

    held = client.blocking_portal.call(take_all)
    try:
        response = await client.get("/api/v1/areas/38", headers=admin)
    finally:
        client.blocking_portal.call(give_back, held)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert (await client.get("/api/v1/areas/38", headers=admin)).status_code == 200
