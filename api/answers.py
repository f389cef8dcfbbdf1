"""Checking a submission's answers against the exact published survey version.

Pure functions, no I/O: types, required answers, ranges, lengths, choice lists, skip logic
(an answer to a question that does not apply is an error, so data stays consistent) and the
member roster. Every problem becomes a FieldError with a path such as
``members[2].answers.vneid``.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from datetime import date
from typing import Any, NamedTuple

from api.errors import FieldError
from api.i18n import N_
from schemas.households import MemberAnswersAsSent, SubmissionAsSent
from schemas.surveys import (
    BooleanQuestion,
    CalculateQuestion,
    ChoiceFilter,
    Condition,
    DateQuestion,
    DecimalQuestion,
    Formula,
    IntegerQuestion,
    MultiChoiceQuestion,
    NoteQuestion,
    SingleChoiceQuestion,
    SurveyChoice,
    SurveyDefinition,
    SurveyQuestion,
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
CHOICE = N_("Is not one of the allowed values: %(allowed)s.")
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
PATTERN = N_("Does not have the expected format.")
FILTERED_CHOICE = N_("Is not one of the options allowed for the earlier answers.")
CALCULATION = N_("Must equal %(expected)s, calculated from the earlier answers.")
NOT_CALCULABLE = N_("Leave this empty: an answer it is calculated from is empty.")

_EXPECTED = {
    "integer": N_("an integer"),
    "decimal": N_("a number"),
    "boolean": N_("true or false"),
    "text": N_("text"),
    "date": N_("a date"),
    "single_choice": N_("text"),
    "multi_choice": N_("a list"),
    "calculate": N_("a number"),
}


# Compiled rules. A published version never changes, so its skip logic, formulas and
# checks are turned once into closures (``_compile``) and each submission only runs them: no
# per-item dispatch on question kinds or condition operators.
Scope = dict[str, Any]
Predicate = Callable[[Scope, int | None], bool]  # (answers in scope, member's age) → holds?
Calculation = Callable[[Scope], float | None]

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}


def _never(scope: Scope, age: int | None) -> bool:
    return False


def _predicate(condition: Condition) -> Predicate:
    """``condition`` as a function of the answers in scope and the member's age."""
    op, expected = condition.op, condition.value
    if op in ("all", "any", "not"):
        parts = tuple(_predicate(part) for part in condition.of or ())
        if op == "all":
            return lambda scope, age: all(part(scope, age) for part in parts)
        if op == "any":
            return lambda scope, age: any(part(scope, age) for part in parts)
        return lambda scope, age: not all(part(scope, age) for part in parts)
    key = condition.key or ""
    if key == AGE:

        def value_of(scope: Scope, age: int | None) -> Any:
            return age

    else:

        def value_of(scope: Scope, age: int | None) -> Any:
            return scope.get(key)

    if op == "answered":
        return lambda scope, age: value_of(scope, age) is not None
    if op == "not_answered":
        return lambda scope, age: value_of(scope, age) is None
    if op in ("in", "not_in"):
        options = expected if isinstance(expected, list) else [expected]
        wanted = op == "in"

        def among(scope: Scope, age: int | None) -> bool:
            value = value_of(scope, age)
            if value is None:
                return False  # an unanswered question satisfies no comparison
            chosen = value if isinstance(value, list) else [value]
            return any(item in options for item in chosen) is wanted

        return among
    if op == "eq":

        def equal(scope: Scope, age: int | None) -> bool:
            value = value_of(scope, age)
            return value is not None and bool(value == expected)

        return equal
    if op == "ne":

        def differs(scope: Scope, age: int | None) -> bool:
            value = value_of(scope, age)
            return value is not None and bool(value != expected)

        return differs
    if isinstance(expected, bool) or not isinstance(expected, int | float):
        return _never  # an order with something that is not a number never holds
    order = _COMPARE[op]

    def ordered(scope: Scope, age: int | None) -> bool:
        value = value_of(scope, age)
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return order(value, expected)

    return ordered


def _calculation(formula: Formula) -> Calculation:
    """``formula`` as a function of the answers in scope (see :func:`evaluate`)."""
    if formula.key is not None:
        key = formula.key

        def answer(scope: Scope) -> float | None:
            value = scope.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            return float(value)

        return answer
    if formula.op is None:
        constant = formula.value
        return lambda scope: constant
    args = tuple(_calculation(arg) for arg in formula.args or ())
    op = formula.op

    def operation(scope: Scope) -> float | None:
        numbers = [arg(scope) for arg in args]
        if not numbers or None in numbers:
            return None
        first = numbers[0]
        assert first is not None
        result = -first if op == "neg" else first
        for number in numbers[1:]:
            assert number is not None
            if op == "add":
                result += number
            elif op == "sub":
                result -= number
            elif op == "mul":
                result *= number
            elif number == 0:
                return None
            elif op == "div":
                result /= number
            else:  # XPath mod keeps the dividend's sign, as math.fmod does
                result = math.fmod(result, number)
        return result if math.isfinite(result) else None

    return operation


def evaluate(formula: Formula, answers: dict[str, Any]) -> float | None:
    """The formula's value, or None when an answer it uses is empty or not a number (or it
    divides by zero)."""
    return _calculation(formula)(answers)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


Problem = tuple[str, str, dict[str, object]]  # (code, message id, params)
Checker = Callable[[Any, int], Problem | None]  # (answer, year of collection) → problem


def _allowed(choices: list[SurveyChoice]) -> dict[str, str]:
    """The choices a volunteer can pick, in each language: ``Có (yes), Không (no)``."""
    return {
        language: ", ".join(f"{getattr(c.label, language)} ({c.value})" for c in choices)
        for language in ("vi", "en")
    }


def _type_error(kind: str) -> Problem:
    return "type", TYPE, {"expected": _EXPECTED[kind]}


def _checker(question: SurveyQuestion) -> Checker:
    """A function checking one answered value of ``question``, built once per version.

    Submissions arrive by the hundred per batch, so the per-answer work is kept to a few
    comparisons (``type(v) is int`` also refuses booleans, which are ints in Python).
    """
    if isinstance(question, IntegerQuestion):
        low, high = question.min, question.max

        def integer(value: Any, year: int) -> Problem | None:
            if type(value) is not int:
                return _type_error("integer")
            upper = year if high == "collectedYear" else high
            if low is not None and value < low:
                return "minimum", MINIMUM, {"limit": low}
            if upper is not None and value > upper:
                return "maximum", MAXIMUM, {"limit": upper}
            return None

        return integer
    if isinstance(question, DecimalQuestion):
        dlow, dhigh = question.min, question.max

        def decimal(value: Any, year: int) -> Problem | None:
            if type(value) not in (int, float):
                return _type_error("decimal")
            if dlow is not None and value < dlow:
                return "minimum", MINIMUM, {"limit": dlow}
            if dhigh is not None and value > dhigh:
                return "maximum", MAXIMUM, {"limit": dhigh}
            return None

        return decimal
    if isinstance(question, BooleanQuestion):
        return lambda value, year: None if type(value) is bool else _type_error("boolean")
    if isinstance(question, TextQuestion):
        shortest, longest = question.min_length, question.max_length
        pattern = re.compile(question.pattern) if question.pattern is not None else None

        def text(value: Any, year: int) -> Problem | None:
            if type(value) is not str:
                return _type_error("text")
            if "\x00" in value:
                return "format", CONTROL_CHARACTER, {}
            if len(value) < shortest:
                return "min_length", MIN_LENGTH, {"limit": shortest}
            if len(value) > longest:
                return "max_length", MAX_LENGTH, {"limit": longest}
            if pattern is not None and pattern.fullmatch(value) is None:
                return "pattern", PATTERN, {}
            return None

        return text
    if isinstance(question, DateQuestion):
        earliest, latest = question.min, question.max

        def day(value: Any, year: int) -> Problem | None:
            if type(value) is not str:
                return _type_error("date")
            try:
                parsed = date.fromisoformat(value)
            except ValueError:
                return "format", DATE_FORMAT, {}
            if len(value) != 10:
                return "format", DATE_FORMAT, {}
            if earliest is not None and parsed < earliest:
                return "minimum", MINIMUM, {"limit": earliest.isoformat()}
            if latest is not None and parsed > latest:
                return "maximum", MAXIMUM, {"limit": latest.isoformat()}
            return None

        return day
    if isinstance(question, SingleChoiceQuestion):
        options = frozenset(choice.value for choice in question.choices)
        not_allowed: Problem = ("choice", CHOICE, {"allowed": _allowed(question.choices)})

        def single(value: Any, year: int) -> Problem | None:
            if type(value) is not str:
                return _type_error("single_choice")
            return None if value in options else not_allowed

        return single
    if isinstance(question, MultiChoiceQuestion):
        allowed = frozenset(choice.value for choice in question.choices)
        fewest, most = question.min_selected, question.max_selected
        not_among: Problem = ("choice", CHOICE, {"allowed": _allowed(question.choices)})

        def multi(value: Any, year: int) -> Problem | None:
            if type(value) is not list or not all(type(item) is str for item in value):
                return _type_error("multi_choice")
            if any(item not in allowed for item in value):
                return not_among
            if len(set(value)) != len(value):
                return "repeated", REPEATED, {}
            if len(value) < fewest:
                return "min_items", MIN_SELECTED, {"limit": fewest}
            if most is not None and len(value) > most:
                return "max_items", MAX_SELECTED, {"limit": most}
            return None

        return multi
    if isinstance(question, CalculateQuestion):
        # The value itself is compared with the formula's in _level.
        return lambda value, year: None if type(value) in (int, float) else _type_error("calculate")
    return lambda value, year: None  # a note: answers to it are refused before this


ChoiceCheck = Callable[[Any, Scope], bool]  # (chosen value, answers in scope) → filtered out?


def _choice_filter(question: SingleChoiceQuestion | MultiChoiceQuestion) -> ChoiceCheck | None:
    """Is a chosen value outside the options the earlier answer leaves (cascading select)?
    The options are grouped by their filter value once."""
    found = question.choice_filter
    if found is None:
        return None
    by_filter: dict[str, set[str]] = {}
    for choice in question.choices:
        wanted = (choice.filters or {}).get(found.column)
        if wanted is not None:
            by_filter.setdefault(wanted, set()).add(choice.value)
    nothing = frozenset[str]()

    def filtered_out(value: Any, scope: Scope) -> bool:
        wanted = scope.get(found.key)
        allowed = nothing if wanted is None else by_filter.get(str(wanted), nothing)
        chosen = value if isinstance(value, list) else [value]
        return any(item not in allowed for item in chosen)

    return filtered_out


# One question's check: (answers, scope, year, errors, path, age) → the age after it (a
# member's age is known once their birth year is checked).
Step = Callable[[Scope, Scope, int, list[FieldError], str, int | None], int | None]


def _step(question: SurveyQuestion, age_key: str | None) -> Step:
    """The check of one question, with everything that does not depend on the answers
    decided here: its kind, whether it has a condition, a filter, a formula."""
    key = question.key
    relevant = _predicate(question.relevant) if question.relevant is not None else None

    if isinstance(question, NoteQuestion):

        def note(
            answers: Scope, scope: Scope, year: int, errors: list[FieldError], path: str,
            age: int | None,
        ) -> int | None:  # fmt: skip
            value = answers.get(key)
            if relevant is not None and not relevant(scope, age):
                if value is not None:
                    errors.append(FieldError(f"{path}.{key}", "not_relevant", NOT_RELEVANT))
            elif value is not None:
                errors.append(FieldError(f"{path}.{key}", "not_relevant", NO_ANSWER))
            return age

        return note
    if isinstance(question, CalculateQuestion):
        calculate = _calculation(question.formula)

        def calculated(
            answers: Scope, scope: Scope, year: int, errors: list[FieldError], path: str,
            age: int | None,
        ) -> int | None:  # fmt: skip
            value = answers.get(key)
            if relevant is not None and not relevant(scope, age):
                if value is not None:
                    errors.append(FieldError(f"{path}.{key}", "not_relevant", NOT_RELEVANT))
                return age
            _calculated(calculate(scope), value, f"{path}.{key}", errors)
            return age

        return calculated
    check = _checker(question)
    required = question.required
    filtered_out = (
        _choice_filter(question)
        if isinstance(question, SingleChoiceQuestion | MultiChoiceQuestion)
        else None
    )
    gives_age = key == age_key

    def answer(
        answers: Scope, scope: Scope, year: int, errors: list[FieldError], path: str,
        age: int | None,
    ) -> int | None:  # fmt: skip
        value = answers.get(key)
        if relevant is not None and not relevant(scope, age):
            if value is not None:
                errors.append(FieldError(f"{path}.{key}", "not_relevant", NOT_RELEVANT))
            return age
        if value is None:
            if required:
                errors.append(FieldError(f"{path}.{key}", "required", REQUIRED))
            return age
        problem = check(value, year)
        if problem is not None:
            code, message, params = problem
            errors.append(FieldError(f"{path}.{key}", code, message, params or None))
        elif filtered_out is not None and filtered_out(value, scope):
            errors.append(FieldError(f"{path}.{key}", "choice_filter", FILTERED_CHOICE))
        elif gives_age and type(value) is int:
            return year - value
        return age

    return answer


Level = Callable[[Scope, str, int, list[FieldError], Scope | None], None]


def _reads_other_answers(questions: list[SurveyQuestion]) -> bool:
    """Does a question of this level read other answers (a condition, a choice filter, a
    calculation)? Then its checks see a scope: the level's answers over the household's."""
    return any(
        question.relevant is not None
        or isinstance(question, CalculateQuestion)
        or getattr(question, "choice_filter", None) is not None
        for question in questions
    )


def _compile_level(questions: list[SurveyQuestion], age_key: str | None = None) -> Level:
    """One level's questions (the household's, or a member's) as one check, in question
    order; ``outer``: the household's answers, which a member's conditions also see."""
    known = frozenset(question.key for question in questions)
    steps = tuple(_step(question, age_key) for question in questions)
    conditional = _reads_other_answers(questions)

    def level(
        answers: Scope, path: str, year: int, errors: list[FieldError], outer: Scope | None
    ) -> None:
        if not known.issuperset(answers):
            for key in answers:
                if key not in known:
                    errors.append(FieldError(f"{path}.{key}", "unknown_question", UNKNOWN))
        # Conditions see this level's answers first, then the household's (for members).
        scope = {**(outer or {}), **answers} if conditional else answers
        age: int | None = None
        for step in steps:
            age = step(answers, scope, year, errors, path, age)

    return level


def _calculated(expected: float | None, value: Any, field: str, errors: list[FieldError]) -> None:
    if expected is None:
        if value is not None:
            errors.append(FieldError(field, "not_relevant", NOT_CALCULABLE))
        return
    if value is None:
        errors.append(FieldError(field, "required", REQUIRED))
    elif type(value) not in (int, float):
        errors.append(FieldError(field, "type", TYPE, {"expected": _EXPECTED["calculate"]}))
    elif not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9):
        shown = int(expected) if expected.is_integer() else expected
        errors.append(FieldError(field, "calculation", CALCULATION, {"expected": shown}))


# The fast path. Most submissions are valid, and a valid one needs no errors built: each
# level's questions are also generated as one flat function that only says whether all is
# well (no closure per question, the usual checks inline). When it says no, the closures
# above find the errors, so every error, path and message comes from one place;
# tests/test_answers_fast.py holds the two to the same verdict.
LevelValid = Callable[[Scope, Scope | None, int], bool]


def _calculated_ok(expected: float | None, value: Any) -> bool:
    """Does :func:`_calculated` find nothing wrong?"""
    if expected is None:
        return value is None
    return type(value) in (int, float) and math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9)


def _valid_check(question: SurveyQuestion, name: str, namespace: dict[str, Any]) -> list[str]:
    """The lines refusing an answered ``v`` of ``question`` (indented for their block)."""
    if isinstance(question, IntegerQuestion):
        lines = ["if type(v) is not int:", "    return False"]
        if question.min is not None:
            namespace[f"low{name}"] = question.min
            lines += [f"if v < low{name}:", "    return False"]
        if question.max == "collectedYear":
            lines += ["if v > year:", "    return False"]
        elif question.max is not None:
            namespace[f"high{name}"] = question.max
            lines += [f"if v > high{name}:", "    return False"]
        return lines
    if isinstance(question, DecimalQuestion):
        lines = ["if type(v) is not int and type(v) is not float:", "    return False"]
        if question.min is not None:
            namespace[f"low{name}"] = question.min
            lines += [f"if v < low{name}:", "    return False"]
        if question.max is not None:
            namespace[f"high{name}"] = question.max
            lines += [f"if v > high{name}:", "    return False"]
        return lines
    if isinstance(question, BooleanQuestion):
        return ["if type(v) is not bool:", "    return False"]
    if isinstance(question, SingleChoiceQuestion):
        namespace[f"options{name}"] = frozenset(choice.value for choice in question.choices)
        lines = [f"if type(v) is not str or v not in options{name}:", "    return False"]
    else:  # text, date, multiple choice: their own checker
        namespace[f"check{name}"] = _checker(question)
        lines = [f"if check{name}(v, year) is not None:", "    return False"]
    if isinstance(question, SingleChoiceQuestion | MultiChoiceQuestion):
        filtered_out = _choice_filter(question)
        if filtered_out is not None:
            namespace[f"filtered{name}"] = filtered_out
            lines += [f"if filtered{name}(v, scope):", "    return False"]
    return lines


def _valid_level(questions: list[SurveyQuestion], age_key: str | None = None) -> LevelValid:
    """``_compile_level``'s verdict (no error at all?) as one generated function."""
    namespace: dict[str, Any] = {
        "known": frozenset(question.key for question in questions),
        "_calculated_ok": _calculated_ok,
    }
    conditional = _reads_other_answers(questions)
    lines = [
        "def valid(answers, outer, year):",
        "    if not known.issuperset(answers):",
        "        return False",
        "    scope = {**(outer or {}), **answers}" if conditional else "    scope = answers",
        "    age = None",
    ]
    for position, question in enumerate(questions):
        name = str(position)
        namespace[f"key{name}"] = question.key
        lines.append(f"    v = answers.get(key{name})")
        if isinstance(question, NoteQuestion):
            lines += ["    if v is not None:", "        return False"]
            continue
        if isinstance(question, CalculateQuestion):
            namespace[f"calculate{name}"] = _calculation(question.formula)
            answered = [f"if not _calculated_ok(calculate{name}(scope), v):", "    return False"]
        else:
            answered = _valid_check(question, name, namespace)
            if question.key == age_key:
                answered.append("age = year - v")
        if isinstance(question, CalculateQuestion):
            checks = answered
        else:
            checks = ["if v is None:", "    return False" if question.required else "    pass"]
            checks += ["else:"] + [f"    {line}" for line in answered]
        if question.relevant is not None:
            namespace[f"relevant{name}"] = _predicate(question.relevant)
            lines += [
                f"    if not relevant{name}(scope, age):",
                "        if v is not None:",
                "            return False",
                "    else:",
            ]
            lines += [f"        {line}" for line in checks]
        else:
            lines += [f"    {line}" for line in checks]
    lines.append("    return True")
    # Nothing from a definition reaches the source but positions: keys, bounds and options
    # are names in the namespace.
    exec(compile("\n".join(lines) + "\n", "<survey rules>", "exec"), namespace)  # noqa: S102
    valid: LevelValid = namespace["valid"]
    return valid


def _compile_valid(definition: SurveyDefinition) -> Callable[[SubmissionAsSent], bool]:
    """Is ``submission`` free of errors (``_compile``'s result empty)?"""
    household = _valid_level(definition.questions)
    roster = definition.roster
    if roster is None:
        return lambda submission: (
            not submission.members
            and household(submission.answers, None, submission.collected_at.year)
        )
    age_key = _age_key(roster.questions)
    member_level = _valid_level(roster.questions, age_key)
    fewest, most, count_from = roster.min_count, roster.max_count, roster.count_from

    def valid(submission: SubmissionAsSent) -> bool:
        year = submission.collected_at.year
        answers = submission.answers
        members = submission.members
        count = len(members)
        if count < fewest or count > most or not household(answers, None, year):
            return False
        if len({member.member_id for member in members}) != count:
            return False
        if count_from is not None:
            expected = answers.get(count_from)
            if _is_int(expected) and expected != count:
                return False
        return all(member_level(member.answers, answers, year) for member in members)

    return valid


Validator = Callable[[SubmissionAsSent], list[FieldError]]


def _age_key(questions: list[SurveyQuestion]) -> str | None:
    """ "$age" in member conditions is derived from the first integer question whose maximum
    is the year of collection (the birth year)."""
    return next(
        (q.key for q in questions if isinstance(q, IntegerQuestion) and q.max == "collectedYear"),
        None,
    )


def _compile(definition: SurveyDefinition) -> Validator:
    """All the rules of one survey version as one function of a submission."""
    household = _compile_level(definition.questions)
    roster = definition.roster
    if roster is None:

        def without_roster(submission: SubmissionAsSent) -> list[FieldError]:
            errors: list[FieldError] = []
            household(submission.answers, "answers", submission.collected_at.year, errors, None)
            if submission.members:
                errors.append(FieldError("members", "not_relevant", NO_ROSTER))
            return errors

        return without_roster
    member_level = _compile_level(roster.questions, _age_key(roster.questions))
    fewest, most, count_from = roster.min_count, roster.max_count, roster.count_from

    def with_roster(submission: SubmissionAsSent) -> list[FieldError]:
        errors: list[FieldError] = []
        year = submission.collected_at.year
        answers = submission.answers
        household(answers, "answers", year, errors, None)
        members: list[MemberAnswersAsSent] = submission.members
        if len({member.member_id for member in members}) != len(members):
            errors.append(FieldError("members", "duplicate_member", DUPLICATE_MEMBER))
        if len(members) < fewest:
            errors.append(FieldError("members", "min_items", MIN_MEMBERS, {"limit": fewest}))
        if len(members) > most:
            errors.append(FieldError("members", "max_items", MAX_MEMBERS, {"limit": most}))
        if count_from is not None:
            expected = answers.get(count_from)
            if _is_int(expected) and expected != len(members):
                errors.append(
                    FieldError(
                        "members",
                        "count_mismatch",
                        COUNT_MISMATCH,
                        {"count": len(members), "expected": expected},
                    )
                )
        for index, member in enumerate(members):
            member_level(member.answers, f"members[{index}].answers", year, errors, answers)
        return errors

    return with_roster


class Rules(NamedTuple):
    """A survey version's rules, compiled."""

    check: Validator  # every problem of a submission (empty when it is valid)
    keys: frozenset[str]  # its questions' keys, household's and members'
    valid: Callable[[SubmissionAsSent], bool]  # the fast verdict: is it free of problems?
    problems: Validator  # the problems, found question by question (what check runs if not)


# Published versions never change: each is compiled once (kept with its definition, so the
# id stays unique while the entry lives).
_compiled: dict[int, tuple[SurveyDefinition, Rules]] = {}


def rules(definition: SurveyDefinition) -> Rules:
    """The compiled rules of ``definition`` (compiled on first use, then kept)."""
    found = _compiled.get(id(definition))
    if found is None or found[0] is not definition:
        questions = definition.questions + (
            definition.roster.questions if definition.roster else []
        )
        valid, problems = _compile_valid(definition), _compile(definition)

        def check(submission: SubmissionAsSent) -> list[FieldError]:
            return [] if valid(submission) else problems(submission)

        compiled = Rules(check, frozenset(question.key for question in questions), valid, problems)
        found = (definition, compiled)
        _compiled[id(definition)] = found
    return found[1]


def validate(definition: SurveyDefinition, submission: SubmissionAsSent) -> list[FieldError]:
    """Every problem of ``submission`` against ``definition`` (empty when it is valid)."""
    return rules(definition).check(submission)


DUPLICATE_KEY = N_("Another question already uses this key.")
DUPLICATE_CHOICE = N_("Another choice already uses this value.")
LATER_KEY = N_("A condition can only refer to an earlier question.")
BAD_COUNT_FROM = N_("This must name an integer question of the household.")
BAD_DEFAULT = N_("The default must be a valid answer to this question.")
BAD_PATTERN = N_("This is not a valid regular expression.")
SLOW_PATTERN = N_(
    "A repetition inside a repeated group, such as (a+)+, can take very long to check: "
    "simplify the pattern."
)
# A quantified group holding a quantifier: the shape of catastrophic backtracking.
NESTED_REPEAT = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)(?:[+*]|\{\d*,)")
BAD_COMBINATION = N_("all, any and not combine the conditions in of (not: exactly one).")
MISSING_KEY = N_("This condition needs a key.")
BAD_FORMULA = N_("A formula is a number, a key, or an operation with its arguments.")
BAD_FILTER = N_("Every choice needs a value for this filter column.")


def _condition_errors(
    condition: Condition, field: str, known: set[str], errors: list[FieldError]
) -> None:
    if condition.op in ("all", "any", "not"):
        parts = condition.of or []
        if not parts or (condition.op == "not" and len(parts) != 1):
            errors.append(FieldError(f"{field}.of", "invalid", BAD_COMBINATION))
        for index, part in enumerate(parts):
            _condition_errors(part, f"{field}.of[{index}]", known, errors)
        return
    if condition.key is None:
        errors.append(FieldError(f"{field}.key", "required", MISSING_KEY))
    elif condition.key != AGE and condition.key not in known:
        errors.append(FieldError(f"{field}.key", "invalid", LATER_KEY))


def _formula_errors(
    formula: Formula, field: str, known: set[str], errors: list[FieldError]
) -> None:
    shapes = (formula.value is not None, formula.key is not None, formula.op is not None)
    if sum(shapes) != 1 or (formula.op is None) != (formula.args is None):
        errors.append(FieldError(field, "invalid", BAD_FORMULA))
        return
    if formula.key is not None and formula.key not in known:
        errors.append(FieldError(f"{field}.key", "invalid", LATER_KEY))
    for index, arg in enumerate(formula.args or ()):
        _formula_errors(arg, f"{field}.args[{index}]", known, errors)


def _filter_errors(
    found: ChoiceFilter,
    question: SingleChoiceQuestion | MultiChoiceQuestion,
    field: str,
    known: set[str],
    errors: list[FieldError],
) -> None:
    if found.key not in known:
        errors.append(FieldError(f"{field}.choiceFilter.key", "invalid", LATER_KEY))
    if any(found.column not in (choice.filters or {}) for choice in question.choices):
        errors.append(FieldError(f"{field}.choiceFilter.column", "invalid", BAD_FILTER))


def check_definition(definition: SurveyDefinition) -> list[FieldError]:
    """A draft's internal consistency: unique keys and choices, conditions on earlier answers."""
    errors: list[FieldError] = []

    def level(questions: list[SurveyQuestion], path: str, earlier: set[str]) -> set[str]:
        keys: set[str] = set()
        for index, question in enumerate(questions):
            field = f"{path}[{index}]"
            if question.key in keys:
                errors.append(FieldError(f"{field}.key", "duplicate", DUPLICATE_KEY))
            known = keys | earlier
            if question.relevant is not None:
                _condition_errors(question.relevant, f"{field}.relevant", known, errors)
            if isinstance(question, SingleChoiceQuestion | MultiChoiceQuestion):
                values = [choice.value for choice in question.choices]
                if len(set(values)) != len(values):
                    errors.append(FieldError(f"{field}.choices", "duplicate", DUPLICATE_CHOICE))
                if question.choice_filter is not None:
                    _filter_errors(question.choice_filter, question, field, known, errors)
            if isinstance(question, CalculateQuestion):
                _formula_errors(question.formula, f"{field}.formula", known, errors)
            if isinstance(question, TextQuestion) and question.pattern is not None:
                try:
                    re.compile(question.pattern)
                except re.error:
                    errors.append(FieldError(f"{field}.pattern", "invalid", BAD_PATTERN))
                    keys.add(question.key)
                    continue
                if NESTED_REPEAT.search(question.pattern):
                    errors.append(FieldError(f"{field}.pattern", "invalid", SLOW_PATTERN))
            if question.default is not None and (
                isinstance(question, NoteQuestion)
                or _checker(question)(question.default, date.today().year) is not None
            ):
                errors.append(FieldError(f"{field}.default", "invalid", BAD_DEFAULT))
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
