"""Publishing rules: what a new version may change about the last published one.

Submissions are validated against their own version forever and the statistics read the
answers of every version, so a new version must keep what stored answers and indicator rules
rely on. Labels, hints and new optional questions change freely.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.errors import FieldError
from api.i18n import N_
from api.stats.catalog import BIRTH_YEAR
from schemas.stats import Indicator
from schemas.surveys import (
    MultiChoiceQuestion,
    SingleChoiceQuestion,
    SurveyDefinition,
    SurveyQuestion,
)

KIND_CHANGED = N_(
    "%(key)s changes kind from %(old)s to %(new)s: stored answers would no longer fit. "
    "Use a new key for the new question."
)
LEVEL_CHANGED = N_(
    "%(key)s moves between the household and the member roster: stored answers would no "
    "longer fit. Use a new key for the new question."
)
CHOICE_IN_USE = N_(
    "Choice %(value)s of %(key)s is used by stored answers: it cannot be removed "
    "(change its label instead)."
)
REQUIRED_WITHOUT_DEFAULT = N_(
    "%(key)s becomes required but households surveyed before have no answer to it: give it "
    "a default for re-visits or make it optional."
)
INDICATOR_KEY_REMOVED = N_("Indicator %(indicator)s reads %(key)s: it cannot be removed.")
INDICATOR_KEY_CHANGED = N_(
    "Indicator %(indicator)s reads %(key)s: its kind, its level and the choices the "
    "indicator counts must stay as they are."
)

# The question kind an indicator rule reads, by the rule's operator.
_RULE_KINDS = {
    "true": ("boolean",),
    "eq": ("single_choice",),
    "in": ("single_choice", "multi_choice"),
    "gte": ("integer",),
    "sum": ("integer",),
}


@dataclass(frozen=True)
class Placed:
    """A question and where it is: the household (member=False) or the roster."""

    question: SurveyQuestion
    member: bool

    @property
    def kind(self) -> str:
        return type(self.question).__struct_config__.tag  # type: ignore[return-value]

    @property
    def field(self) -> str:
        return f"{'roster.questions' if self.member else 'questions'}.{self.question.key}"


def placed(definition: SurveyDefinition) -> dict[str, Placed]:
    found = {q.key: Placed(q, False) for q in definition.questions}
    if definition.roster is not None:
        found |= {q.key: Placed(q, True) for q in definition.roster.questions}
    return found


def _choices(question: SurveyQuestion) -> list[str]:
    if isinstance(question, SingleChoiceQuestion | MultiChoiceQuestion):
        return [choice.value for choice in question.choices]
    return []


@dataclass
class Review:
    errors: list[FieldError]
    # (member level?, key, value) of removed choices: refused only if stored answers use them.
    removed_choices: list[tuple[bool, str, str]]


def review(
    previous: SurveyDefinition, draft: SurveyDefinition, indicators: list[Indicator] | None
) -> Review:
    """What ``draft`` breaks of ``previous``; ``indicators`` when the survey feeds them."""
    before, after = placed(previous), placed(draft)
    errors: list[FieldError] = []
    removed: list[tuple[bool, str, str]] = []
    for key, new in after.items():
        old = before.get(key)
        if old is None:
            if new.question.required and new.question.default is None:
                errors.append(
                    FieldError(
                        new.field,
                        "required_without_default",
                        REQUIRED_WITHOUT_DEFAULT,
                        {"key": key},
                    )
                )
            continue
        if old.member != new.member:
            errors.append(FieldError(new.field, "level_changed", LEVEL_CHANGED, {"key": key}))
            continue
        if old.kind != new.kind:
            errors.append(
                FieldError(
                    new.field,
                    "kind_changed",
                    KIND_CHANGED,
                    {"key": key, "old": old.kind, "new": new.kind},
                )
            )
            continue
        if not old.question.required and new.question.required and new.question.default is None:
            errors.append(
                FieldError(
                    new.field, "required_without_default", REQUIRED_WITHOUT_DEFAULT, {"key": key}
                )
            )
        kept = set(_choices(new.question))
        removed += [(new.member, key, v) for v in _choices(old.question) if v not in kept]
    for key, old in before.items():
        if key not in after:
            removed += [(old.member, key, v) for v in _choices(old.question)]
    if indicators is not None:
        errors += _indicator_errors(before, after, indicators)
    return Review(errors, removed)


def choice_errors(
    in_use: set[tuple[bool, str, str]], definition: SurveyDefinition
) -> list[FieldError]:
    after = placed(definition)
    errors = []
    for member, key, value in sorted(in_use):
        field = f"{'roster.questions' if member else 'questions'}.{key}"
        if key in after:
            field = after[key].field
        errors.append(
            FieldError(field, "choice_in_use", CHOICE_IN_USE, {"key": key, "value": value})
        )
    return errors


def _indicator_errors(
    before: dict[str, Placed], after: dict[str, Placed], indicators: list[Indicator]
) -> list[FieldError]:
    errors: list[FieldError] = []
    # (indicator, key, member level?, kinds, choice values it counts)
    reads: list[tuple[str, str, bool, tuple[str, ...], list[str]]] = []
    for indicator in indicators:
        rule = indicator.rule
        member = indicator.subject == "member"
        values: list[str] = []
        if rule.op in ("eq", "in"):
            raw = rule.value if isinstance(rule.value, list) else [rule.value]
            values = [str(v) for v in raw]
        reads.append((indicator.code, rule.key, member, _RULE_KINDS[rule.op], values))
        if member:
            reads.append((indicator.code, BIRTH_YEAR, True, ("integer",), []))
    reported: set[str] = set()
    for code, key, member, kinds, values in reads:
        if key not in before or key in reported:
            continue  # not in this survey (or already reported)
        new = after.get(key)
        if new is None:
            reported.add(key)
            errors.append(
                FieldError(
                    before[key].field,
                    "indicator_key_removed",
                    INDICATOR_KEY_REMOVED,
                    {"key": key, "indicator": code},
                )
            )
        elif (
            new.member != member
            or new.kind not in kinds
            or not set(values) <= set(_choices(new.question))
        ):
            reported.add(key)
            errors.append(
                FieldError(
                    new.field,
                    "indicator_key_changed",
                    INDICATOR_KEY_CHANGED,
                    {"key": key, "indicator": code},
                )
            )
    return errors
