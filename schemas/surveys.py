"""Surveys: question kinds as a tagged union, skip logic, and the member roster."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from msgspec import Meta

from schemas.base import NO_NUL, Schema

Key = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]*$")]
LabelText = Annotated[str, Meta(min_length=1, max_length=500, pattern=NO_NUL)]
ChoiceValue = Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^[a-z0-9_]+$")]


class Localized(Schema):
    """A text in Vietnamese (required) and English."""

    vi: LabelText
    en: LabelText


class Condition(Schema):
    """Skip logic: the question is asked only when this holds for an earlier answer.

    ``key`` names an earlier question of the same level (or, in the roster, a household
    question); ``$age`` is the member's age in the year of collection. ``answered`` and
    ``not_answered`` ignore ``value``.
    """

    key: Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^(\$age|[a-z][a-z0-9_]*)$")]
    op: Literal["eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "answered", "not_answered"]
    value: Any = None  # a number, true/false, a text, or a list of choice values


class _Question(Schema):
    key: Key
    label: Localized
    hint: Localized | None = None
    required: bool = True
    relevant: Condition | None = None


class IntegerQuestion(_Question, tag="integer", tag_field="kind"):
    min: int | None = None
    # An upper bound, or "collectedYear": the year of the submission's collectedAt.
    max: int | Literal["collectedYear"] | None = None


class DecimalQuestion(_Question, tag="decimal", tag_field="kind"):
    min: float | None = None
    max: float | None = None


class BooleanQuestion(_Question, tag="boolean", tag_field="kind"):
    pass


class TextQuestion(_Question, tag="text", tag_field="kind"):
    min_length: int = 0
    max_length: Annotated[int, Meta(ge=1, le=2000)] = 200


class DateQuestion(_Question, tag="date", tag_field="kind"):
    min: date | None = None
    max: date | None = None


class SurveyChoice(Schema):
    value: ChoiceValue
    label: Localized


class SingleChoiceQuestion(_Question, tag="single_choice", tag_field="kind", kw_only=True):
    choices: Annotated[list[SurveyChoice], Meta(min_length=1, max_length=100)]


class MultiChoiceQuestion(_Question, tag="multi_choice", tag_field="kind", kw_only=True):
    choices: Annotated[list[SurveyChoice], Meta(min_length=1, max_length=100)]
    min_selected: int = 0
    max_selected: int | None = None


class NoteQuestion(_Question, tag="note", tag_field="kind"):
    """Text shown to the interviewer; it takes no answer."""

    required: bool = False


SurveyQuestion = (
    IntegerQuestion
    | DecimalQuestion
    | BooleanQuestion
    | TextQuestion
    | DateQuestion
    | SingleChoiceQuestion
    | MultiChoiceQuestion
    | NoteQuestion
)


class Roster(Schema):
    """A repeat group: one set of answers per household member."""

    label: Localized
    questions: Annotated[list[SurveyQuestion], Meta(min_length=1, max_length=100)]
    min_count: Annotated[int, Meta(ge=0, le=100)] = 0
    max_count: Annotated[int, Meta(ge=1, le=100)] = 30
    # A household integer question whose answer must equal the number of members.
    count_from: Key | None = None


class SurveyDefinition(Schema):
    title: Localized
    questions: Annotated[list[SurveyQuestion], Meta(max_length=200)]
    description: Localized | None = None
    roster: Roster | None = None
    # The privacy notice respondents consent to; submissions must name this version.
    notice_version: Annotated[str, Meta(min_length=1, max_length=40, pattern=NO_NUL)] = "1"


class SurveyVersion(Schema):
    survey_id: uuid.UUID
    code: str
    version: int
    published_at: datetime
    definition: SurveyDefinition


class SurveySummary(Schema):
    id: uuid.UUID
    code: str
    title: Localized
    latest_version: int | None
    has_draft: bool


class NewSurvey(Schema):
    code: Key
    definition: SurveyDefinition
    id: uuid.UUID | None = None


class Published(Schema):
    survey_id: uuid.UUID
    version: int
