"""Ward settings for field work (table ``ward_setting``, migration 0010); a ward without a
row uses the defaults."""

from __future__ import annotations

import uuid

import asyncpg

from schemas.fieldwork import STALE_AFTER_DEFAULT


async def stale_after_months(conn: asyncpg.Connection, ward_id: int) -> int:
    months: int | None = await conn.fetchval(
        "SELECT stale_after_months FROM ward_setting WHERE ward_id = $1", ward_id
    )
    return STALE_AFTER_DEFAULT if months is None else months


async def set_stale_after_months(
    conn: asyncpg.Connection,
    *,
    ward_id: int,
    province_id: int,
    months: int,
    user_id: uuid.UUID,
) -> int:
    """Store the setting; returns the value it replaced (the default if none was set)."""
    previous: int | None = await conn.fetchval(
        """SELECT stale_after_months FROM ward_setting WHERE ward_id = $1 FOR UPDATE""", ward_id
    )
    await conn.execute(
        """INSERT INTO ward_setting (ward_id, province_id, stale_after_months, updated_by)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (ward_id) DO UPDATE
           SET stale_after_months = excluded.stale_after_months,
               updated_by = excluded.updated_by, updated_at = now()""",
        ward_id,
        province_id,
        months,
        user_id,
    )
    return STALE_AFTER_DEFAULT if previous is None else previous
