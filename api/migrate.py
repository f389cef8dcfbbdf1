"""Running the Alembic revisions under ``migrations/`` from the app and the tests."""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path

from alembic import command, op
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.util import await_only

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["dsn"] = dsn
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    """Apply revisions up to ``revision``. Must not be called from a running event loop."""
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


async def upgrade_async(dsn: str, revision: str = "head") -> None:
    # env.py runs its own event loop, so give it a thread of its own.
    await asyncio.to_thread(upgrade, dsn, revision)


@cache
def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("")).get_current_head()
    assert head is not None
    return head


def execute_script(sql: str) -> None:
    """Run a multi-statement SQL script inside a revision's transaction.

    SQLAlchemy's asyncpg adapter prepares every statement, and a prepared statement holds
    one command; asyncpg's own ``execute`` without arguments takes a whole script.
    """
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    await_only(driver_connection.execute(sql))


def executemany(sql: str, rows: list[tuple[object, ...]]) -> None:
    """Bulk parameterized statement inside a revision (data migrations)."""
    driver_connection = op.get_bind().connection.driver_connection
    assert driver_connection is not None
    await_only(driver_connection.executemany(sql, rows))
