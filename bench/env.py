"""Shared setup: the bench database, an admin account, and API servers as subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import msgspec

from api import embedded, migrate
from api.config import Settings
from api.passwords import Passwords
from bench.loadgen import Target, fetch

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATA_DIR = ROOT / ".data" / "bench"  # the servers' data dir (their JWT secret)
PGDATA = ROOT / ".data" / "pgbench"
DATABASE = "cds_bench"
ADMIN_PHONE = "+84900000001"
ADMIN_PASSWORD = "bench-password-1"
# The cell-key secret of every bench server and of the bench's own catalog (rebuilds), so
# that key sums rebuilt by the bench match what the servers compute.
CELL_KEY_SECRET = "bench-cell-key-secret-not-for-production"
APP = "api.asgi:app"  # the ASGI target the servers run

SERVERS = {
    "granian": [
        "granian", "--interface", "asgi", "--loop", "uvloop", "--no-ws",
        "--host", "127.0.0.1", "--port", "{port}", "--workers", "{workers}",
        "{app}",
    ],
    "uvicorn": [
        "uvicorn", "{app}", "--host", "127.0.0.1", "--port", "{port}",
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--workers", "{workers}",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class Context:
    quick: bool
    dsn: str  # the bench database
    postgres: str  # server version and durability settings, for the report
    settings: Settings  # the defaults the servers run with (argon2 parameters, ...)

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def count(self, full: int, quick: int) -> int:
        return quick if self.quick else full


async def setup(quick: bool, database: str = DATABASE) -> Context:
    """A fresh, migrated ``cds_bench`` database (embedded server unless DATABASE_URL is set)
    holding one admin whose password is hashed with the default argon2 parameters."""
    server_dsn = os.environ.get("DATABASE_URL") or embedded.start(PGDATA)
    conn = await asyncpg.connect(server_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{database}"')
        version = await conn.fetchval("SHOW server_version")
        durability = [
            f"{name}={await conn.fetchval(f'SHOW {name}')}"
            for name in ("fsync", "synchronous_commit", "full_page_writes")
        ]
    finally:
        await conn.close()
    if "fsync=off" in durability or "synchronous_commit=off" in durability:
        print("warning: this PostgreSQL is not durable; figures will look too good")
    dsn = embedded.with_database(server_dsn, database)
    await migrate.upgrade_async(dsn)

    settings = Settings(cell_key_secret=CELL_KEY_SECRET)
    hasher = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO app_user (id, phone, password_hash, role)
               VALUES ($1, $2, $3, 'admin')""",
            uuid.uuid4(),
            ADMIN_PHONE,
            await hasher.hash(ADMIN_PASSWORD),
        )
    finally:
        await conn.close()
    return Context(
        quick=quick,
        dsn=dsn,
        postgres=f"{version} ({', '.join(durability)})",
        settings=settings,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int = 0  # the server's main process (its workers are its children)

    def target(
        self, method: str, path: str, *, token: str | None = None, body: bytes | None = None
    ) -> Target:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return Target(self.port, method, path, headers, body)

    async def login(self, phone: str = ADMIN_PHONE, password: str = ADMIN_PASSWORD) -> str:
        """An access token, through the API."""
        body = msgspec.json.encode({"phone": phone, "password": password})
        status, answer = await fetch(self.target("POST", "/api/v1/auth/login", body=body))
        if status != 200:
            raise RuntimeError(f"login failed with {status}: {answer[:300]!r}")
        token: str = msgspec.json.decode(answer)["accessToken"]
        return token


@asynccontextmanager
async def serve(
    ctx: Context,
    name: str,
    settings: dict[str, str] | None = None,
    app: str = APP,
    label: str | None = None,
    cwd: Path = ROOT,
) -> AsyncIterator[Server]:
    """Run the API under ``name`` (granian or uvicorn, one worker per core) until the block
    ends, with default settings but for ``settings`` (CONGDONGSO_* variables, or others
    read by a bench-only ``app`` such as bench/exact_app.py). Its log goes to
    ``<DATA_DIR>/<label or name>.log`` (give servers running together their own label).
    ``cwd``: the source tree to run (another revision of the API, bench write)."""
    port = free_port()
    # As many workers as `congdongso serve` starts by default (one per core).
    workers = ctx.settings.workers
    argv = [str(BIN / SERVERS[name][0])] + [
        a.format(port=port, workers=workers, app=app) for a in SERVERS[name][1:]
    ]
    # Default settings (the bench measures them): drop any CONGDONGSO_* from the caller.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONGDONGSO_")}
    env |= {
        "DATABASE_URL": ctx.dsn,
        "CONGDONGSO_LOG_LEVEL": "WARNING",
        "CONGDONGSO_DATA_DIR": str(DATA_DIR),
        "CONGDONGSO_CELL_KEY_SECRET": CELL_KEY_SECRET,
    } | (settings or {})
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    log_path = DATA_DIR / f"{label or name}.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await _wait_ready(proc, port, log_path)
        yield Server(name, port, proc.pid)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait_ready(proc: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up:
        if proc.returncode is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{_tail(log_path)}")
        try:
            status, _ = await fetch(Target(port, "GET", "/readyz"))
            if status == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass  # not listening yet
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the server was not ready within 60 s:\n{_tail(log_path)}")


def cpu_seconds(root: int) -> float:
    """CPU time of a process and all its descendants, with the children they reaped (an
    exited PostgreSQL backend's time goes to the postmaster's): compare two readings."""
    parents: dict[int, int] = {}
    times: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # After the name: state, ppid, ... utime (14th field), stime, cutime, cstime.
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = sum(int(v) for v in fields[11:15])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(times.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def postmaster_pid(dsn: str) -> int | None:
    """The bench's own embedded PostgreSQL (None for a server given by DATABASE_URL)."""
    pid_file = PGDATA / "postmaster.pid"
    if os.environ.get("DATABASE_URL") or not pid_file.exists():
        return None
    return int(pid_file.read_text().split()[0])


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
