"""Accepting submissions: the one path for sync pushes, single submissions and demo data.

Each item is decoded and validated on its own, so one bad item never fails the batch. The
valid ones are then stored set-based in one transaction: lock the households they touch,
classify each item in order (duplicate, conflict, rejected, accepted), insert the accepted
rows and move each household's head. The transaction commits before any result is returned,
so an "accepted" is durable.

Idempotency: the client-generated id is the key. The same id with the same content is a
``duplicate`` (nothing changes); with different content, a ``conflict``. An edit names the
submission it replaces in ``supersedes`` and must name the household's current head.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

import asyncpg
import msgspec

from api.answers import rules, validate
from api.auth import Principal
from api.db import set_local_limits
from api.errors import DATABASE_UNAVAILABLE, FieldError, field_error, translate_errors
from api.i18n import N_
from api.queries import submissions as q
from api.queries.surveys import VersionRecord, get_versions
from api.stats import counters as stats
from api.stats.catalog import COVERAGE, Catalog, Measured, NotANumber, month_of
from schemas.households import ItemResult, ItemStatus, NewSubmission, SubmissionAsSent

log = logging.getLogger("congdongso.ingest")

EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(days=1)  # phones' clocks are often wrong by hours

CONSENT_REQUIRED = N_("Consent is required: nothing about this household was stored.")
NOTICE_VERSION = N_("The respondent must consent to privacy notice %(expected)s.")
UNKNOWN_VERSION = N_("This survey version is not published.")
HOUSEHOLD_NOT_FOUND = N_("No household with this id in your area.")
NAIVE_TIME = N_("Give the time zone, e.g. 2025-07-01T08:30:00+07:00.")
FUTURE_TIME = N_("The collection time cannot be in the future.")
PAST_TIME = N_("The collection time is too far in the past.")
CONTENT_DIFFERS = N_("A submission with this id was stored with different content.")
NOT_HEAD = N_("This household already has a submission: name it in supersedes to replace it.")
STALE_SUPERSEDES = N_(
    "Only the household's current submission can be superseded; sync and edit that one."
)
STORAGE_ERROR = N_("This item could not be stored.")
SURVEY_CLOSED = N_("This survey is closed: it takes no new submissions.")


class SurveyCache:
    """Published versions never change, so each is read from the database once; nor do a
    survey's province and kind (whether it is the household's state), kept here too."""

    def __init__(self) -> None:
        self.versions: dict[tuple[uuid.UUID, int], VersionRecord] = {}
        self.surveys: dict[uuid.UUID, q.SurveyState] = {}

    async def survey(self, conn: asyncpg.Connection, survey_id: uuid.UUID) -> q.SurveyState | None:
        """The survey's province and kind; ``closed`` as it was when first read (it can change:
        whoever stores must check it again)."""
        if survey_id not in self.surveys:
            self.surveys.update(await q.survey_states(conn, [survey_id]))
        return self.surveys.get(survey_id)

    async def get(
        self, conn: asyncpg.Connection, keys: set[tuple[uuid.UUID, int]]
    ) -> dict[tuple[uuid.UUID, int], VersionRecord]:
        missing = [key for key in keys if key not in self.versions]
        if missing:
            for record in await get_versions(conn, missing):
                self.versions[(record.survey_id, record.version)] = record
        return {key: self.versions[key] for key in keys if key in self.versions}


@dataclass
class Candidate:
    index: int
    submission: SubmissionAsSent
    content_hash: bytes
    household_state: bool  # else a campaign survey with its own chain per household


# Each household has one chain of submissions for its state (key: the household id and None)
# and one per campaign survey (key: the household id and the survey id).
Chain = tuple[uuid.UUID, uuid.UUID | None]


class _Raced(Exception):
    """A concurrent batch stored one of our ids between our check and our insert."""


def content_hash(submission: SubmissionAsSent) -> bytes:
    """The same content however it is spelled: sorted keys, the collection time in UTC."""
    if submission.collected_at.tzinfo is not None:
        submission = msgspec.structs.replace(
            submission, collected_at=submission.collected_at.astimezone(UTC)
        )
    canonical = msgspec.json.encode(submission, order="sorted")
    return hashlib.blake2b(canonical, digest_size=16).digest()


# Every item, pushed or single, is decoded once from its JSON text, strictly ("1" is not a
# version number), by the same decoder: as sent, with the answers' keys checked against the
# survey version's (schemas/households.py says why). An item that fails, or has another key,
# is decoded again as a NewSubmission, whose first error is the one reported.
T = TypeVar("T")
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_EXACT = 2**53  # beyond this a float no longer stands for one integer


def decode_item(raw: msgspec.Raw | bytes, kind: type[T]) -> T:
    """A pushed item (or a single submission, a learning record) as ``kind``, strictly from its
    JSON text: ``"1"`` is no number. A JSON number is one number however it is written, so
    ``2.0`` is the integer 2 (JSON Schema's integers, and so the document's): an item the
    strict decoder refuses is read once more with its whole floats as integers, and only if
    that fails too is the first error the answer (a rare path: valid clients send ``2``)."""
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS.setdefault(kind, msgspec.json.Decoder(kind))
    try:
        return cast(T, decoder.decode(raw))
    except msgspec.ValidationError:
        try:
            return msgspec.convert(_whole_numbers(msgspec.json.decode(raw)), kind)
        except msgspec.ValidationError:
            pass
        raise


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= _EXACT:
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _decode_error(raw: msgspec.Raw) -> FieldError | None:
    """The error decoding ``raw`` as a NewSubmission, as the client is told it (None if none)."""
    try:
        decode_item(raw, NewSubmission)
    except msgspec.ValidationError as exc:
        return field_error(str(exc))
    return None


def _keys_known(submission: SubmissionAsSent, version: VersionRecord | None) -> bool:
    """Are all answered keys questions of the version (so valid keys, without a regex)?"""
    if version is None:
        return False
    keys = rules(version.definition).keys
    return keys.issuperset(submission.answers) and all(
        keys.issuperset(member.answers) for member in submission.members
    )


def raw_item_id(raw: msgspec.Raw, key: str = "id") -> uuid.UUID | None:
    """The id of a pushed item that failed to decode, if it has a readable one (decoded again
    as any JSON: only items that are refused pay for it)."""
    try:
        found = msgspec.json.decode(raw)
        return uuid.UUID(str(found.get(key))) if isinstance(found, dict) else None
    except (ValueError, msgspec.DecodeError):
        return None


def survey_visible(principal: Principal, survey: q.SurveyState) -> bool:
    """National surveys are everyone's; a province's only its own areas'."""
    return (
        survey.province_id is None
        or principal.role == "admin"
        or survey.province_id == principal.province_id
    )


def _precheck(
    principal: Principal,
    submission: SubmissionAsSent,
    version: VersionRecord | None,
    survey: q.SurveyState | None,
    now: datetime,
) -> list[FieldError]:
    """Everything that can be checked without the household: consent, version, answers."""
    if not submission.consent.given:
        return [FieldError("consent.given", "consent_required", CONSENT_REQUIRED)]
    if version is None or survey is None or not survey_visible(principal, survey):
        return [FieldError("surveyVersion", "unknown_survey_version", UNKNOWN_VERSION)]
    if survey.closed:
        return [FieldError("surveyId", "survey_closed", SURVEY_CLOSED)]
    notice = version.definition.notice_version
    if submission.consent.notice_version != notice:
        return [
            FieldError(
                "consent.noticeVersion", "notice_version", NOTICE_VERSION, {"expected": notice}
            )
        ]
    collected = submission.collected_at
    if collected.tzinfo is None:
        return [FieldError("collectedAt", "format", NAIVE_TIME)]
    if collected > now + CLOCK_SKEW:
        return [FieldError("collectedAt", "maximum", FUTURE_TIME)]
    if collected < EARLIEST:
        return [FieldError("collectedAt", "minimum", PAST_TIME)]
    return validate(version.definition, submission)


# A batch is a few hundred microseconds of Python per item: every this many items, the
# other requests of the process get a turn (a card waits for one item's work, not a batch's).
YIELD_EVERY = 20


async def _let_others_run(position: int) -> None:
    if position % YIELD_EVERY == YIELD_EVERY - 1:
        await asyncio.sleep(0)


def _in_scope(principal: Principal, household: q.HouseholdHead) -> bool:
    if principal.role == "resident":
        return household.id == principal.household_id
    return household.ward_id == principal.area_id


async def ingest(
    conn: asyncpg.Connection,
    cache: SurveyCache,
    catalog: Catalog,
    principal: Principal,
    raw_items: Sequence[msgspec.Raw],
    language: str,
    *,
    events: bool = True,
    wake: Callable[[], None] | None = None,
) -> list[ItemResult]:
    """One result per item (each its JSON text), in order. Accepted items are committed when
    this returns, with their ``submission.accepted`` events in the outbox (unless ``events``
    is off); ``wake`` is then called to tell the webhook worker (outbox.Waker.poke)."""
    results: list[ItemResult | None] = [None] * len(raw_items)

    def reject(index: int, item_id: uuid.UUID | None, errors: list[FieldError]) -> None:
        results[index] = ItemResult(
            id=item_id, status="rejected", errors=translate_errors(language, errors)
        )

    parsed: list[tuple[int, SubmissionAsSent, msgspec.Raw]] = []
    for index, raw in enumerate(raw_items):
        await _let_others_run(index)
        try:
            parsed.append((index, decode_item(raw, SubmissionAsSent), raw))
        except msgspec.ValidationError as exc:
            reject(index, raw_item_id(raw), [_decode_error(raw) or field_error(str(exc))])

    versions = await cache.get(conn, {(s.survey_id, s.survey_version) for _, s, _ in parsed})
    # Read each batch: a survey can be closed at any time (versions never change).
    surveys = (
        await q.survey_states(conn, list({s.survey_id for _, s, _ in parsed})) if parsed else {}
    )
    now = datetime.now(UTC)
    candidates: list[Candidate] = []
    for position, (index, submission, raw) in enumerate(parsed):
        await _let_others_run(position)
        version = versions.get((submission.survey_id, submission.survey_version))
        if not _keys_known(submission, version) and (error := _decode_error(raw)):
            reject(index, raw_item_id(raw), [error])
            continue
        errors = _precheck(principal, submission, version, surveys.get(submission.survey_id), now)
        if errors:
            reject(index, submission.id, errors)
        else:
            state = surveys[submission.survey_id]
            candidates.append(
                Candidate(index, submission, content_hash(submission), state.household_state)
            )

    if candidates:
        try:
            stored = await _store_batch(conn, catalog, principal, candidates, language, events)
        except DATABASE_UNAVAILABLE:
            raise  # the database cannot answer now: the whole push is a 503, retried later
        except asyncpg.PostgresError:
            # Should not happen (everything was validated), but one bad row must not
            # fail the others: store item by item.
            log.exception("batch store failed; storing %d items one by one", len(candidates))
            stored = {}
            for candidate in candidates:
                try:
                    stored |= await _store_batch(
                        conn, catalog, principal, [candidate], language, events
                    )
                except DATABASE_UNAVAILABLE:
                    raise
                except asyncpg.PostgresError:
                    reject(
                        candidate.index,
                        candidate.submission.id,
                        [FieldError("", "storage_error", STORAGE_ERROR)],
                    )
        for index, result in stored.items():
            results[index] = result
        if events and wake is not None and any(r.status == "accepted" for r in stored.values()):
            wake()
    return [result for result in results if result is not None]


async def _store_batch(
    conn: asyncpg.Connection,
    catalog: Catalog,
    principal: Principal,
    candidates: list[Candidate],
    language: str,
    events: bool,
) -> dict[int, ItemResult]:
    for attempt in range(3):
        try:
            async with conn.transaction():
                # Ingest's own statement and lock limits (api/db.py) for this transaction. The
                # plans are PostgreSQL's choice: a generic plan made while a table was small (a
                # new database) scanned it whole until an autoanalyze replaced it.
                await conn.execute(set_local_limits("ingest"))
                return await _store_once(conn, catalog, principal, candidates, language, events)
        except _Raced:
            log.info("concurrent batch stored the same ids; retry %d", attempt + 1)
    raise asyncpg.PostgresError("could not store the batch after three attempts")


async def _store_once(
    conn: asyncpg.Connection,
    catalog: Catalog,
    principal: Principal,
    candidates: list[Candidate],
    language: str,
    events: bool,
) -> dict[int, ItemResult]:
    households = await q.lock_households(
        conn, sorted({c.submission.household_id for c in candidates})
    )
    heads: dict[Chain, uuid.UUID | None] = {
        (hid, None): h.current_submission_id for hid, h in households.items()
    }
    # A head about to be replaced: its answers are read to take what it counted away.
    replaced = {
        heads.get((c.submission.household_id, None))
        for c in candidates
        if c.household_state and c.submission.supersedes is not None
    } - {None}
    found = await q.stored(
        conn,
        [c.submission.id for c in candidates],
        [h.current_submission_id for h in households.values() if h.current_submission_id],
        [head for head in replaced if head is not None],
    )
    seen = {
        c.submission.id: found[c.submission.id].content_hash
        for c in candidates
        if c.submission.id in found
    }
    campaign_pairs = {
        (c.submission.household_id, c.submission.survey_id)
        for c in candidates
        if not c.household_state
    }
    if campaign_pairs:
        campaign = await q.campaign_heads(conn, sorted(campaign_pairs))
        heads |= {pair: campaign.get(pair) for pair in campaign_pairs}
    # A state counts from its collection time, never before the state it replaces.
    counted_from = {
        hid: found[h.current_submission_id].counted_at
        for hid, h in households.items()
        if h.current_submission_id is not None and h.current_submission_id in found
    }
    tally = stats.Tally(catalog)
    for hid, locked in households.items():
        if locked.current_submission_id in replaced and locked.current_submission_id in found:
            old = found[locked.current_submission_id]
            members = [(m["memberId"], m["answers"]) for m in old.members or []]
            with contextlib.suppress(NotANumber):  # then its edits are refused, below
                tally.measure(old.id, hid, old.collected_at, old.answers or {}, members)
    outcome: dict[int, ItemResult] = {}
    rows: list[q.NewRow] = []
    moved: dict[uuid.UUID, uuid.UUID] = {}
    moved_campaigns: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = {}

    def chain(c: Candidate) -> Chain:
        s = c.submission
        return (s.household_id, None if c.household_state else s.survey_id)

    def result(c: Candidate, status: ItemStatus, error: FieldError | None = None) -> None:
        outcome[c.index] = ItemResult(
            id=c.submission.id,
            status=status,
            errors=translate_errors(language, [error]) if error else None,
            current_submission_id=heads.get(chain(c)),
        )

    for position, c in enumerate(candidates):
        await _let_others_run(position)
        submission = c.submission
        if submission.id in seen:
            if seen[submission.id] == c.content_hash:
                result(c, "duplicate")
            else:
                result(c, "conflict", FieldError("id", "content_differs", CONTENT_DIFFERS))
            continue
        household = households.get(submission.household_id)
        if household is None or not _in_scope(principal, household):
            outcome[c.index] = ItemResult(
                id=submission.id,
                status="rejected",
                errors=translate_errors(
                    language,
                    [FieldError("householdId", "household_not_found", HOUSEHOLD_NOT_FOUND)],
                ),
            )
            continue
        head = heads[chain(c)]
        if submission.supersedes != head:
            if submission.supersedes is None:
                result(c, "conflict", FieldError("supersedes", "not_head", NOT_HEAD))
            else:
                result(
                    c, "conflict", FieldError("supersedes", "stale_supersedes", STALE_SUPERSEDES)
                )
            continue
        counted_at = submission.collected_at
        measured: list[Measured] = []
        replaced_measured: list[Measured] | None = None
        if c.household_state:
            try:
                measured = tally.measure(
                    submission.id,
                    household.id,
                    submission.collected_at,
                    submission.answers,
                    [(m.member_id, m.answers) for m in submission.members],
                )
                if submission.supersedes is not None:
                    replaced_measured = tally.measure_of(submission.supersedes)
            except (NotANumber, KeyError):  # validation lets no such answer in: never in practice
                log.error(
                    "an indicator reads a non-number in submission %s or the one it replaces",
                    submission.id,
                )
                outcome[c.index] = ItemResult(
                    id=submission.id,
                    status="rejected",
                    errors=translate_errors(
                        language, [FieldError("", "storage_error", STORAGE_ERROR)]
                    ),
                )
                continue
        if c.household_state:
            previous = counted_from.get(household.id)
            if previous is not None and previous > counted_at:
                counted_at = previous
            counted_from[household.id] = counted_at
            moved[household.id] = submission.id
            # What it counts, and what the state it replaces counted (read above, or
            # accepted earlier in this batch), go to the counters' log with the rows.
            tally.accepted(
                household_id=household.id,
                ward_id=household.ward_id,
                province_id=household.province_id,
                created_at=household.created_at,
                counted_at=counted_at,
                measured=measured,
                replaced=replaced_measured,
            )
        else:
            moved_campaigns[(household.id, submission.survey_id)] = submission.id
        rows.append(
            q.NewRow(
                submission.id,
                household.id,
                submission.survey_id,
                submission.survey_version,
                household.province_id,
                household.ward_id,
                submission.collected_at,
                counted_at,
                submission.consent.notice_version,
                submission.supersedes,
                submission.answers,
                submission.members,
                c.content_hash,
            )
        )
        seen[submission.id] = c.content_hash
        heads[chain(c)] = submission.id
        result(c, "accepted")

    # One statement stores the rows, moves the heads, writes the events and grows the
    # counters' log: a card never needs a scan, and no shared row is updated.
    if rows:
        stored = await q.store(
            conn, rows, principal.user_id, moved, moved_campaigns, tally.rows(), events
        )
        if stored != len(rows):
            raise _Raced()
    return outcome


async def ingest_one(
    conn: asyncpg.Connection,
    cache: SurveyCache,
    catalog: Catalog,
    principal: Principal,
    raw: msgspec.Raw,
    language: str,
    *,
    events: bool = True,
    wake: Callable[[], None] | None = None,
) -> ItemResult:
    """A single submission (its JSON text): the result a one-item push gives, committed when
    this returns. A household's state is decided and stored by one statement (one round trip
    for a first visit; an edit first reads the state it replaces, which never changes).
    Anything else (a campaign survey, an item with errors, a rare race) takes :func:`ingest`,
    so every rule has one home."""

    async def as_a_batch() -> ItemResult:
        (result,) = await ingest(
            conn, cache, catalog, principal, [raw], language, events=events, wake=wake
        )
        return result

    try:
        submission = decode_item(raw, SubmissionAsSent)
    except msgspec.ValidationError:
        return await as_a_batch()
    key = (submission.survey_id, submission.survey_version)
    version = (await cache.get(conn, {key})).get(key)
    survey = await cache.survey(conn, submission.survey_id)
    if (
        version is None
        or survey is None
        or not survey.household_state
        or not _keys_known(submission, version)
        # Errors come in the batch's order, where a closed survey (read afresh) is first.
        or _precheck(principal, submission, version, survey, datetime.now(UTC))
    ):
        return await as_a_batch()
    try:
        measured = catalog.measure(
            submission.household_id,
            submission.collected_at,
            submission.answers,
            [(m.member_id, m.answers) for m in submission.members],
        )
    except NotANumber:
        return await as_a_batch()
    digest = content_hash(submission)
    household_key = catalog.keys.of(str(submission.household_id))
    for _attempt in range(3):
        counted_at = submission.collected_at
        replaced: list[Measured] | None = None
        read = True
        if submission.supersedes is not None:
            old = await q.replaced_submission(conn, submission.supersedes, submission.household_id)
            read = old is not None
            if old is not None:
                counted_at = max(counted_at, old.counted_at)
                try:
                    replaced = catalog.measure(
                        submission.household_id,
                        old.collected_at,
                        old.answers or {},
                        [(m["memberId"], m["answers"]) for m in old.members or []],
                    )
                except NotANumber:
                    return await as_a_batch()
        month = month_of(counted_at)
        change: dict[str, list[int]] = {code: list(cell) for code, *cell in measured}
        for code, *cell in replaced or []:
            change[code] = [a - b for a, b in zip(change[code], cell, strict=True)]
        if submission.supersedes is None:  # a first visit: the household is surveyed
            change[COVERAGE] = [1, 0, household_key, 0]
        log: list[q.OneLogRow] = [
            (month, code, cell[0], cell[1], cell[2], cell[3])
            for code, cell in change.items()
            if any(cell)
        ]
        found = await q.store_one(
            conn,
            q.OneRow(
                id=submission.id,
                household_id=submission.household_id,
                survey_id=submission.survey_id,
                survey_version=submission.survey_version,
                collected_at=submission.collected_at,
                counted_at=counted_at,
                submitted_by=principal.user_id,
                notice_version=submission.consent.notice_version,
                supersedes=submission.supersedes,
                answers=submission.answers,
                members=submission.members,
                content_hash=digest,
            ),
            ward_scope=None if principal.role == "resident" else principal.area_id,
            household_scope=principal.household_id if principal.role == "resident" else None,
            replaced_read=read,
            log=log,
            household_key=household_key,
            events=events,
        )
        if found.status in ("retry", "raced"):
            continue
        if found.status == "accepted" and events and wake is not None:
            wake()
        return _one_result(submission.id, found, language)
    return await as_a_batch()


_ONE_ERRORS: dict[str, tuple[ItemStatus, FieldError]] = {
    "content_differs": ("conflict", FieldError("id", "content_differs", CONTENT_DIFFERS)),
    "not_head": ("conflict", FieldError("supersedes", "not_head", NOT_HEAD)),
    "stale_supersedes": (
        "conflict",
        FieldError("supersedes", "stale_supersedes", STALE_SUPERSEDES),
    ),
    "household_not_found": (
        "rejected",
        FieldError("householdId", "household_not_found", HOUSEHOLD_NOT_FOUND),
    ),
    "survey_closed": ("rejected", FieldError("surveyId", "survey_closed", SURVEY_CLOSED)),
}


def _one_result(submission_id: uuid.UUID, found: q.OneStored, language: str) -> ItemResult:
    """The statement's decision as a batch's result (the same fields, the same errors)."""
    if found.status == "accepted":
        if (changed := stats.touched.get()) is not None and found.province_id is not None:
            changed.add(found.province_id)
        return ItemResult(id=submission_id, status="accepted", current_submission_id=submission_id)
    if found.status == "duplicate":
        return ItemResult(
            id=submission_id, status="duplicate", current_submission_id=found.current_submission_id
        )
    status, error = _ONE_ERRORS[found.status]
    return ItemResult(
        id=submission_id,
        status=status,
        errors=translate_errors(language, [error]),
        current_submission_id=found.current_submission_id if status == "conflict" else None,
    )
