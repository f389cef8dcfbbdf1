"""The connection pool (tied to the app's lifespan) and the per-request connection."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

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


async def create_pool(dsn: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    pool: asyncpg.Pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        reset=keep_session,
        server_settings={"application_name": "congdongso", "timezone": "UTC"},
    )
    return pool


def pool_lifespan(dsn: str, min_size: int, max_size: int) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = await create_pool(dsn, min_size, max_size)
        app.state.pool = pool
        try:
            yield
        finally:
            await pool.close()

    return lifespan


POOL_WAIT = 5.0  # seconds a request waits for a connection before a 503 with Retry-After


async def provide_conn(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    async with state.pool.acquire(timeout=POOL_WAIT) as conn:
        yield conn


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection outside the pool (CLI commands), with the same codecs."""
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn
