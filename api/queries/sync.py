"""The change stream an offline client pulls: households, deletions, survey and module versions.

Rows carry the transaction id (xid8) that last wrote them. A window [low, high) is read with
``high`` = the oldest transaction still running at the first page's snapshot (but the
folder's, which writes no row read here), so every row in the window was committed before the
window was read and no later commit can land in it.
"""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from api.stats.folder import FOLDER
from schemas.modules import LearnerProgress

HOUSEHOLD, DELETION, SURVEY_VERSION, MODULE_VERSION, PROGRESS = 1, 2, 0, 3, 4


class Change(msgspec.Struct, frozen=True, array_like=True):
    xid: int
    kind: int
    key: str


# The oldest transaction still running, leaving out the folder's (api/stats/folder.py): it
# writes only the statistics' tables, never a row a pull reads, and a pull right after a push
# must not wait for a fold that started first. Running xids are matched on their low 32 bits
# (pg_stat_activity shows an xid, the snapshot xid8s; concurrent xids are never 2^32 apart).
# A folder's xid this role cannot see is not left out: the wait, as before, is the safe side.
_HORIZON_SQL = """
SELECT coalesce(
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(snap.s) AS x
     WHERE x::text::bigint % 4294967296 NOT IN (
         SELECT backend_xid::text::bigint FROM pg_stat_activity
         WHERE application_name = $1 AND backend_xid IS NOT NULL)),
    pg_snapshot_xmax(snap.s)::text::bigint)
FROM (SELECT pg_current_snapshot() AS s) snap"""


async def horizon(conn: asyncpg.Connection) -> int:
    """Every transaction with an id below this one has finished (or is the folder's)."""
    xmin: int = await conn.fetchval(_HORIZON_SQL, FOLDER)
    return xmin


async def changes(
    conn: asyncpg.Connection,
    *,
    ward_id: int,
    province_id: int | None,
    household_id: uuid.UUID | None,
    low: int,
    high: int,
    after: Change | None,
    limit: int,
) -> list[Change]:
    """Changes in [low, high) for a ward (or one household of it), in (xid, kind, key) order.

    Survey versions: the national surveys' and the ward's province's."""
    rows = await conn.fetch(
        """SELECT xid, kind, key FROM (
               SELECT change_xid::text::bigint AS xid, 1 AS kind, id::text AS key
               FROM household
               WHERE ward_id = $1 AND ($2::uuid IS NULL OR id = $2)
                 AND change_xid >= $3::text::xid8 AND change_xid < $4::text::xid8
               UNION ALL
               SELECT change_xid::text::bigint, 2, household_id::text
               FROM household_tombstone
               WHERE ward_id = $1 AND ($2::uuid IS NULL OR household_id = $2)
                 AND change_xid >= $3::text::xid8 AND change_xid < $4::text::xid8
               UNION ALL
               SELECT v.change_xid::text::bigint, 0, v.survey_id::text || '/' || v.version
               FROM survey_version v JOIN survey s ON s.id = v.survey_id
               WHERE v.change_xid >= $3::text::xid8 AND v.change_xid < $4::text::xid8
                 AND (s.province_id IS NULL OR s.province_id = $9)
               UNION ALL
               SELECT change_xid::text::bigint, 3, module_id::text || '/' || version
               FROM learning_module_version
               WHERE change_xid >= $3::text::xid8 AND change_xid < $4::text::xid8
               UNION ALL
               SELECT change_xid::text::bigint, 4, module_id::text || '/' || learner_id
               FROM learner_module
               WHERE ward_id = $1 AND ($2::uuid IS NULL OR household_id = $2)
                 AND change_xid >= $3::text::xid8 AND change_xid < $4::text::xid8
           ) c
           WHERE ($5::bigint IS NULL OR (xid, kind, key) > ($5, $6, $7::text))
           ORDER BY xid, kind, key
           LIMIT $8""",
        ward_id,
        household_id,
        str(low),
        str(high),
        after.xid if after else None,
        after.kind if after else None,
        after.key if after else None,
        limit,
        province_id,
    )
    return [Change(row["xid"], row["kind"], row["key"]) for row in rows]


async def learner_progress(
    conn: asyncpg.Connection, keys: list[tuple[uuid.UUID, uuid.UUID]]
) -> list[LearnerProgress]:
    """Progress rows by (module, learner), in the order given."""
    rows = await conn.fetch(
        """SELECT l.module_id, l.learner_id, l.household_id, l.lessons, l.completed,
                  l.attempts, l.passed, l.best_score, l.updated_at
           FROM unnest($1::uuid[], $2::uuid[]) WITH ORDINALITY AS k(module_id, learner_id, n)
           JOIN learner_module l USING (module_id, learner_id)
           ORDER BY k.n""",
        [module_id for module_id, _ in keys],
        [learner_id for _, learner_id in keys],
    )
    return [msgspec.convert(row, LearnerProgress, from_attributes=True) for row in rows]
