"""Migrations apply from scratch, go all the way down, and come back up."""

from __future__ import annotations

import asyncio
from datetime import date

import asyncpg
import pytest

from api import migrate

pytestmark = pytest.mark.anyio


async def _tables(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {row["tablename"] for row in rows}
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade(empty_db: str) -> None:
    await migrate.upgrade_async(empty_db)
    assert {"area", "app_user", "refresh_token", "audit_log", "hamlet", "team"} <= await _tables(
        empty_db
    )
    await asyncio.to_thread(migrate.downgrade, empty_db, "base")
    assert await _tables(empty_db) <= {"alembic_version"}
    await migrate.upgrade_async(empty_db)
    conn = await asyncpg.connect(empty_db)
    try:
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == (
            migrate.head_revision()
        )
        assert await conn.fetchval("SELECT count(*) FROM area") == 34 + 3321
    finally:
        await conn.close()


async def test_each_revision_downgrades_one_step(empty_db: str) -> None:
    """Every revision's downgrade undoes exactly its upgrade."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config(empty_db))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    for revision in revisions:
        await asyncio.to_thread(migrate.upgrade, empty_db, revision)
        before = await _tables(empty_db)
        await asyncio.to_thread(migrate.downgrade, empty_db, "-1")
        await asyncio.to_thread(migrate.upgrade, empty_db, revision)
        assert await _tables(empty_db) == before


async def test_pending_accounts_survive_a_downgrade_disabled(empty_db: str) -> None:
    """0008 down: a pending account (no password) stays, disabled, with a hash nothing
    matches; back up, it is an ordinary disabled account."""
    from api.passwords import Passwords

    await asyncio.to_thread(migrate.upgrade, empty_db, "0008")
    conn = await asyncpg.connect(empty_db)
    try:
        await conn.execute(
            """INSERT INTO app_user (id, phone, role, activation_hash, activation_expires_at)
               VALUES (gen_random_uuid(), '+84981000009', 'admin', '\\x00', now())"""
        )
        await asyncio.to_thread(migrate.downgrade, empty_db, "0007")
        row = await conn.fetchrow("SELECT password_hash, disabled FROM app_user")
        assert row["disabled"] is True
        assert not await Passwords(1, 1024, 1).verify(row["password_hash"], "!pending")
        await asyncio.to_thread(migrate.upgrade, empty_db, "0008")
        assert await conn.fetchval("SELECT password_hash FROM app_user") == "!pending"
    finally:
        await conn.close()


async def test_migrate_computes_the_provinces_sums_of_counters_kept_before(
    empty_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counters kept before 0015 get their provinces' kept sums from ``congdongso migrate``:
    the kept sums then read as perturbing every ward would."""
    from api import cli
    from api.stats import sums

    await asyncio.to_thread(migrate.upgrade, empty_db, "0014")
    conn = await asyncpg.connect(empty_db)
    try:
        wards = await conn.fetch(
            """SELECT id, province_id FROM (
                   SELECT w.id, w.province_id,
                          row_number() OVER (PARTITION BY w.province_id ORDER BY w.id) AS k
                   FROM area w JOIN area p ON p.id = w.province_id
                   WHERE w.level = 'ward' AND p.code IN ('38', '01')) w
               WHERE k <= 20"""
        )
        months = [date(2026, 3, 1), date(2026, 6, 1), date(2026, 9, 1)]
        for index, ward in enumerate(wards):
            total = [0, 0, 0, 0]
            for step, month in enumerate(months):
                cell = [3 + index % 7 + step, 9 + index % 5 + 2 * step, 17 * index, 31 * index]
                await conn.execute(
                    """INSERT INTO stat_delta (area_id, measure, month, numerator, denominator,
                           numerator_key, denominator_key) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                    ward["id"], "ADULT_SMARTPHONE", month, *cell,
                )  # fmt: skip
                total = [a + b for a, b in zip(total, cell, strict=True)]
            await conn.execute(
                """INSERT INTO stat_current (area_id, parent_id, measure, numerator, denominator,
                       numerator_key, denominator_key) VALUES ($1, $2, $3, $4, $5, $6, $7)""",
                ward["id"], ward["province_id"], "ADULT_SMARTPHONE", *total,
            )  # fmt: skip
        monkeypatch.setenv("DATABASE_URL", empty_db)
        assert await asyncio.to_thread(cli.main, ["migrate"]) == 0
        assert await conn.fetchval("SELECT count(*) FROM stat_parent_now") == 2
        ratios = await conn.fetchval(sums.RATIOS_SQL)
        found = await sums.now(conn, None, ratios)
        assert found == await sums.wards_now(conn, None, ratios)
        assert all(cells["ADULT_SMARTPHONE"].denominator > 0 for cells in found.values())
        ends = [date(2026, 1, 1), *months, date(2026, 11, 1)]
        assert await sums.at(conn, None, ends, ratios) == await sums.wards_at(
            conn, None, ends, ratios
        )
    finally:
        await conn.close()
