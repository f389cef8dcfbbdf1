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
    """Skip logic: the question is asked only when this holds for earlier answers.

    ``key`` names an earlier question of the same level (or, in the roster, a household
    question); ``$age`` is the member's age in the year of collection. ``answered`` and
    ``not_answered`` ignore ``value``; ``in`` on a multiple choice holds when any of
    ``value`` is chosen (XLSForm's ``selected()``). ``all``, ``any`` and ``not`` combine
    the conditions in ``of`` (``not``: exactly one) and have no ``key``.
    """

    op: Literal[
        "eq",
        "ne",
        "in",
        "not_in",
        "gt",
        "ge",
        "lt",
        "le",
        "answered",
        "not_answered",
        "all",
        "any",
        "not",
    ]
    key: (
        Annotated[str, Meta(min_length=1, max_length=40, pattern=r"^(\$age|[a-z][a-z0-9_]*)$")]
        | None
    ) = None
    value: Any = None  # a number, true/false, a text, or a list of choice values
    of: Annotated[list[Condition], Meta(min_length=1, max_length=50)] | None = None


class Formula(Schema):
    """Simple arithmetic over earlier numeric answers: a number (``value``), an answer
    (``key``), or ``op`` applied to ``args`` in order (``neg`` takes one argument; ``div``
    and ``mod`` as in XPath). An unanswered key makes the whole formula empty."""

    value: float | None = None
    key: Key | None = None
    op: Literal["add", "sub", "mul", "div", "mod", "neg"] | None = None
    args: Annotated[list[Formula], Meta(min_length=1, max_length=20)] | None = None


class _Question(Schema):
    key: Key
    label: Localized
    hint: Localized | None = None
    required: bool = True
    relevant: Condition | None = None
    # The answer a client fills in when it re-visits a household surveyed before this
    # question existed (a valid answer of this question); a submission must still give it.
    default: Any = None


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
    # A regular expression the whole answer must match (XLSForm's ``regex(., '…')``).
    pattern: Annotated[str, Meta(min_length=1, max_length=200, pattern=NO_NUL)] | None = None


class DateQuestion(_Question, tag="date", tag_field="kind"):
    min: date | None = None
    max: date | None = None


FilterText = Annotated[str, Meta(min_length=1, max_length=100, pattern=NO_NUL)]


class SurveyChoice(Schema):
    value: ChoiceValue
    label: Localized
    # Values a choice filter compares (XLSForm's extra columns of the choices sheet).
    filters: dict[Key, FilterText] | None = None


class ChoiceFilter(Schema):
    """Cascading selects: only choices whose ``filters[column]`` equals the answer to the
    earlier question ``key`` may be chosen (XLSForm ``choice_filter: column=${key}``)."""

    column: Key
    key: Key


class SingleChoiceQuestion(_Question, tag="single_choice", tag_field="kind", kw_only=True):
    choices: Annotated[list[SurveyChoice], Meta(min_length=1, max_length=500)]
    choice_filter: ChoiceFilter | None = None


class MultiChoiceQuestion(_Question, tag="multi_choice", tag_field="kind", kw_only=True):
    choices: Annotated[list[SurveyChoice], Meta(min_length=1, max_length=500)]
    min_selected: int = 0
    max_selected: int | None = None
    choice_filter: ChoiceFilter | None = None


class CalculateQuestion(_Question, tag="calculate", tag_field="kind", kw_only=True):
    """A number the client computes from earlier answers; the server checks it. It is
    empty when an answer it uses is empty."""

    formula: Formula
    required: bool = False


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
    | CalculateQuestion
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
    questions: Annotated[list[SurveyQuestion], Meta(max_length=300)]
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
    # None: a national survey; else the province that authors it (its wards see it).
    province_code: str | None = None
    closed: bool = False


class NewSurvey(Schema):
    code: Key
    definition: SurveyDefinition
    id: uuid.UUID | None = None


class Published(Schema):
    survey_id: uuid.UUID
    version: int


class LeftOutRow(Schema):
    """A row of an imported XLSForm that was not imported (``?partial=true``)."""

    sheet: str
    row: int
    column: str
    message: str  # what is not supported and what to use instead, in the caller's language


class ImportedSurvey(Schema):
    survey: SurveySummary
    form_id: str
    form_version: str | None
    left_out: list[LeftOutRow]
