"""The connection pool (tied to the app's lifespan) and the per-request connection."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import asyncpg
import msgspec
from litestar import Litestar
from litestar.datastructures import State


def _encode_jsonb(value: Any) -> bytes:
    return b"\x01" + msgspec.json.encode(value)  # jsonb binary format: version byte 1


def _decode_jsonb(data: bytes) -> Any:
    return msgspec.json.decode(data[1:])


async def init_connection(conn: asyncpg.Connection) -> None:
    # Binary codecs also work with COPY (a text codec does not: asyncpg #604).
    for name in ("jsonb", "json"):
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            format="binary",
            encoder=_encode_jsonb if name == "jsonb" else msgspec.json.encode,
            decoder=_decode_jsonb if name == "jsonb" else msgspec.json.decode,
        )


async def keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool.

    The default reset sends ``RESET ALL; UNLISTEN *; CLOSE ALL; …`` on every release, a round
    trip as costly as a small query. This code never changes session state (no SET, LISTEN,
    session advisory locks or cursors outside transactions); asyncpg still rolls back an
    open transaction before this is called.
    """


Work = Literal["request", "ingest", "export", "rebuild"]


class Limits(msgspec.Struct, frozen=True):
    """How long PostgreSQL lets one role of work run a statement, wait for a lock and sit
    idle inside a transaction before it gives up (milliseconds, 0 = no limit). A limit hit
    is a 503 with Retry-After for the caller (api/errors.py), never a request that hangs."""

    statement: int
    lock: int
    idle_in_transaction: int

    def server_settings(self) -> dict[str, str]:
        return {
            "statement_timeout": str(self.statement),
            "lock_timeout": str(self.lock),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction),
        }


# The README's "Timeouts" table says the same; change both together.
LIMITS: Final[dict[Work, Limits]] = {
    # Requests are short reads and writes: a lock held elsewhere for 2 s means "later".
    "request": Limits(statement=15_000, lock=2_000, idle_in_transaction=5_000),
    # A push of 500 items locks its households and moves the counters in one transaction.
    "ingest": Limits(statement=30_000, lock=3_000, idle_in_transaction=5_000),
    # An export reads one province at a time in its own short transaction.
    "export": Limits(statement=30_000, lock=2_000, idle_in_transaction=2_000),
    # `congdongso stats rebuild` runs for minutes and takes EXCLUSIVE locks on the counters.
    "rebuild": Limits(statement=0, lock=30_000, idle_in_transaction=60_000),
}


def set_local_limits(work: Work) -> str:
    """SQL applying ``work``'s limits to the current transaction only (``SET LOCAL``), to be
    sent with the transaction's other settings in one round trip."""
    return "; ".join(
        f"SET LOCAL {name} = {int(value)}" for name, value in LIMITS[work].server_settings().items()
    )


def _server_settings(work: Work) -> dict[str, str]:
    return {
        "application_name": f"congdongso-{work}" if work != "request" else "congdongso",
        "timezone": "UTC",
        **LIMITS[work].server_settings(),
    }


async def create_pool(
    dsn: str, min_size: int = 2, max_size: int = 10, work: Work = "request"
) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        server_settings=_server_settings(work),
    )
    return pool


def pool_lifespan(dsn: str, min_size: int, max_size: int, export_max: int = 2) -> Any:
    """The request pool, and a small pool of its own for exports: however many officials
    export at once, ordinary requests always find a connection."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = await create_pool(dsn, min_size, max_size)
        try:
            exports = await create_pool(dsn, 0, export_max, work="export")
        except BaseException:
            await pool.close()
            raise
        app.state.pool = pool
        app.state.export_pool = exports
        try:
            yield
        finally:
            await exports.close()
            await pool.close()

    return lifespan


POOL_WAIT = 5.0  # seconds a request waits for a connection before a 503 with Retry-After


async def provide_conn(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    async with state.pool.acquire(timeout=POOL_WAIT) as conn:
        yield conn


async def connect(dsn: str, work: Work | None = None) -> asyncpg.Connection:
    """One connection outside the pool (CLI commands), with the same codecs; with ``work``,
    that role's server-side limits."""
    settings = _server_settings(work) if work else None
    conn: asyncpg.Connection = await asyncpg.connect(dsn, server_settings=settings)
    await init_connection(conn)
    return conn
