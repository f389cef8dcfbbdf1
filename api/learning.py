"""Learning modules: definition checks, localized rendering, quiz scoring, and recording
attempts and lesson progress (one path for the HTTP endpoints and sync pushes).

Scoring rule: a question counts as correct only when the set of chosen choices equals the
set of correct choices exactly (a single choice: the one correct choice; a multiple choice:
all the correct ones and nothing else; no partial credit). An unanswered question counts as
wrong. ``score`` = correct questions / questions, and the attempt passes when the score
reaches the module's pass mark.

Idempotency: ``attemptId`` is the key. The same id with the same content (module, version,
answers as sets, household and member) gives the same result and changes nothing; with other
content, a conflict. Lesson progress only accumulates, so repeating it changes nothing.

Counters: each learner has one row per module (api/queries/modules.py ``lock_learner``),
locked while an attempt or progress is recorded, and the ward's counters move by the change
of that row's flags in the same transaction.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec

from api.auth import Principal
from api.errors import FieldError, field_error, translate_errors
from api.i18n import N_
from api.ingest import decode_item, raw_item_id
from api.queries import households as hq
from api.queries import modules as q
from api.stats.keys import RecordKeys
from schemas.households import ItemResult, ItemStatus
from schemas.modules import (
    AttemptResult,
    Lesson,
    Module,
    ModuleDefinition,
    ModuleSummary,
    NewAttempt,
    Progress,
    ProgressUpdate,
    PushAttempt,
    PushProgress,
    QuestionResult,
    Quiz,
    QuizChoice,
    QuizQuestion,
)
from schemas.surveys import Localized

CLOCK_SKEW = timedelta(days=1)

DUPLICATE_KEY = N_("This id is used twice in the list.")
SINGLE_CORRECT = N_("A single-choice question has exactly one correct choice.")
MULTI_CORRECT = N_("A multiple-choice question has at least one correct choice.")
UNKNOWN_QUESTION = N_("This module has no question with this id.")
UNKNOWN_CHOICE = N_("This question has no choice with this id.")
CHOOSE_ONE = N_("Choose exactly one answer for a single-choice question.")
UNKNOWN_LESSON = N_("This module has no lesson with this id.")
UNKNOWN_VERSION = N_("This module version is not published.")
HOUSEHOLD_NOT_FOUND = N_("No household with this id in your area.")
MEMBER_NEEDS_HOUSEHOLD = N_("Name the household of this member in householdId.")
ATTEMPT_DIFFERS = N_("An attempt with this id was stored with different content.")
NAIVE_TIME = N_("Give the time zone, e.g. 2025-07-01T08:30:00+07:00.")
FUTURE_TIME = N_("The time cannot be in the future.")


def check_definition(definition: ModuleDefinition) -> list[FieldError]:
    """Rules msgspec cannot express: unique ids, and the number of correct choices."""
    errors: list[FieldError] = []

    def unique(field: str, keys: list[str]) -> None:
        seen: set[str] = set()
        for index, key in enumerate(keys):
            if key in seen:
                errors.append(FieldError(f"{field}[{index}]", "duplicate", DUPLICATE_KEY))
            seen.add(key)

    unique("audience", list(definition.audience))
    unique("competences.components", definition.competences.components)
    unique("lessons", [lesson.key for lesson in definition.lessons])
    unique("quiz.questions", [question.key for question in definition.quiz.questions])
    for index, question in enumerate(definition.quiz.questions):
        field = f"quiz.questions[{index}]"
        unique(f"{field}.choices", [choice.key for choice in question.choices])
        correct = sum(choice.correct for choice in question.choices)
        if question.kind == "single_choice" and correct != 1:
            errors.append(FieldError(f"{field}.choices", "correct_choices", SINGLE_CORRECT))
        if question.kind == "multi_choice" and correct < 1:
            errors.append(FieldError(f"{field}.choices", "correct_choices", MULTI_CORRECT))
    return errors


def _text(text: Localized, language: str) -> str:
    return text.en if language == "en" else text.vi


def render(record: q.VersionRecord, language: str) -> Module:
    """The module in one language, without the correct answers or explanations."""
    d = record.definition
    return Module(
        id=record.module_id,
        code=record.code,
        version=record.version,
        language=language,
        title=_text(d.title, language),
        summary=_text(d.summary, language),
        minutes=d.minutes,
        audience=d.audience,
        competences=d.competences,
        lessons=[
            Lesson(
                id=lesson.key,
                title=_text(lesson.title, language),
                body=lesson.body.en if language == "en" else lesson.body.vi,
                images=lesson.images,
            )
            for lesson in d.lessons
        ],
        quiz=Quiz(
            pass_mark=d.quiz.pass_mark,
            questions=[
                QuizQuestion(
                    id=question.key,
                    kind=question.kind,
                    prompt=_text(question.prompt, language),
                    choices=[
                        QuizChoice(id=choice.key, label=_text(choice.label, language))
                        for choice in question.choices
                    ],
                )
                for question in d.quiz.questions
            ],
        ),
        published_at=record.published_at,
    )


def summarize(record: q.VersionRecord, language: str) -> ModuleSummary:
    d = record.definition
    return ModuleSummary(
        id=record.module_id,
        code=record.code,
        version=record.version,
        title=_text(d.title, language),
        summary=_text(d.summary, language),
        minutes=d.minutes,
        audience=d.audience,
        competences=d.competences,
        published_at=record.published_at,
    )


class ModuleCache:
    """Published versions never change: each is read once, and rendered once per language."""

    def __init__(self, keys: RecordKeys) -> None:
        self.keys = keys  # learners' record keys, for the learning counters' key sums
        self.versions: dict[tuple[uuid.UUID, int], q.VersionRecord] = {}
        self.rendered: dict[tuple[uuid.UUID, int, str], Module] = {}

    async def get(
        self, conn: asyncpg.Connection, keys: set[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], q.VersionRecord]:
        missing = [key for key in keys if key not in self.versions]
        if missing:
            for record in await q.get_versions(conn, missing):
                self.versions[(record.module_id, record.version)] = record
        return {key: self.versions[key] for key in keys if key in self.versions}

    async def module(
        self, conn: asyncpg.Connection, module_id: uuid.UUID, version: int, language: str
    ) -> Module | None:
        key = (module_id, version, language)
        if key not in self.rendered:
            record = (await self.get(conn, {(module_id, version)})).get((module_id, version))
            if record is None:
                return None
            self.rendered[key] = render(record, language)
        return self.rendered[key]


# Scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    correct: int
    total: int
    score: float
    passed: bool
    questions: list[QuestionResult]


def check_answers(definition: ModuleDefinition, answers: dict[str, list[str]]) -> list[FieldError]:
    questions = {question.key: question for question in definition.quiz.questions}
    errors: list[FieldError] = []
    for key, chosen in answers.items():
        field = f"answers.{key}"
        question = questions.get(key)
        if question is None:
            errors.append(FieldError(field, "unknown_question", UNKNOWN_QUESTION))
            continue
        choices = {choice.key for choice in question.choices}
        if any(choice not in choices for choice in chosen):
            errors.append(FieldError(field, "choice", UNKNOWN_CHOICE))
        elif question.kind == "single_choice" and len(set(chosen)) != 1:
            errors.append(FieldError(field, "choose_one", CHOOSE_ONE))
    return errors


def score(definition: ModuleDefinition, answers: dict[str, list[str]], language: str) -> Scored:
    """Score checked answers (see the module docstring for the rule)."""
    results = []
    for question in definition.quiz.questions:
        expected = {choice.key for choice in question.choices if choice.correct}
        right = key_set(answers.get(question.key)) == expected
        explanation = question.explanation
        results.append(
            QuestionResult(
                id=question.key,
                correct=right,
                explanation=None if explanation is None else _text(explanation, language),
            )
        )
    correct = sum(r.correct for r in results)
    total = len(results)
    # Compare in integers: 0.7 × 10 is not exactly 7 in floating point.
    passed = correct * 1000 >= round(definition.quiz.pass_mark * 1000) * total
    return Scored(correct, total, round(correct / total, 4), passed, results)


def key_set(chosen: list[str] | None) -> set[str]:
    return set(chosen or [])


# Who is learning, and where ----------------------------------------------------------------------


@dataclass(frozen=True)
class Learner:
    learner_id: uuid.UUID
    household_id: uuid.UUID | None
    member_id: uuid.UUID | None
    ward_id: int
    province_id: int


async def resolve_learner(
    conn: asyncpg.Connection,
    principal: Principal,
    household_id: uuid.UUID | None,
    member_id: uuid.UUID | None,
) -> Learner | FieldError:
    """The learner and the ward they count in: a resident's household's ward; for a team
    member teaching at a household, that household's ward; otherwise the caller's own ward."""
    if principal.role == "resident":
        if household_id is not None and household_id != principal.household_id:
            return FieldError("householdId", "household_not_found", HOUSEHOLD_NOT_FOUND)
        household_id = principal.household_id
        if household_id is None:
            return FieldError("householdId", "household_not_found", HOUSEHOLD_NOT_FOUND)
    if household_id is None:
        if member_id is not None:
            return FieldError("householdId", "required", MEMBER_NEEDS_HOUSEHOLD)
        assert principal.area_id is not None
        assert principal.province_id is not None
        return Learner(principal.user_id, None, None, principal.area_id, principal.province_id)
    household = await hq.get_household(conn, household_id)
    if household is None or (
        principal.role != "resident" and household.ward_id != principal.area_id
    ):
        return FieldError("householdId", "household_not_found", HOUSEHOLD_NOT_FOUND)
    # A resident without a member id learns as themself; a team member teaching the household
    # without one records the household as the learner.
    learner_id = member_id or (principal.user_id if principal.role == "resident" else household.id)
    return Learner(learner_id, household.id, member_id, household.ward_id, household.province_id)


def _check_time(taken_at: datetime | None, now: datetime) -> FieldError | None:
    if taken_at is None:
        return None
    if taken_at.tzinfo is None:
        return FieldError("takenAt", "format", NAIVE_TIME)
    if taken_at > now + CLOCK_SKEW:
        return FieldError("takenAt", "maximum", FUTURE_TIME)
    return None


def attempt_hash(
    module_id: uuid.UUID, version: int, attempt: NewAttempt, learner: Learner
) -> bytes:
    """The same content however it is spelled: answers as sorted sets, the resolved learner."""
    canonical = msgspec.json.encode(
        {
            "module": str(module_id),
            "version": version,
            "answers": {key: sorted(set(chosen)) for key, chosen in attempt.answers.items()},
            "household": str(learner.household_id),
            "member": str(learner.member_id),
        },
        order="sorted",
    )
    return hashlib.blake2b(canonical, digest_size=16).digest()


async def _published(
    conn: asyncpg.Connection, cache: ModuleCache, module_id: uuid.UUID, version: int | None
) -> q.VersionRecord | FieldError | None:
    """The named (or latest) published version; None when the module is not published."""
    latest = await q.latest_version(conn, module_id)
    if latest is None:
        return None
    wanted = version or latest
    record = (await cache.get(conn, {(module_id, wanted)})).get((module_id, wanted))
    if record is None:
        return FieldError("version", "unknown_version", UNKNOWN_VERSION)
    return record


@dataclass(frozen=True)
class AttemptOutcome:
    status: str  # accepted, duplicate, conflict, rejected, not_found
    result: AttemptResult | None = None
    errors: list[FieldError] | None = None


async def record_attempt(
    conn: asyncpg.Connection,
    cache: ModuleCache,
    principal: Principal,
    module_id: uuid.UUID,
    attempt: NewAttempt,
    language: str,
) -> AttemptOutcome:
    """Score an attempt and store it with the learner's counters, in one transaction."""
    record = await _published(conn, cache, module_id, attempt.version)
    if isinstance(record, FieldError):
        return AttemptOutcome("rejected", errors=[record])
    if record is None:
        return AttemptOutcome("not_found")
    version = record.version
    if error := _check_time(attempt.taken_at, datetime.now(UTC)):
        return AttemptOutcome("rejected", errors=[error])
    if errors := check_answers(record.definition, attempt.answers):
        return AttemptOutcome("rejected", errors=errors)
    learner = await resolve_learner(conn, principal, attempt.household_id, attempt.member_id)
    if isinstance(learner, FieldError):
        return AttemptOutcome("rejected", errors=[learner])
    scored = score(record.definition, attempt.answers, language)
    result = AttemptResult(
        attempt_id=attempt.attempt_id,
        module_id=module_id,
        version=version,
        score=scored.score,
        passed=scored.passed,
        correct=scored.correct,
        total=scored.total,
        questions=scored.questions,
    )
    content_hash = attempt_hash(module_id, version, attempt, learner)
    async with conn.transaction():
        inserted = await q.insert_attempt(
            conn,
            id=attempt.attempt_id,
            module_id=module_id,
            version=version,
            learner_id=learner.learner_id,
            household_id=learner.household_id,
            member_id=learner.member_id,
            ward_id=learner.ward_id,
            province_id=learner.province_id,
            submitted_by=principal.user_id,
            taken_at=attempt.taken_at or datetime.now(UTC),
            answers={key: sorted(set(chosen)) for key, chosen in attempt.answers.items()},
            correct=scored.correct,
            total=scored.total,
            score=scored.score,
            passed=scored.passed,
            content_hash=content_hash,
        )
        if inserted:
            before = await q.lock_learner(
                conn,
                module_id=module_id,
                learner_id=learner.learner_id,
                ward_id=learner.ward_id,
                province_id=learner.province_id,
                household_id=learner.household_id,
                record_key=cache.keys.of(str(learner.learner_id)),
            )
            after = msgspec.structs.replace(
                before, attempts=before.attempts + 1, passed=before.passed or scored.passed
            )
            await q.update_learner(
                conn,
                module_id=module_id,
                learner_id=learner.learner_id,
                before=before,
                after=after,
                score=scored.score,
            )
            return AttemptOutcome("accepted", result)
    stored = await q.stored_attempt(conn, attempt.attempt_id)
    if stored == (module_id, content_hash):
        return AttemptOutcome("duplicate", result)
    return AttemptOutcome(
        "conflict", errors=[FieldError("attemptId", "content_differs", ATTEMPT_DIFFERS)]
    )


@dataclass(frozen=True)
class ProgressOutcome:
    status: str  # accepted, duplicate, rejected, not_found
    progress: Progress | None = None
    errors: list[FieldError] | None = None


async def record_progress(
    conn: asyncpg.Connection,
    cache: ModuleCache,
    principal: Principal,
    module_id: uuid.UUID,
    update: ProgressUpdate,
) -> ProgressOutcome:
    """Add completed lessons to the learner's progress (a union: repeating changes nothing).
    The module is completed once every lesson of the version is done."""
    record = await _published(conn, cache, module_id, update.version)
    if isinstance(record, FieldError):
        return ProgressOutcome("rejected", errors=[record])
    if record is None:
        return ProgressOutcome("not_found")
    lessons = [lesson.key for lesson in record.definition.lessons]
    unknown = [
        FieldError(f"lessons[{i}]", "unknown_lesson", UNKNOWN_LESSON)
        for i, key in enumerate(update.lessons)
        if key not in lessons
    ]
    if unknown:
        return ProgressOutcome("rejected", errors=unknown)
    learner = await resolve_learner(conn, principal, update.household_id, update.member_id)
    if isinstance(learner, FieldError):
        return ProgressOutcome("rejected", errors=[learner])
    async with conn.transaction():
        before = await q.lock_learner(
            conn,
            module_id=module_id,
            learner_id=learner.learner_id,
            ward_id=learner.ward_id,
            province_id=learner.province_id,
            household_id=learner.household_id,
            record_key=cache.keys.of(str(learner.learner_id)),
        )
        done = set(before.lessons) | set(update.lessons)
        after = msgspec.structs.replace(
            before,
            lessons=sorted(done),
            completed=before.completed or done >= set(lessons),
        )
        status = "duplicate" if after == before else "accepted"
        if status == "accepted":
            await q.update_learner(
                conn,
                module_id=module_id,
                learner_id=learner.learner_id,
                before=before,
                after=after,
                score=None,
            )
    return ProgressOutcome(
        status,
        Progress(
            module_id=module_id,
            lessons=after.lessons,
            completed=after.completed,
            passed=after.passed,
            attempts=after.attempts,
        ),
    )


# Sync pushes -----------------------------------------------------------------------------------

MODULE_NOT_FOUND = N_("No published learning module with this id.")


def _result(
    item_id: uuid.UUID | None,
    status: ItemStatus,
    language: str,
    errors: list[FieldError] | None = None,
) -> ItemResult:
    return ItemResult(
        id=item_id, status=status, errors=translate_errors(language, errors) if errors else None
    )


async def push_progress(
    conn: asyncpg.Connection,
    cache: ModuleCache,
    principal: Principal,
    raw_items: list[msgspec.Raw],
    language: str,
) -> list[ItemResult]:
    """One result per progress item: accepted (something new), duplicate, or rejected."""
    results = []
    for raw in raw_items:
        try:
            item = decode_item(raw, PushProgress)
        except msgspec.ValidationError as exc:
            errors = [field_error(str(exc))]
            results.append(_result(raw_item_id(raw), "rejected", language, errors))
            continue
        outcome = await record_progress(conn, cache, principal, item.module_id, item)
        if outcome.status == "not_found":
            missing = [FieldError("moduleId", "module_not_found", MODULE_NOT_FOUND)]
            results.append(_result(item.id, "rejected", language, missing))
        else:
            status: ItemStatus = (
                "rejected"
                if outcome.progress is None
                else ("accepted" if outcome.status == "accepted" else "duplicate")
            )
            results.append(_result(item.id, status, language, outcome.errors))
    return results


async def push_attempts(
    conn: asyncpg.Connection,
    cache: ModuleCache,
    principal: Principal,
    raw_items: list[msgspec.Raw],
    language: str,
) -> list[ItemResult]:
    """One result per attempt, with its score: accepted, duplicate, conflict or rejected."""
    results = []
    for raw in raw_items:
        try:
            item = decode_item(raw, PushAttempt)
        except msgspec.ValidationError as exc:
            errors = [field_error(str(exc))]
            results.append(_result(raw_item_id(raw, "attemptId"), "rejected", language, errors))
            continue
        outcome = await record_attempt(conn, cache, principal, item.module_id, item, language)
        if outcome.status == "not_found":
            missing = [FieldError("moduleId", "module_not_found", MODULE_NOT_FOUND)]
            results.append(_result(item.attempt_id, "rejected", language, missing))
        elif outcome.result is not None:
            status: ItemStatus = "accepted" if outcome.status == "accepted" else "duplicate"
            results.append(
                ItemResult(
                    id=item.attempt_id,
                    status=status,
                    score=outcome.result.score,
                    passed=outcome.result.passed,
                )
            )
        else:
            status = "conflict" if outcome.status == "conflict" else "rejected"
            results.append(_result(item.attempt_id, status, language, outcome.errors))
    return results
