"""Alembic environment: plain-SQL revisions run over asyncpg.

The DSN comes from ``config.attributes["dsn"]`` (the app's CLI and the tests) or from
DATABASE_URL (plain ``alembic upgrade head``). A caller may also hand over an open
SQLAlchemy connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio
import os

import asyncpg
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

config = context.config


def run_with(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_async(dsn: str) -> None:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=connect, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with)
            await connection.commit()
    finally:
        await engine.dispose()


def run_online() -> None:
    shared = config.attributes.get("connection")
    if shared is not None:
        run_with(shared)
        return
    dsn = config.attributes.get("dsn") or os.environ.get("DATABASE_URL")
    if not dsn:
        raise RuntimeError("no database: set DATABASE_URL or use `congdongso migrate`")
    asyncio.run(run_async(dsn))


if context.is_offline_mode():
    context.configure(url="postgresql://", literal_binds=True, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_online()
