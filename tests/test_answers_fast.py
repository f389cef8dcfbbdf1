"""The validator's fast verdict and its question-by-question errors agree (api/answers.py).

Every survey version has two compiled forms: a generated function saying whether a
submission is free of problems (run on every item), and the closures that list the problems
(run only when it says no). Here both judge the same submissions: the built-in household
survey and every XLSForm of the import tests (each supported kind, skip logic, choice
filters, calculations, a roster), on their own cases and on random variations of them.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest

from api.answers import rules
from api.authoring.xlsform import import_xlsform
from schemas.households import Consent, MemberAnswersAsSent, SubmissionAsSent
from schemas.surveys import SurveyDefinition
from tests.conftest import member
from tests.xlsforms import CAMPAIGN_CASES, Case, campaign_form, feature_forms

BUILT_IN = Path(__file__).resolve().parents[1] / "migrations" / "data" / "household_digital_v1.json"
COLLECTED = datetime(2025, 7, 1, 2, 30, tzinfo=UTC)
# Values every question meets sooner or later: each kind's own, its neighbours', the limits
# of the forms' ranges and ages around the conditions' (14, 15, 2011).
ODD_VALUES: list[Any] = [
    True, False, 0, 1, -1, 2, 3, 6, 14, 15, 20, 21, 100, 1900, 1939, 1990, 2010, 2011, 2012,
    2025, 2026, 2.5, 1.0, -0.5, 1e9, "", "a", "12A", "440000", "44000a", "yes", "no", "fibre",
    "level2", "2025-07-01", "2025-13-01", "2025-7-1", "x\x00", "x" * 300, [], ["yes"],
    ["yes", "yes"], ["yes", "no"], ["a", 1], {"a": 1}, None,
]  # fmt: skip


def definitions() -> dict[str, tuple[SurveyDefinition, list[Case]]]:
    found: dict[str, tuple[SurveyDefinition, list[Case]]] = {}
    forms = {name: data for name, (data, _) in feature_forms().items()}
    forms["campaign"] = campaign_form()
    cases = {name: form_cases for name, (_, form_cases) in feature_forms().items()}
    for name, data in forms.items():
        definition = import_xlsform(data).definition
        assert definition is not None, name
        found[name] = (definition, cases.get(name, []))
    built_in = msgspec.json.decode(BUILT_IN.read_bytes(), type=SurveyDefinition)
    found["household_digital"] = (built_in, [])
    # A roster of exactly two members, with no household size to count them against.
    repeat, repeat_cases = found["repeat"]
    assert repeat.roster is not None
    roster = msgspec.structs.replace(repeat.roster, min_count=2, max_count=2)
    found["repeat_of_two"] = (msgspec.structs.replace(repeat, roster=roster), repeat_cases)
    return found


DEFINITIONS = definitions()


def submission(answers: dict[str, Any], members: list[tuple[uuid.UUID, dict[str, Any]]]) -> Any:
    return SubmissionAsSent(
        id=uuid.uuid4(),
        survey_id=uuid.uuid4(),
        survey_version=1,
        household_id=uuid.uuid4(),
        collected_at=COLLECTED,
        consent=Consent(given=True, notice_version="1"),
        answers=answers,
        members=[MemberAnswersAsSent(member_id=m, answers=a) for m, a in members],
    )


def _values(definition: SurveyDefinition) -> list[Any]:
    """The odd values, and every choice the definition offers (alone and in a list)."""
    questions = definition.questions + (definition.roster.questions if definition.roster else [])
    choices = [c.value for q in questions for c in getattr(q, "choices", None) or []]
    return ODD_VALUES + choices + [[c] for c in choices]


def _vary(
    rng: random.Random, answers: dict[str, Any], keys: list[str], values: list[Any]
) -> dict[str, Any]:
    """``answers`` with a few keys changed, dropped or added (an unknown one now and then)."""
    varied = dict(answers)
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        key = rng.choice([*keys, "not_a_question"] if rng.random() < 0.05 else keys)
        if rng.random() < 0.3:
            varied.pop(key, None)
        else:
            varied[key] = rng.choice(values)
    return varied


# Valid starts for the forms without cases of their own in feature_forms().
STARTS: dict[str, list[dict[str, Any]]] = {
    "campaign": [answers for answers, _, errors in CAMPAIGN_CASES if not errors],
    "household_digital": [
        {"hh_size": 2, "hh_broadband": "fibre", "hh_smart_devices": 3},
        {"hh_size": 2, "hh_broadband": "none", "hh_smart_devices": 0},
    ],
}


@pytest.mark.parametrize("name", sorted(DEFINITIONS))
def test_the_fast_verdict_is_the_errors_verdict(name: str) -> None:
    definition, cases = DEFINITIONS[name]
    compiled = rules(definition)
    rng = random.Random(f"fast-{name}")
    household_keys = [q.key for q in definition.questions]
    member_keys = [q.key for q in definition.roster.questions] if definition.roster else []
    values = _values(definition)
    starts: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
        (answers, [entry["answers"] for entry in members]) for answers, members, _ in cases
    ]
    for answers in STARTS.get(name, []):
        roster = [member(rng.choice((1950, 1990, 2011, 2012, 2020))) for _ in range(2)]
        roster_answers = [cast(dict[str, Any], m["answers"]) for m in roster]
        starts.append((answers, roster_answers if member_keys else []))
    verdicts = {True: 0, False: 0}
    for round_ in range(1_500):
        answers, members = rng.choice(starts)
        ids = [uuid.uuid4() for _ in members]
        if ids and rng.random() < 0.05:
            ids[-1] = ids[0]  # a member twice
        if round_ % 3:
            answers = _vary(rng, answers, household_keys, values)
            members = [_vary(rng, m, member_keys, values) for m in members]
            if member_keys and rng.random() < 0.1:
                members = members[:-1] if rng.random() < 0.5 else [*members, dict(members[0])]
                ids = [uuid.uuid4() for _ in members]
        item = submission(answers, list(zip(ids, members, strict=True)))
        problems = compiled.problems(item)
        assert compiled.valid(item) is (problems == []), (answers, members, problems)
        assert compiled.check(item) == problems
        verdicts[problems == []] += 1
    # Both verdicts were reached often: the comparison was not one-sided.
    assert verdicts[True] >= 50, verdicts
    assert verdicts[False] >= 50, verdicts
