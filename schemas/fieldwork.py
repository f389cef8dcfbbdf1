"""Field work: a ward's visit plan and the ward settings it uses."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from msgspec import Meta

from schemas.base import Schema

STALE_AFTER_DEFAULT = 6  # months, when a ward has not set its own
StaleAfterMonths = Annotated[
    int,
    Meta(ge=1, le=60, description="A survey older than this many months is stale (1–60)."),
]

VisitReason = Literal["never_surveyed", "stale", "help_wanted", "misses_indicator"]


class VisitPlanItem(Schema):
    """One household to visit and why. ``reason``: ``never_surveyed`` (registered, never
    surveyed), ``stale`` (last survey older than the ward's ``staleAfterMonths``),
    ``help_wanted`` (members asked for help with a lagging indicator), ``misses_indicator``
    (the current answers are not counted in a lagging indicator's numerator). ``indicator``
    is the lagging indicator the reason is about and ``members`` how many members it
    concerns (for ``misses_indicator`` of a household indicator, null). ``reasonText`` says
    it in the caller's language. ``ownHamlet``: in the hamlets of the ``member`` the plan is
    for. Never the members' answers."""

    household_id: uuid.UUID
    label: str | None
    hamlet_id: uuid.UUID | None
    hamlet_name: str | None
    last_visit_at: datetime | None  # the current survey's collection time
    reason: VisitReason
    reason_text: str
    indicator: str | None
    members: int | None
    own_hamlet: bool


class WardSettings(Schema):
    ward_code: str
    stale_after_months: int


class NewWardSettings(Schema):
    stale_after_months: StaleAfterMonths


class Assignment(Schema):
    """A team member's share of the ward: a hamlet (all its households) or one household."""

    member_id: uuid.UUID
    hamlet_id: uuid.UUID | None = None
    household_id: uuid.UUID | None = None


class NewAssignments(Schema):
    """The team's whole set of assignments (replaces the previous set)."""

    assignments: Annotated[list[Assignment], Meta(max_length=5000)]


class Assignments(Schema):
    team_id: uuid.UUID
    assignments: list[Assignment]


class MemberProgress(Schema):
    """One team member's work. Visits count distinct households with a submission the
    member collected in the week or month; ``waitingForReview``: their current submissions
    no ward official has reviewed yet; ``neverVisited``: their assigned households with no
    submission at all."""

    member_id: uuid.UUID
    display_name: str | None
    assigned_households: int
    visited_this_week: int
    visited_this_month: int
    waiting_for_review: int
    never_visited: int


class TeamProgress(Schema):
    team_id: uuid.UUID
    period: str  # YYYY-MM
    week_start: date  # Monday of the week counted (the current one, or the period's last)
    members: list[MemberProgress]
    unassigned_never_visited: int  # the ward's never-visited households nobody is given


ReviewStatus = Literal["approved", "needs_fix"]
ReviewComment = Annotated[str, Meta(min_length=1, max_length=1000, pattern=r"^[^\x00]*$")]


class NewReview(Schema):
    status: ReviewStatus
    comment: ReviewComment | None = None


class Review(Schema):
    submission_id: uuid.UUID
    household_id: uuid.UUID
    status: ReviewStatus
    comment: str | None
    reviewed_by: uuid.UUID | None
    reviewed_at: datetime


class FixRequest(Schema):
    """A submission of the caller's that a ward official sent back, with their comment:
    correct it with an edit that supersedes it (the edit is then pending review)."""

    submission_id: uuid.UUID
    household_id: uuid.UUID
    survey_id: uuid.UUID
    comment: str | None
    reviewed_at: datetime
