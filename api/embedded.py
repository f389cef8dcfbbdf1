"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset.

Its data lives under the data dir and survives restarts. Every process that asks for it
(the server, a CLI command, the tests) attaches to the same running postmaster; pgserver
stops it when the last of them exits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg

_servers: dict[Path, Any] = {}  # keeps handles alive for the life of the process

DATABASE = "congdongso"


def start(pgdata: Path) -> str:
    """Start (or attach to) the embedded server in ``pgdata``; return a DSN for its postgres db."""
    import warnings

    # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); /tmp is fine here.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
    import pgserver

    pgdata = pgdata.resolve()
    if pgdata not in _servers:
        pgdata.mkdir(parents=True, exist_ok=True)
        # pgserver logs every step at INFO; keep our logs readable.
        logging.getLogger("pgserver").setLevel(logging.WARNING)
        _servers[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
    socket_dir = _servers[pgdata].get_postmaster_info().socket_dir
    return f"postgresql://postgres@/postgres?host={quote(str(socket_dir))}"


def with_database(dsn: str, database: str) -> str:
    """The same server DSN pointing at another database."""
    head, _, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


async def ensure_database(server_dsn: str, database: str) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def resolve_database_url(database_url: str | None, data_dir: str) -> str:
    """DATABASE_URL when given; otherwise the embedded server's application database."""
    if database_url:
        return database_url
    server_dsn = start(Path(data_dir) / "pg")
    await ensure_database(server_dsn, DATABASE)
    return with_database(server_dsn, DATABASE)
