"""Checking a submission's answers against the exact published survey version.

Pure functions, no I/O: types, required answers, ranges, lengths, choice lists, skip logic
(an answer to a question that does not apply is an error, so data stays consistent) and the
member roster. Every problem becomes a FieldError with a path such as
``members[2].answers.vneid``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from api.errors import FieldError
from api.i18n import N_
from schemas.households import MemberAnswers, NewSubmission
from schemas.surveys import (
    BooleanQuestion,
    Condition,
    DateQuestion,
    DecimalQuestion,
    IntegerQuestion,
    MultiChoiceQuestion,
    NoteQuestion,
    Question,
    SingleChoiceQuestion,
    SurveyDefinition,
    TextQuestion,
)

AGE = "$age"

REQUIRED = N_("This field is required.")
NOT_RELEVANT = N_("This question does not apply given the earlier answers: leave it empty.")
UNKNOWN = N_("This is not a question of this survey version.")
NO_ANSWER = N_("This note takes no answer.")
TYPE = N_("Expected %(expected)s.")
MINIMUM = N_("Must be at least %(limit)s.")
MAXIMUM = N_("Must be at most %(limit)s.")
MIN_LENGTH = N_("Must be at least %(limit)s characters long.")
MAX_LENGTH = N_("Must be at most %(limit)s characters long.")
CHOICE = N_("Is not one of the allowed values.")
MIN_SELECTED = N_("Choose at least %(limit)s options.")
MAX_SELECTED = N_("Choose at most %(limit)s options.")
REPEATED = N_("Each option can be chosen once.")
DATE_FORMAT = N_("Expected a date written as YYYY-MM-DD.")
CONTROL_CHARACTER = N_("Must not contain control characters.")
COUNT_MISMATCH = N_("There are %(count)s members but the household size is %(expected)s.")
MIN_MEMBERS = N_("At least %(limit)s members are needed.")
MAX_MEMBERS = N_("At most %(limit)s members are allowed.")
NO_ROSTER = N_("This survey has no member roster.")
DUPLICATE_MEMBER = N_("Each member needs a different memberId.")

_EXPECTED = {
    "integer": N_("an integer"),
    "decimal": N_("a number"),
    "boolean": N_("true or false"),
    "text": N_("text"),
    "date": N_("a date"),
    "single_choice": N_("text"),
    "multi_choice": N_("a list"),
}


def _holds(condition: Condition, answers: dict[str, Any], age: int | None) -> bool:
    value = age if condition.key == AGE else answers.get(condition.key)
    op, expected = condition.op, condition.value
    if op == "answered":
        return value is not None
    if op == "not_answered":
        return value is None
    if value is None:
        return False  # an unanswered question satisfies no comparison
    if op in ("in", "not_in"):
        options = expected if isinstance(expected, list) else [expected]
        chosen = value if isinstance(value, list) else [value]
        found = any(item in options for item in chosen)
        return found if op == "in" else not found
    if op == "eq":
        return bool(value == expected)
    if op == "ne":
        return bool(value != expected)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return False
    return {
        "gt": value > expected,
        "ge": value >= expected,
        "lt": value < expected,
        "le": value <= expected,
    }[op]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(question: Question, value: Any, year: int) -> tuple[str, str, dict[str, object]] | None:
    """The first problem with an answered value, as (code, message, params)."""
    if isinstance(question, IntegerQuestion):
        if not _is_int(value):
            return "type", TYPE, {"expected": _EXPECTED["integer"]}
        upper = year if question.max == "collectedYear" else question.max
        if question.min is not None and value < question.min:
            return "minimum", MINIMUM, {"limit": question.min}
        if upper is not None and value > upper:
            return "maximum", MAXIMUM, {"limit": upper}
    elif isinstance(question, DecimalQuestion):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "type", TYPE, {"expected": _EXPECTED["decimal"]}
        if question.min is not None and value < question.min:
            return "minimum", MINIMUM, {"limit": question.min}
        if question.max is not None and value > question.max:
            return "maximum", MAXIMUM, {"limit": question.max}
    elif isinstance(question, BooleanQuestion):
        if not isinstance(value, bool):
            return "type", TYPE, {"expected": _EXPECTED["boolean"]}
    elif isinstance(question, TextQuestion):
        if not isinstance(value, str):
            return "type", TYPE, {"expected": _EXPECTED["text"]}
        if "\x00" in value:
            return "format", CONTROL_CHARACTER, {}
        if len(value) < question.min_length:
            return "min_length", MIN_LENGTH, {"limit": question.min_length}
        if len(value) > question.max_length:
            return "max_length", MAX_LENGTH, {"limit": question.max_length}
    elif isinstance(question, DateQuestion):
        if not isinstance(value, str):
            return "type", TYPE, {"expected": _EXPECTED["date"]}
        try:
            day = date.fromisoformat(value)
        except ValueError:
            return "format", DATE_FORMAT, {}
        if len(value) != 10:
            return "format", DATE_FORMAT, {}
        if question.min is not None and day < question.min:
            return "minimum", MINIMUM, {"limit": question.min.isoformat()}
        if question.max is not None and day > question.max:
            return "maximum", MAXIMUM, {"limit": question.max.isoformat()}
    elif isinstance(question, SingleChoiceQuestion):
        if not isinstance(value, str):
            return "type", TYPE, {"expected": _EXPECTED["single_choice"]}
        if value not in {choice.value for choice in question.choices}:
            return "choice", CHOICE, {}
    elif isinstance(question, MultiChoiceQuestion):
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return "type", TYPE, {"expected": _EXPECTED["multi_choice"]}
        allowed = {choice.value for choice in question.choices}
        if any(item not in allowed for item in value):
            return "choice", CHOICE, {}
        if len(set(value)) != len(value):
            return "repeated", REPEATED, {}
        if len(value) < question.min_selected:
            return "min_items", MIN_SELECTED, {"limit": question.min_selected}
        if question.max_selected is not None and len(value) > question.max_selected:
            return "max_items", MAX_SELECTED, {"limit": question.max_selected}
    return None


def _level(
    questions: list[Question],
    answers: dict[str, Any],
    path: str,
    year: int,
    errors: list[FieldError],
    outer: dict[str, Any] | None = None,
    age_key: str | None = None,
) -> None:
    """Check one level (the household, or one member) in question order."""
    known = {question.key for question in questions}
    for key in answers:
        if key not in known:
            errors.append(FieldError(f"{path}.{key}", "unknown_question", UNKNOWN))
    # Conditions see this level's answers first, then the household's (for members).
    scope = {**(outer or {}), **answers}
    age: int | None = None
    for question in questions:
        value = answers.get(question.key)
        field = f"{path}.{question.key}"
        if question.relevant is not None and not _holds(question.relevant, scope, age):
            if value is not None:
                errors.append(FieldError(field, "not_relevant", NOT_RELEVANT))
            continue
        if isinstance(question, NoteQuestion):
            if value is not None:
                errors.append(FieldError(field, "not_relevant", NO_ANSWER))
            continue
        if value is None:
            if question.required:
                errors.append(FieldError(field, "required", REQUIRED))
            continue
        problem = _check(question, value, year)
        if problem is not None:
            code, message, params = problem
            errors.append(FieldError(field, code, message, params or None))
        elif question.key == age_key and _is_int(value):
            age = year - value


def validate(definition: SurveyDefinition, submission: NewSubmission) -> list[FieldError]:
    """Every problem of ``submission`` against ``definition`` (empty when it is valid)."""
    errors: list[FieldError] = []
    year = submission.collected_at.year
    _level(definition.questions, submission.answers, "answers", year, errors)
    roster = definition.roster
    members: list[MemberAnswers] = submission.members
    if roster is None:
        if members:
            errors.append(FieldError("members", "not_relevant", NO_ROSTER))
        return errors
    if len({member.member_id for member in members}) != len(members):
        errors.append(FieldError("members", "duplicate_member", DUPLICATE_MEMBER))
    if len(members) < roster.min_count:
        errors.append(FieldError("members", "min_items", MIN_MEMBERS, {"limit": roster.min_count}))
    if len(members) > roster.max_count:
        errors.append(FieldError("members", "max_items", MAX_MEMBERS, {"limit": roster.max_count}))
    if roster.count_from is not None:
        expected = submission.answers.get(roster.count_from)
        if _is_int(expected) and expected != len(members):
            errors.append(
                FieldError(
                    "members",
                    "count_mismatch",
                    COUNT_MISMATCH,
                    {"count": len(members), "expected": expected},
                )
            )
    # "$age" in member conditions is derived from the first integer question (birth year).
    age_key = next(
        (
            q.key
            for q in roster.questions
            if isinstance(q, IntegerQuestion) and q.max == "collectedYear"
        ),
        None,
    )
    for index, member in enumerate(members):
        _level(
            roster.questions,
            member.answers,
            f"members[{index}].answers",
            year,
            errors,
            outer=submission.answers,
            age_key=age_key,
        )
    return errors


DUPLICATE_KEY = N_("Another question already uses this key.")
DUPLICATE_CHOICE = N_("Another choice already uses this value.")
LATER_KEY = N_("A condition can only refer to an earlier question.")
BAD_COUNT_FROM = N_("This must name an integer question of the household.")


def check_definition(definition: SurveyDefinition) -> list[FieldError]:
    """A draft's internal consistency: unique keys and choices, conditions on earlier answers."""
    errors: list[FieldError] = []

    def level(questions: list[Question], path: str, earlier: set[str]) -> set[str]:
        keys: set[str] = set()
        for index, question in enumerate(questions):
            field = f"{path}[{index}]"
            if question.key in keys:
                errors.append(FieldError(f"{field}.key", "duplicate", DUPLICATE_KEY))
            if question.relevant is not None:
                key = question.relevant.key
                if key != AGE and key not in keys and key not in earlier:
                    errors.append(FieldError(f"{field}.relevant.key", "invalid", LATER_KEY))
            if isinstance(question, SingleChoiceQuestion | MultiChoiceQuestion):
                values = [choice.value for choice in question.choices]
                if len(set(values)) != len(values):
                    errors.append(FieldError(f"{field}.choices", "duplicate", DUPLICATE_CHOICE))
            keys.add(question.key)
        return keys

    household_keys = level(definition.questions, "questions", set())
    roster = definition.roster
    if roster is not None:
        level(roster.questions, "roster.questions", household_keys)
        if roster.count_from is not None and not any(
            isinstance(q, IntegerQuestion) and q.key == roster.count_from
            for q in definition.questions
        ):
            errors.append(FieldError("roster.countFrom", "invalid", BAD_COUNT_FROM))
    return errors
