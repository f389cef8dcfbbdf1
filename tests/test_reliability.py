"""Bounded resources and clean failures (issue 12): per-role database limits, an outside
table lock, exports on their own pool with a per-caller limit, clients that leave.

The slow, loaded versions of these run in ``make chaos`` (bench/chaos.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import embedded
from api.app import create_app
from api.config import Settings
from api.db import LIMITS, connect, set_local_limits
from tests.conftest import (
    FAST_ARGON2,
    HAC_THANH,
    PASSWORD,
    Accounts,
    _create_database,
    _drop_database,
    serve_in_thread,
    submission,
)
from tests.test_stats import new_household, ward_team

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


# Per-role limits --------------------------------------------------------------------------


async def test_each_role_of_work_runs_with_its_limits(
    app: Litestar, client: Client, dsn: str
) -> None:
    async def shown(pool: asyncpg.Pool) -> tuple[str, str, str]:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'),"
                " current_setting('idle_in_transaction_session_timeout')"
            )
            return row[0], row[1], row[2]

    assert client.blocking_portal.call(shown, app.state.pool) == ("15s", "2s", "5s")
    assert client.blocking_portal.call(shown, app.state.export_pool) == ("30s", "2s", "2s")
    rebuild = await connect(dsn, work="rebuild")
    try:
        assert await rebuild.fetchval("SHOW statement_timeout") == "0"
        assert await rebuild.fetchval("SHOW lock_timeout") == "30s"
        async with rebuild.transaction():
            await rebuild.execute(set_local_limits("ingest"))
            assert await rebuild.fetchval("SHOW statement_timeout") == "30s"
        assert await rebuild.fetchval("SHOW statement_timeout") == "0"  # SET LOCAL only
    finally:
        await rebuild.close()


async def test_an_outside_table_lock_is_a_503_within_the_lock_timeout(
    client: Client, accounts: Accounts, dsn: str
) -> None:
    """An operator's `LOCK TABLE household` (or a stuck migration): a push and /me answer
    503 with Retry-After once their lock timeout is over, instead of waiting for the lock."""
    team = await ward_team(accounts, HAC_THANH)
    household = await new_household(client, team, HAC_THANH)
    item = submission(household)
    outside = await asyncpg.connect(dsn)
    try:
        locking = outside.transaction()
        await locking.start()
        await outside.execute("LOCK TABLE household, app_user IN ACCESS EXCLUSIVE MODE")
        budget = LIMITS["ingest"].lock / 1000 + 2  # the lock timeout, and time to answer
        started = time.monotonic()
        pushed = await client.post("/api/v1/sync/push", json={"submissions": [item]}, headers=team)
        took = time.monotonic() - started
        assert pushed.status_code == 503, pushed.text
        assert pushed.headers["retry-after"] == "5"
        assert took < budget, took
        started = time.monotonic()
        me = await client.get("/api/v1/me", headers=team)
        assert me.status_code == 503, me.text
        assert time.monotonic() - started < LIMITS["request"].lock / 1000 + 2
        await locking.rollback()
    finally:
        await outside.close()
    # Nothing was half-stored: the retry stores the item once.
    again = await client.post("/api/v1/sync/push", json={"submissions": [item]}, headers=team)
    assert [r["status"] for r in again.json()["results"]] == ["accepted"]


# Exports ----------------------------------------------------------------------------------


async def test_a_caller_runs_a_limited_number_of_exports(
    app: Litestar, client: Client, accounts: Accounts
) -> None:
    official = await accounts.create("ward_official", HAC_THANH)
    headers = await accounts.headers(official)
    slots = app.state.export_slots
    url = f"/api/v1/stats/areas/{HAC_THANH}/export.csv"
    held = [slots.take(official.id) for _ in range(slots.limit)]
    refused = await client.get(url, headers={**headers, "Accept-Language": "en"})
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "30"
    assert refused.json()["code"] == "too_many_exports"
    assert f"{slots.limit} exports running" in refused.json()["detail"]
    # Another official is not held back by this one.
    other = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    assert (await client.get(url, headers=other)).status_code == 200
    held.pop()()
    done = await client.get(url, headers=headers)
    assert done.status_code == 200
    assert done.content.startswith("\ufeff".encode())
    for release in held:
        release()
    assert slots.running == {}  # finished exports gave their slot back


# A live server (uvicorn in a thread, real sockets) --------------------------------------


async def _seed_admin(dsn: str) -> str:
    from api.passwords import Passwords

    conn = await connect(dsn)
    try:
        phone = "+84911000002"
        await conn.execute(
            "INSERT INTO app_user (id, phone, password_hash, role) VALUES ($1, $2, $3, 'admin')",
            uuid.uuid4(),
            phone,
            await Passwords(1, 1024, 1).hash(PASSWORD),
        )
        return phone
    finally:
        await conn.close()


class Live:
    def __init__(self, port: int, dsn: str, token: str) -> None:
        self.port, self.dsn, self.token = port, dsn, token

    def request(self, path: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n\r\n"
        ).encode()


@pytest.fixture(scope="module")
def live(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    name = f"cds_live_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(server_dsn, name, template=template_db))
    dsn = embedded.with_database(server_dsn, name)
    phone = asyncio.run(_seed_admin(dsn))
    settings = Settings(
        env="test",
        data_dir=str(Path(tmp_path_factory.mktemp("live"))),
        jwt_secret="live-secret-live-secret-live-secret-32",
        exports_per_user=1,
        **FAST_ARGON2,  # type: ignore[arg-type]
    )
    with serve_in_thread(create_app(dsn, settings)) as base:
        token = httpx.post(
            f"{base}/api/v1/auth/login", json={"phone": phone, "password": PASSWORD}
        ).json()["accessToken"]
        yield Live(int(base.rsplit(":", 1)[1]), dsn, token)
    asyncio.run(_drop_database(server_dsn, name))


async def _busy_export_backends(dsn: str) -> list[str]:
    """States of the export pool's backends that hold something (not idle)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """SELECT state FROM pg_stat_activity
               WHERE application_name = 'congdongso-export' AND state <> 'idle'"""
        )
        return [row["state"] for row in rows]
    finally:
        await conn.close()


def _start_export(live: Live, path: str, *, read: int) -> socket.socket:
    """Ask for an export and read ``read`` bytes of the answer (headers included)."""
    sock = socket.create_connection(("127.0.0.1", live.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(live.request(path))
    got = b""
    while len(got) < read:
        chunk = sock.recv(65536)
        assert chunk, got[:300]
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:300]
    return sock


def test_a_client_that_leaves_an_export_releases_its_connection_within_a_second(
    live: Live,
) -> None:
    sock = _start_export(live, "/api/v1/stats/areas/VN/export.csv", read=256 * 1024)
    sock.close()
    left = time.monotonic()
    while busy := asyncio.run(_busy_export_backends(live.dsn)):
        assert time.monotonic() - left < 1.0, busy
        time.sleep(0.05)
    # The caller's only export slot (exports_per_user=1) came back with it (the answer's
    # status is enough: the export is not read).
    for _ in range(20):
        with httpx.stream(
            "GET",
            f"http://127.0.0.1:{live.port}/api/v1/stats/areas/38/export.csv",
            headers={"Authorization": f"Bearer {live.token}"},
        ) as answer:
            status = answer.status_code
        if status != 429:
            break
        time.sleep(0.05)
    assert status == 200


def test_a_stalled_reader_holds_no_connection_and_slows_no_one(live: Live) -> None:
    """A client that stops reading: the server's send waits, but no database connection or
    transaction waits with it, and other requests answer at once."""
    sock = _start_export(live, "/api/v1/stats/areas/VN/export.csv", read=1)
    try:
        time.sleep(2.5)  # the socket buffers fill up; the export pauses at a send
        assert asyncio.run(_busy_export_backends(live.dsn)) == []
        started = time.monotonic()
        me = httpx.get(
            f"http://127.0.0.1:{live.port}/api/v1/me",
            headers={"Authorization": f"Bearer {live.token}"},
        )
        assert me.status_code == 200
        assert time.monotonic() - started < 2.0  # not the 30 s of one pool for all
    finally:
        sock.close()


# Clients that leave ------------------------------------------------------------------------


def _scope(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def _cut_short(messages: list[dict[str, Any]]) -> tuple[Any, Any]:
    """ASGI receive/send for a client that sends ``messages``, then is gone."""

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    return receive, send


def _access(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.__dict__["status"] for r in caplog.records if r.name == "congdongso.access"]


async def test_a_client_that_disconnects_mid_body_is_a_499_not_a_500(
    app: Litestar, client: Client, accounts: Accounts, caplog: pytest.LogCaptureFixture
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    caplog.set_level(logging.INFO)
    caplog.clear()
    for path, headers in (
        ("/api/v1/auth/login", {}),
        ("/api/v1/sync/push", team),
        ("/api/v1/submissions", team),
    ):
        messages = [
            {"type": "http.request", "body": b'{"submissions": [{"id": ', "more_body": True},
            {"type": "http.disconnect"},
        ]
        receive, send = _cut_short(messages)
        scope = _scope(
            "POST",
            path,
            {**headers, "Content-Type": "application/json", "Content-Length": "4000"},
        )
        client.blocking_portal.call(app, scope, receive, send)
    assert _access(caplog) == [499, 499, 499]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_that_leaves_before_the_reply_is_a_499_and_its_push_is_kept(
    app: Litestar,
    client: Client,
    accounts: Accounts,
    db: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import msgspec

    team = await ward_team(accounts, HAC_THANH)
    item = submission(await new_household(client, team, HAC_THANH))
    body = msgspec.json.encode({"submissions": [item]})
    caplog.set_level(logging.INFO)
    caplog.clear()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # the server notices nothing until it writes
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        raise OSError("connection reset by peer")

    scope = _scope(
        "POST",
        "/api/v1/sync/push",
        {**team, "Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    client.blocking_portal.call(app, scope, receive, send)
    assert _access(caplog) == [499]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The push was stored before the answer was lost: the app's retry gets "duplicate".
    assert (
        await db.fetchval("SELECT count(*) FROM submission WHERE id = $1", uuid.UUID(item["id"]))
        == 1
    )  # type: ignore[arg-type]
    retry = await client.post("/api/v1/sync/push", json={"submissions": [item]}, headers=team)
    assert [r["status"] for r in retry.json()["results"]] == ["duplicate"]


# Malformed bodies ------------------------------------------------------------------------

DEEP = b'{"a": ' + b"[" * 6000 + b"]" * 6000 + b"}"
LATIN1 = '{"phone": "0912345678", "password": "mật khẩu", "name": "Hà"}'.encode(
    "latin-1", "replace"
)


async def test_malformed_bodies_are_400_on_every_endpoint_signed_in_or_not(
    client: Client, accounts: Accounts
) -> None:
    """Every operation that takes a body, as admin, as a team member and without a token:
    truncated (Content-Length longer than the body), labelled latin-1, not UTF-8, nested
    6,000 deep. Never a 5xx; when the body is read at all, a 400 malformed_json."""
    document = (await client.get("/schema/openapi.json")).json()
    admin = await accounts.headers(await accounts.create("admin"))
    team = await ward_team(accounts, HAC_THANH)
    bodies = {
        "truncated": (b'{"phone": "09123', "application/json", "200"),
        "latin-1": (LATIN1 + b"\xe9\xff", "application/json; charset=latin-1", None),
        "deep": (DEEP, "application/json", None),
    }
    seen = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            url = path
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", str(uuid.uuid4()))
            for who, headers in (("nobody", {}), ("admin", admin), ("team", team)):
                for kind, (content, media, length) in bodies.items():
                    extra = {"Content-Type": media}
                    if length:
                        extra["Content-Length"] = length
                    response = await client.request(
                        method.upper(), url, content=content, headers={**headers, **extra}
                    )
                    where = (method, path, who, kind, response.text[:200])
                    assert response.status_code < 500, where
                    if response.status_code == 400:
                        # A JSON body sent where a form is expected (an XLSForm upload) is
                        # refused as a bad request, not parsed.
                        json_body = "application/json" in operation["requestBody"]["content"]
                        expected = ("malformed_json",) if json_body else ("bad_request",)
                        assert response.json()["code"] in expected, where
                    seen += 1
    assert seen > 60  # every body-taking operation was tried
