"""Households, their submissions, offline sync, and resident invites."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.base import NO_NUL, Label, Page, Password, Phone, Schema
from schemas.errors import FieldProblem
from schemas.fieldwork import Assignment, FixRequest, VisitPlanItem
from schemas.modules import LearnerProgress, Module
from schemas.surveys import Key, SurveyVersion

# An answer: a number, true/false, a text, a date ("2025-07-01") or the list of values of a
# multiple choice; null or absent means "not answered". Which one depends on the question,
# so api/answers.py checks each value against its survey version (a JSON-level union here
# would overlap: every integer is also a number).
Answers = Annotated[dict[Key, Any], Meta(max_length=200)]
PUSH_LIMIT = 500


class Consent(Schema):
    given: bool
    notice_version: Annotated[str, Meta(min_length=1, max_length=40, pattern=NO_NUL)]


class MemberAnswers(Schema):
    member_id: uuid.UUID  # stable across visits; members are never named
    answers: Answers


class NewSubmission(Schema):
    id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: Annotated[int, Meta(ge=1, le=1_000_000)]
    household_id: uuid.UUID
    collected_at: datetime
    consent: Consent
    answers: Answers
    members: Annotated[list[MemberAnswers], Meta(max_length=100)] = []
    supersedes: uuid.UUID | None = None


# What ingest decodes first (api/ingest.py): a NewSubmission whose answers' keys are not yet
# checked. Checking the Key pattern is a regular expression per key, four fifths of a typed
# decode's time; ingest compares the keys with the survey version's instead (a set lookup)
# and decodes an item with any other key again as a NewSubmission, whose error it reports.
SentAnswers = Annotated[dict[str, Any], Meta(max_length=200)]


class MemberAnswersAsSent(Schema):
    member_id: uuid.UUID
    answers: SentAnswers


class SubmissionAsSent(Schema):
    id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: Annotated[int, Meta(ge=1, le=1_000_000)]
    household_id: uuid.UUID
    collected_at: datetime
    consent: Consent
    answers: SentAnswers
    members: Annotated[list[MemberAnswersAsSent], Meta(max_length=100)] = []
    supersedes: uuid.UUID | None = None


class Submission(Schema):
    id: uuid.UUID
    survey_id: uuid.UUID
    survey_version: int
    household_id: uuid.UUID
    collected_at: datetime
    received_at: datetime
    consent: Consent
    answers: dict[str, Any]
    members: list[MemberAnswers]
    supersedes: uuid.UUID | None


ItemStatus = Literal["accepted", "duplicate", "conflict", "rejected"]


class ItemResult(Schema, omit_defaults=True):
    id: uuid.UUID | None
    status: ItemStatus
    errors: list[FieldProblem] | None = None
    # The household's current submission after this item (for conflicts: what to supersede).
    current_submission_id: uuid.UUID | None = None
    # A quiz attempt's result (attempts only).
    score: float | None = None
    passed: bool | None = None


class SyncPush(Schema):
    """Up to 500 items in all, each checked on its own: submissions (see NewSubmission),
    lesson progress (PushProgress) and quiz attempts (PushAttempt). Results come in that
    order: every submission, then every progress item, then every attempt."""

    # Decoded as PushItems: each item on its own (api/ingest.py).
    submissions: Annotated[list[Any], Meta(max_length=PUSH_LIMIT)] = []
    progress: Annotated[list[Any], Meta(max_length=PUSH_LIMIT)] = []
    attempts: Annotated[list[Any], Meta(max_length=PUSH_LIMIT)] = []


class PushItems(Schema):
    """A push as it is decoded (SyncPush is what the document shows): each item is kept as its
    JSON text and decoded once, on its own, into its type (api/ingest.py), so an item that is
    not even an object gets its own ``rejected`` result and never fails the others."""

    submissions: Annotated[list[msgspec.Raw], Meta(max_length=PUSH_LIMIT)] = []
    progress: Annotated[list[msgspec.Raw], Meta(max_length=PUSH_LIMIT)] = []
    attempts: Annotated[list[msgspec.Raw], Meta(max_length=PUSH_LIMIT)] = []


class PushResults(Schema):
    results: list[ItemResult]


class NewHousehold(Schema):
    ward_code: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z._-]+$")]
    id: uuid.UUID | None = None
    hamlet_id: uuid.UUID | None = None
    label: Label | None = None  # a short label for the team, e.g. "Nhà số 12", never a name


class Household(Schema):
    id: uuid.UUID
    ward_code: str
    hamlet_id: uuid.UUID | None
    label: str | None
    current_submission_id: uuid.UUID | None
    updated_at: datetime


class HouseholdState(Schema):
    """A household with its current answers (what an offline client keeps)."""

    id: uuid.UUID
    ward_code: str
    hamlet_id: uuid.UUID | None
    label: str | None
    current_submission_id: uuid.UUID | None
    updated_at: datetime
    current: Submission | None


class MyHousehold(Schema):
    """Everything stored about a resident's household."""

    household: HouseholdState
    submissions: list[Submission]


class SyncPull(Schema):
    """Changes since the request's ``cursor``. ``nextCursor`` is where the next pull starts
    (never null: a change feed has no end); ``more`` says whether to pull again now."""

    next_cursor: str
    more: bool
    survey_versions: list[SurveyVersion]
    households: list[HouseholdState]
    deleted_households: list[uuid.UUID]
    # Published module versions, in the caller's language (as GET /modules/{id}).
    modules: list[Module] = []
    # Learners' progress in the caller's ward (a resident: their household) that changed.
    progress: list[LearnerProgress] = []
    # A team member's visit plan (its first page, as GET /areas/{wardCode}/visit-plan), on
    # the last page of a pull (more: false); null otherwise and for other roles.
    visit_plan: Page[VisitPlanItem] | None = None
    # A team member's assignments (hamlets and households given to them), on the last page;
    # a first pull (no ``since``) sends their assigned households' states before the rest
    # of the ward's.
    assignments: list[Assignment] | None = None
    # The caller's current submissions a ward official sent back (needs_fix), on the last
    # page of every pull while they are not superseded.
    fix_requests: list[FixRequest] = []


class NewInvite(Schema):
    household_id: uuid.UUID


class Invite(Schema):
    code: str
    household_id: uuid.UUID
    expires_at: datetime


class Registration(Schema):
    invite_code: Annotated[str, Meta(min_length=4, max_length=20, pattern=r"^[A-Za-z0-9 -]+$")]
    phone: Phone
    password: Password
    display_name: Label | None = None


class NewHamlet(Schema):
    name: Annotated[str, Meta(min_length=1, max_length=80, pattern=NO_NUL)]
    id: uuid.UUID | None = None
