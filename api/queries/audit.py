"""The audit trail: logins, account and role changes, exports, target changes, deletions.

Each audited action is also an application event in the logs (api/logs.py), so an operator
sees sign-ins, exports, role and target changes and deletions as they happen.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from api.logs import event


async def record(
    conn: asyncpg.Connection,
    action: str,
    subject_type: str,
    subject_id: str | uuid.UUID | None,
    *,
    actor_id: uuid.UUID | None,
    province_id: int | None = None,
    client_addr: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Never put passwords, tokens or survey answers in ``detail``."""
    await conn.execute(
        """INSERT INTO audit_log (actor_id, action, subject_type, subject_id, province_id,
                                  client_addr, detail)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        actor_id,
        action,
        subject_type,
        None if subject_id is None else str(subject_id),
        province_id,
        client_addr,
        detail or {},
    )
    # The client address stays in the trail; the log carries who did what to what.
    event(
        action,
        subject_type=subject_type,
        subject_id=None if subject_id is None else str(subject_id),
        actor_id=None if actor_id is None else str(actor_id),
        province_id=province_id,
        detail=detail or {},
    )
