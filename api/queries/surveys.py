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


_SUMMARY = """SELECT s.id, s.code, s.draft IS NOT NULL AS has_draft,
                  max(v.version) AS latest_version, s.closed_at IS NOT NULL AS closed,
                  p.code AS province_code,
                  coalesce((array_agg(v.definition -> 'title' ORDER BY v.version DESC))[1],
                           s.draft -> 'title') AS title
           FROM survey s LEFT JOIN survey_version v ON v.survey_id = s.id
           LEFT JOIN area p ON p.id = s.province_id"""


def _summary(row: asyncpg.Record) -> SurveySummary:
    return SurveySummary(
        id=row["id"],
        code=row["code"],
        title=msgspec.convert(row["title"], Localized),
        latest_version=row["latest_version"],
        has_draft=row["has_draft"],
        province_code=row["province_code"],
        closed=row["closed"],
    )


async def survey_summary(conn: asyncpg.Connection, survey_id: uuid.UUID) -> SurveySummary | None:
    row = await conn.fetchrow(f"{_SUMMARY} WHERE s.id = $1 GROUP BY s.id, p.code", survey_id)
    return None if row is None else _summary(row)


async def province_code(conn: asyncpg.Connection, survey_id: uuid.UUID) -> str | None:
    code: str | None = await conn.fetchval(
        "SELECT p.code FROM survey s JOIN area p ON p.id = s.province_id WHERE s.id = $1",
        survey_id,
    )
    return code


async def list_surveys(
    conn: asyncpg.Connection, *, with_drafts: bool, province_id: int | None, everywhere: bool
) -> list[SurveySummary]:
    """The national surveys and ``province_id``'s (every province's when ``everywhere``)."""
    rows = await conn.fetch(
        f"""{_SUMMARY}
           WHERE $2 OR s.province_id IS NULL OR s.province_id = $3
           GROUP BY s.id, p.code
           HAVING $1 OR max(v.version) IS NOT NULL
           ORDER BY s.code""",
        with_drafts,
        everywhere,
        province_id,
    )
    return [_summary(row) for row in rows]


async def create_survey(
    conn: asyncpg.Connection,
    survey_id: uuid.UUID,
    code: str,
    draft: SurveyDefinition,
    created_by: uuid.UUID,
    province_id: int | None,
) -> bool:
    """False when the id or the code is already taken."""
    inserted = await conn.fetchval(
        """INSERT INTO survey (id, code, draft, draft_updated_at, created_by, province_id)
           VALUES ($1, $2, $3, now(), $4, $5)
           ON CONFLICT DO NOTHING RETURNING true""",
        survey_id,
        code,
        msgspec.to_builtins(draft),
        created_by,
        province_id,
    )
    return bool(inserted)


async def lock_survey(conn: asyncpg.Connection, survey_id: uuid.UUID) -> dict[str, Any] | None:
    """The survey's row (with its draft, or None), locked until the end of the transaction."""
    row = await conn.fetchrow(
        """SELECT id, code, draft, province_id, household_state, closed_at
           FROM survey WHERE id = $1 FOR UPDATE""",
        survey_id,
    )
    return None if row is None else dict(row)


async def latest_definition(
    conn: asyncpg.Connection, survey_id: uuid.UUID
) -> SurveyDefinition | None:
    """The last published version's definition, if any."""
    definition = await conn.fetchval(
        """SELECT definition FROM survey_version WHERE survey_id = $1
           ORDER BY version DESC LIMIT 1""",
        survey_id,
    )
    return None if definition is None else msgspec.convert(definition, SurveyDefinition)


async def choices_in_use(
    conn: asyncpg.Connection, survey_id: uuid.UUID, removed: list[tuple[bool, str, str]]
) -> set[tuple[bool, str, str]]:
    """Which of the (member level?, key, choice value) triples stored answers use.

    A single choice is stored as the text, a multiple choice as a list containing it."""
    rows = await conn.fetch(
        """SELECT r.member, r.key, r.value
           FROM unnest($2::bool[], $3::text[], $4::text[]) AS r(member, key, value)
           WHERE CASE WHEN r.member THEN EXISTS (
                     SELECT 1 FROM submission s, jsonb_array_elements(s.members) m
                     WHERE s.survey_id = $1
                       AND (m -> 'answers' -> r.key = to_jsonb(r.value)
                            OR m -> 'answers' -> r.key @> jsonb_build_array(r.value)))
                 ELSE EXISTS (
                     SELECT 1 FROM submission s
                     WHERE s.survey_id = $1
                       AND (s.answers -> r.key = to_jsonb(r.value)
                            OR s.answers -> r.key @> jsonb_build_array(r.value)))
                 END""",
        survey_id,
        [member for member, _, _ in removed],
        [key for _, key, _ in removed],
        [value for _, _, value in removed],
    )
    return {(row["member"], row["key"], row["value"]) for row in rows}


async def close_survey(
    conn: asyncpg.Connection, survey_id: uuid.UUID, closed_by: uuid.UUID
) -> None:
    await conn.execute(
        "UPDATE survey SET closed_at = now(), closed_by = $2 WHERE id = $1 AND closed_at IS NULL",
        survey_id,
        closed_by,
    )


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
