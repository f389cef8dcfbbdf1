"""Surveys, drafts and their immutable published versions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from schemas.surveys import Localized, SurveyDefinition, SurveySummary, SurveyVersion

HOUSEHOLD_DIGITAL = uuid.UUID("5e000000-0000-4000-8000-000000000001")


class VersionRecord(msgspec.Struct, frozen=True, kw_only=True):
    survey_id: uuid.UUID
    code: str
    version: int
    published_at: datetime
    definition: SurveyDefinition

    def public(self) -> SurveyVersion:
        return SurveyVersion(
            survey_id=self.survey_id,
            code=self.code,
            version=self.version,
            published_at=self.published_at,
            definition=self.definition,
        )


def _version(row: asyncpg.Record) -> VersionRecord:
    return VersionRecord(
        survey_id=row["survey_id"],
        code=row["code"],
        version=row["version"],
        published_at=row["published_at"],
        definition=msgspec.convert(row["definition"], SurveyDefinition),
    )


_VERSION = """SELECT v.survey_id, s.code, v.version, v.published_at, v.definition
              FROM survey_version v JOIN survey s ON s.id = v.survey_id"""


async def get_version(
    conn: asyncpg.Connection, survey_id: uuid.UUID, version: int
) -> VersionRecord | None:
    row = await conn.fetchrow(
        f"{_VERSION} WHERE v.survey_id = $1 AND v.version = $2", survey_id, version
    )
    return None if row is None else _version(row)


async def get_versions(
    conn: asyncpg.Connection, keys: list[tuple[uuid.UUID, int]]
) -> list[VersionRecord]:
    rows = await conn.fetch(
        f"""{_VERSION}
            JOIN unnest($1::uuid[], $2::int[]) AS k(survey_id, version)
              ON k.survey_id = v.survey_id AND k.version = v.version""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return [_version(row) for row in rows]


async def list_surveys(conn: asyncpg.Connection, *, with_drafts: bool) -> list[SurveySummary]:
    rows = await conn.fetch(
        """SELECT s.id, s.code, s.draft IS NOT NULL AS has_draft,
                  max(v.version) AS latest_version,
                  coalesce((array_agg(v.definition -> 'title' ORDER BY v.version DESC))[1],
                           s.draft -> 'title') AS title
           FROM survey s LEFT JOIN survey_version v ON v.survey_id = s.id
           GROUP BY s.id
           HAVING $1 OR max(v.version) IS NOT NULL
           ORDER BY s.code""",
        with_drafts,
    )
    return [
        SurveySummary(
            id=row["id"],
            code=row["code"],
            title=msgspec.convert(row["title"], Localized),
            latest_version=row["latest_version"],
            has_draft=row["has_draft"],
        )
        for row in rows
    ]


async def create_survey(
    conn: asyncpg.Connection,
    survey_id: uuid.UUID,
    code: str,
    draft: SurveyDefinition,
    created_by: uuid.UUID,
) -> bool:
    """False when the id or the code is already taken."""
    inserted = await conn.fetchval(
        """INSERT INTO survey (id, code, draft, draft_updated_at, created_by)
           VALUES ($1, $2, $3, now(), $4)
           ON CONFLICT DO NOTHING RETURNING true""",
        survey_id,
        code,
        msgspec.to_builtins(draft),
        created_by,
    )
    return bool(inserted)


async def lock_survey(conn: asyncpg.Connection, survey_id: uuid.UUID) -> dict[str, Any] | None:
    """The survey's row (with its draft, or None), locked until the end of the transaction."""
    row = await conn.fetchrow(
        "SELECT id, code, draft FROM survey WHERE id = $1 FOR UPDATE", survey_id
    )
    return None if row is None else dict(row)


async def save_draft(
    conn: asyncpg.Connection, survey_id: uuid.UUID, draft: SurveyDefinition
) -> None:
    await conn.execute(
        "UPDATE survey SET draft = $2, draft_updated_at = now() WHERE id = $1",
        survey_id,
        msgspec.to_builtins(draft),
    )


async def publish_draft(
    conn: asyncpg.Connection, survey_id: uuid.UUID, published_by: uuid.UUID
) -> int:
    """Freeze the draft as the next version and clear it; returns the version number."""
    version: int = await conn.fetchval(
        """WITH next AS (
               SELECT coalesce(max(version), 0) + 1 AS version
               FROM survey_version WHERE survey_id = $1
           ), published AS (
               INSERT INTO survey_version (survey_id, version, definition, published_by)
               SELECT $1, next.version, s.draft, $2 FROM survey s, next WHERE s.id = $1
               RETURNING version
           )
           UPDATE survey SET draft = NULL, draft_updated_at = NULL WHERE id = $1
           RETURNING (SELECT version FROM published)""",
        survey_id,
        published_by,
    )
    return version
