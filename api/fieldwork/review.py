"""Review of submitted work: a ward official's decision on a submission, and the fix
requests a team member gets back in their pull. SQL beside each function.

A submission without a decision is pending. ``needs_fix`` goes back to whoever collected it
(with the comment) for as long as it is the current submission of its household (or of its
household's campaign chain); their corrected edit supersedes it and is itself pending.
"""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from schemas.fieldwork import FixRequest, Review, ReviewStatus


class Reviewed(msgspec.Struct, frozen=True):
    id: uuid.UUID
    household_id: uuid.UUID
    ward_id: int
    submitted_by: uuid.UUID | None


async def reviewable(conn: asyncpg.Connection, submission_id: uuid.UUID) -> Reviewed | None:
    row = await conn.fetchrow(
        "SELECT id, household_id, ward_id, submitted_by FROM submission WHERE id = $1",
        submission_id,
    )
    return None if row is None else msgspec.convert(row, Reviewed, from_attributes=True)


async def record_review(
    conn: asyncpg.Connection,
    submission: Reviewed,
    status: ReviewStatus,
    comment: str | None,
    reviewed_by: uuid.UUID,
) -> Review:
    """The decision replaces an earlier one on the same submission."""
    row = await conn.fetchrow(
        """INSERT INTO submission_review (submission_id, ward_id, status, comment, reviewed_by)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (submission_id) DO UPDATE
           SET status = excluded.status, comment = excluded.comment,
               reviewed_by = excluded.reviewed_by, reviewed_at = now()
           RETURNING status, comment, reviewed_by, reviewed_at""",
        submission.id,
        submission.ward_id,
        status,
        comment,
        reviewed_by,
    )
    assert row is not None
    return Review(
        submission_id=submission.id,
        household_id=submission.household_id,
        status=row["status"],
        comment=row["comment"],
        reviewed_by=row["reviewed_by"],
        reviewed_at=row["reviewed_at"],
    )


async def fix_requests(
    conn: asyncpg.Connection, member_id: uuid.UUID, ward_id: int
) -> list[FixRequest]:
    """The member's submissions sent back for a fix that are still current."""
    rows = await conn.fetch(
        """SELECT s.id AS submission_id, s.household_id, s.survey_id, r.comment, r.reviewed_at
           FROM submission_review r JOIN submission s ON s.id = r.submission_id
           WHERE r.ward_id = $2 AND r.status = 'needs_fix' AND s.submitted_by = $1
             AND (EXISTS (SELECT 1 FROM household h WHERE h.current_submission_id = s.id)
                  OR EXISTS (SELECT 1 FROM survey_head sh WHERE sh.submission_id = s.id))
           ORDER BY r.reviewed_at, s.id""",
        member_id,
        ward_id,
    )
    return [msgspec.convert(row, FixRequest, from_attributes=True) for row in rows]
