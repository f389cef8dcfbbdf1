"""Every test runs against a real PostgreSQL.

The schema is migrated once per session into a template database; each test gets its own
database cloned from it (CREATE DATABASE … TEMPLATE …, tens of milliseconds), and its own
app built by ``create_app`` with a pool bound to the test's event loop. With DATABASE_URL
unset the embedded server under ``.data/pgtest`` is used; with it set, that server.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import embedded, migrate
from api.app import create_app
from api.config import Settings
from api.passwords import Passwords

ROOT = Path(__file__).resolve().parent.parent

# Cheap argon2 parameters: the tests exercise the logic, bench/ measures the real cost.
FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery"
METRICS_TOKEN = "test-metrics-token"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Every test builds an app, so the heap grows all session and Python's full collections
    (which walk it all) grew with it: 16 % of a 55 s sample of the suite. Freeze what the
    imports made (never garbage) and collect the young generation less often: 8 % after."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """A DSN for the server's maintenance database (where we create and drop databases)."""
    if url := os.environ.get("DATABASE_URL"):
        return url
    dsn = embedded.start(ROOT / ".data" / "pgtest")

    async def relax() -> None:
        # Test databases are disposable: skip the fsyncs that dominate CREATE DATABASE.
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("ALTER SYSTEM SET fsync = off")
            await conn.execute("ALTER SYSTEM SET synchronous_commit = off")
            await conn.execute("ALTER SYSTEM SET full_page_writes = off")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    asyncio.run(relax())
    return dsn


async def _create_database(server_dsn: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()


async def _drop_database(server_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_db(server_dsn: str) -> Iterator[str]:
    """A database migrated to head, used as the template of every test database."""
    name = f"cds_template_{os.getpid()}"
    asyncio.run(_create_database(server_dsn, name))
    migrate.upgrade(embedded.with_database(server_dsn, name))
    yield name
    asyncio.run(_drop_database(server_dsn, name))


@pytest.fixture
async def empty_db(server_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"cds_t_{uuid.uuid4().hex[:12]}"
    await _create_database(server_dsn, name)
    yield embedded.with_database(server_dsn, name)
    await _drop_database(server_dsn, name)


@pytest.fixture
async def dsn(server_dsn: str, template_db: str) -> AsyncIterator[str]:
    """A private database for one test, cloned from the migrated template."""
    name = f"cds_t_{uuid.uuid4().hex[:12]}"
    await _create_database(server_dsn, name, template=template_db)
    yield embedded.with_database(server_dsn, name)
    await _drop_database(server_dsn, name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        env="test",
        data_dir=str(tmp_path),
        jwt_secret="test-secret-that-is-long-enough-for-hs256",
        cell_key_secret="test-cell-key-secret",
        metrics_token=METRICS_TOKEN,
        login_max_failures=3,
        login_max_failures_per_addr=10,
        pool_min=1,
        pool_max=4,
        webhook_worker=False,  # tests/test_webhooks.py runs it where it is tested
        **FAST_ARGON2,  # type: ignore[arg-type]
    )


@pytest.fixture
def app(dsn: str, settings: Settings) -> Litestar:
    return create_app(dsn, settings)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection to the test's database, to arrange data and check results."""
    from api.db import connect

    conn = await connect(dsn)
    yield conn
    await conn.close()


@dataclass
class Account:
    id: uuid.UUID
    phone: str
    role: str
    area_code: str | None
    team_id: uuid.UUID | None = None


class Accounts:
    """Creates users directly in the database and signs them in through the API."""

    def __init__(self, db: asyncpg.Connection, client: AsyncTestClient[Litestar]) -> None:
        self.db = db
        self.client = client
        self.hasher = Passwords(1, 1024, 1)
        self._hash: str | None = None
        self._serial = 0

    async def create(
        self,
        role: str,
        area_code: str | None = None,
        *,
        team_id: uuid.UUID | None = None,
        phone: str | None = None,
        password: str = PASSWORD,
    ) -> Account:
        self._serial += 1
        phone = phone or f"+8490{self._serial:07d}"
        area = (
            await self.db.fetchrow(
                "SELECT id, province_id FROM area WHERE scheme = 'vn2025' AND code = $1", area_code
            )
            if area_code
            else None
        )
        password_hash = await self.hasher.hash(password)
        user_id = uuid.uuid4()
        await self.db.execute(
            """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id, team_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            user_id,
            phone,
            password_hash,
            role,
            area["id"] if area else None,
            area["province_id"] if area else None,
            team_id,
        )
        return Account(user_id, phone, role, area_code, team_id)

    async def team(self, ward_code: str, name: str = "Tổ 1") -> uuid.UUID:
        team_id = uuid.uuid4()
        await self.db.execute(
            """INSERT INTO team (id, ward_id, province_id, name)
               SELECT $1, id, province_id, $3 FROM area WHERE scheme = 'vn2025' AND code = $2""",
            team_id,
            ward_code,
            name,
        )
        return team_id

    async def login(self, account: Account, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"phone": account.phone, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def headers(self, account: Account) -> dict[str, str]:
        tokens = await self.login(account)
        return {"Authorization": f"Bearer {tokens['accessToken']}"}


@pytest.fixture
async def accounts(db: asyncpg.Connection, client: AsyncTestClient[Litestar]) -> Accounts:
    return Accounts(db, client)


# Real areas used across the tests (2025 codes).
THANH_HOA = "38"
HA_NOI = "01"
HAC_THANH = "14797"  # Phường Hạc Thành, Thanh Hóa
HAM_RONG = "14758"  # Phường Hàm Rồng, Thanh Hóa
BA_DINH = "00004"  # Phường Ba Đình, Hà Nội


HOUSEHOLD_DIGITAL = "5e000000-0000-4000-8000-000000000001"
NOTICE = "2025-1"


def member(
    birth_year: int = 1980,
    *,
    member_id: str | None = None,
    **answers: object,
) -> dict[str, object]:
    """One roster entry of household_digital; every required answer has a default."""
    values: dict[str, object] = {
        "birth_year": birth_year,
        "smartphone": True,
        "vneid": "level2",
        "cloud_accounts": 1,
        "digital_signature": False,
        "epay": True,
        "eps_used": False,
        "skills_trained": False,
    }
    values.update(answers)
    return {"memberId": member_id or str(uuid.uuid4()), "answers": values}


def submission(
    household_id: uuid.UUID | str,
    members: list[dict[str, object]] | None = None,
    *,
    submission_id: uuid.UUID | str | None = None,
    supersedes: uuid.UUID | str | None = None,
    collected_at: str = "2025-07-01T09:30:00+07:00",
    consent: bool = True,
    **answers: object,
) -> dict[str, object]:
    """A valid household_digital submission unless the arguments say otherwise."""
    members = members if members is not None else [member(1980), member(1985), member(2012)]
    values: dict[str, object] = {
        "hh_size": len(members),
        "hh_broadband": "fibre",
        "hh_smart_devices": 3,
    }
    values.update(answers)
    return {
        "id": str(submission_id or uuid.uuid4()),
        "surveyId": HOUSEHOLD_DIGITAL,
        "surveyVersion": 1,
        "householdId": str(household_id),
        "collectedAt": collected_at,
        "consent": {"given": consent, "noticeVersion": NOTICE},
        "answers": values,
        "members": members,
        **({"supersedes": str(supersedes)} if supersedes else {}),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: Litestar) -> Iterator[str]:
    """The app served by uvicorn in a thread on a free loopback port, once it answers
    ``/readyz``: yields its base URL; stops it on exit (for tests that need a real socket)."""
    import httpx
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
