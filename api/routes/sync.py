"""Offline sync (pull changes, push batches) and single submissions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeVar

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.dto import AbstractDTO, DTOFieldDefinition
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Reference, Schema
from litestar.params import Body, FromPath, FromQuery, JSONBody, Parameter
from litestar.security.jwt import Token
from litestar.typing import FieldDefinition

from api.auth import Principal, Role, requires_role
from api.db import POOL_WAIT
from api.errors import (
    Busy,
    Conflict,
    FieldError,
    NotFound,
    ValidationFailed,
    field_error,
    invalid,
    problems,
)
from api.fieldwork import assignments as work
from api.fieldwork import review
from api.fieldwork.visit_plan import pull_plan
from api.i18n import N_, negotiate
from api.ingest import ingest, ingest_one
from api.learning import push_attempts, push_progress
from api.pagination import bad_cursor, decode_cursor, encode_cursor
from api.params import Cursor
from api.queries import households as hq
from api.queries import sync as q
from api.routes.households import household_visible
from schemas.households import (
    PUSH_LIMIT,
    ItemResult,
    NewSubmission,
    PushItems,
    PushResults,
    Submission,
    SyncPull,
    SyncPush,
)

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator
    from litestar.dto._backend import DTOBackend

T = TypeVar("T")
COLLECTORS: tuple[Role, ...] = ("team_member", "ward_official", "resident")
PullLimit = Annotated[int, Parameter(ge=1, le=1000, description="Changes per page (1–1000).")]


class PullCursor(NamedTuple):
    """Where a client is in the change stream: [low, high) and the last change it got.

    ``assigned``: a team member's first pull starts with their assigned households (in id
    order: "" before the first, else the last one sent), then reads the stream from 0."""

    low: int
    high: int | None = None
    after: q.Change | None = None
    assigned: str | None = None


@get("/sync/pull", guards=[requires_role(*COLLECTORS)], tags=["sync"], responses=problems(401, 403))
async def pull(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    cursor: FromQuery[Cursor] = None,
    limit: FromQuery[PullLimit] = 500,
) -> SyncPull:
    """What the caller needs offline that changed since ``cursor``: published survey versions,
    published learning-module versions (in the caller's language, without the answers), the
    households of their ward with their current answers, deleted households, and the
    learning progress of the ward's learners (a resident: their household's).

    Call again with ``cursor`` = the returned ``nextCursor`` while ``more`` is true; keep the
    last ``nextCursor`` for the next sync. Unlike a list's, a change feed's ``nextCursor`` is
    never null: there is always a "from here" to come back to. The cursor is a server
    sequence (transaction ids), never a clock.

    A team member's last page (``more: false``) also carries their visit plan as of now,
    ``visitPlan``: the first 200 rows of ``GET /areas/{wardCode}/visit-plan`` (households
    to visit next and why, in the caller's language; ``nextCursor`` continues it online),
    and their ``assignments`` (``PUT /teams/{id}/assignments``). A team member's first pull
    (no ``cursor``) begins with pages of their assigned households' states; the whole ward
    follows (including those households again), as it stays readable to the ward's teams.
    The last page also lists the caller's submissions a ward official sent back for a fix,
    ``fixRequests``, until an edit supersedes them.
    """
    caller = request.user
    if caller.area_id is None:
        raise invalid("role", "not_allowed", N_("Only ward-level accounts sync households."))
    position = decode_cursor(cursor, PullCursor) or PullCursor(
        low=0, assigned="" if caller.role == "team_member" else None
    )
    if position.assigned is not None:
        try:
            after = uuid.UUID(position.assigned) if position.assigned else None
        except ValueError:
            raise bad_cursor() from None
        assigned = await work.assigned_households(
            conn, caller.user_id, caller.area_id, after, limit + 1
        )
        if assigned:
            # Their own households first; the stream that follows sends them again.
            page = assigned[:limit]
            return SyncPull(
                next_cursor=encode_cursor(
                    PullCursor(0, None, None, str(page[-1]))
                    if len(assigned) > limit
                    else PullCursor(0)
                ),
                more=True,
                survey_versions=[],
                households=await hq.household_states(conn, page),
                deleted_households=[],
            )
        position = PullCursor(low=0)
    high = position.high if position.high is not None else await q.horizon(conn)
    found = await q.changes(
        conn,
        ward_id=caller.area_id,
        province_id=caller.province_id,
        household_id=caller.household_id if caller.role == "resident" else None,
        low=position.low,
        high=high,
        after=position.after,
        limit=limit + 1,
    )
    more = len(found) > limit
    found = found[:limit]
    household_ids = [uuid.UUID(c.key) for c in found if c.kind == q.HOUSEHOLD]
    deleted = [uuid.UUID(c.key) for c in found if c.kind == q.DELETION]
    progress_keys = [
        (uuid.UUID(module_id), uuid.UUID(learner_id))
        for module_id, learner_id in (c.key.split("/") for c in found if c.kind == q.PROGRESS)
    ]
    version_keys = set()
    for change in found:
        if change.kind == q.SURVEY_VERSION:
            survey_id, version = change.key.split("/")
            version_keys.add((uuid.UUID(survey_id), int(version)))
    versions = await state.surveys.get(conn, version_keys)
    language = negotiate(request.headers.get("accept-language"))
    modules = []
    for change in found:
        if change.kind == q.MODULE_VERSION:
            module_id, module_version = change.key.split("/")
            module = await state.modules.module(
                conn, uuid.UUID(module_id), int(module_version), language
            )
            if module is not None:
                modules.append(module)
    following = PullCursor(position.low, high, found[-1]) if more else PullCursor(high)
    return SyncPull(
        next_cursor=encode_cursor(following),
        more=more,
        survey_versions=[
            versions[key].public() for key in sorted(version_keys, key=str) if key in versions
        ],
        households=await hq.household_states(conn, household_ids),
        deleted_households=deleted,
        modules=modules,
        progress=await q.learner_progress(conn, progress_keys),
        visit_plan=None
        if more
        else await pull_plan(conn, await state.indicators.get(conn), caller, language),
        assignments=None
        if more or caller.role != "team_member"
        else await work.member_assignments(conn, caller.user_id),
        fix_requests=[]
        if more or caller.role == "resident"
        else await review.fix_requests(conn, caller.user_id, caller.area_id),
    )


class _Undecoded(AbstractDTO[T]):
    """A body the handler decodes itself, from its bytes, while the document shows ``T``.

    Litestar decodes a body into Python objects and then converts them into the handler's
    type; a DTO is its hook for decoding from the bytes instead (litestar/dto/base_dto.py).
    Here it only decodes the envelope: ingest decodes each item once, into its type, with
    its own result."""

    @classmethod
    def generate_field_definitions(
        cls, model_type: type[Any]
    ) -> Generator[DTOFieldDefinition, None, None]:
        yield from ()  # no transfer model: nothing is copied field by field

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(
        cls,
        field_definition: FieldDefinition,
        handler_id: str,
        backend_cls: type[DTOBackend] | None = None,
    ) -> None:
        pass  # decode_bytes below needs no backend

    @classmethod
    def create_openapi_schema(
        cls, field_definition: FieldDefinition, handler_id: str, schema_creator: SchemaCreator
    ) -> Reference | Schema:
        documented = FieldDefinition.from_annotation(
            cls.model_type, kwarg_definition=field_definition.kwarg_definition
        )
        return schema_creator.for_field_definition(documented)


_PUSH = msgspec.json.Decoder(PushItems)


def _utf8(value: bytes) -> None:
    """JSON is UTF-8 whatever the label says (UnicodeDecodeError: a 400 malformed_json). The
    items' texts are only skipped until ingest decodes them, so they are checked here."""
    value.decode()


class PushBody(_Undecoded[SyncPush]):
    def decode_bytes(self, value: bytes) -> PushItems:
        _utf8(value)
        try:
            return _PUSH.decode(value)
        except msgspec.ValidationError as exc:  # the envelope (a list too long, not a list)
            raise ValidationFailed([field_error(str(exc))]) from exc


class SubmissionBody(_Undecoded[NewSubmission]):
    def decode_bytes(self, value: bytes) -> msgspec.Raw:
        _utf8(value)
        return msgspec.json.decode(value, type=msgspec.Raw)  # well-formed JSON, kept as text


def _lenient_error(raw: msgspec.Raw) -> FieldError | None:
    """What a body that is not even a NewSubmission read leniently ("1" as 1) is told, as
    before ingest decoded it: its first error read that way. Only a refused item pays."""
    try:
        msgspec.convert(msgspec.json.decode(raw), NewSubmission, strict=False)
    except msgspec.ValidationError as exc:
        return field_error(str(exc))
    return None


PUSH_BODY = Body(
    description=(
        f"Up to {PUSH_LIMIT} items in all (submissions, lesson progress, quiz attempts), "
        "each validated on its own."
    ),
    schema_extra={
        "properties": {
            "submissions": {
                "type": "array",
                "maxItems": PUSH_LIMIT,
                "items": {"$ref": "#/components/schemas/NewSubmission"},
            },
            "progress": {
                "type": "array",
                "maxItems": PUSH_LIMIT,
                "items": {"$ref": "#/components/schemas/PushProgress"},
            },
            "attempts": {
                "type": "array",
                "maxItems": PUSH_LIMIT,
                "items": {"$ref": "#/components/schemas/PushAttempt"},
            },
        }
    },
)


@post(
    "/sync/push",
    status_code=200,
    dto=PushBody,
    return_dto=None,
    guards=[requires_role(*COLLECTORS)],
    tags=["sync"],
    responses=problems(401, 403, 413),
)
async def push(
    request: Request[Principal, Token, Any],
    state: State,
    data: Annotated[PushItems, PUSH_BODY],
) -> PushResults:
    """Store a batch collected offline. Each item gets its own result: ``accepted``,
    ``duplicate`` (already stored, e.g. a retry), ``conflict`` (same id, other content; or
    not superseding the current head) or ``rejected`` (with field errors). Accepted items are
    committed before the answer; retrying a batch is always safe.

    Lesson progress and quiz attempts recorded offline come in the same push; their results
    follow the submissions' (progress, then attempts; an attempt's result has its score)."""
    count = len(data.submissions) + len(data.progress) + len(data.attempts)
    if count > PUSH_LIMIT:
        raise invalid(
            "", "max_items", N_("Send at most %(limit)s items in one push."), limit=PUSH_LIMIT
        )
    language = negotiate(request.headers.get("accept-language"))
    # A slot first, then a connection: pushes beyond the slots wait without holding one.
    async with state.push_slots.slot(), state.pool.acquire(timeout=POOL_WAIT) as conn:
        catalog = await state.indicators.get(conn)
        results = await ingest(
            conn,
            state.surveys,
            catalog,
            request.user,
            data.submissions,
            language,
            events=state.settings.outbox,
            wake=state.outbox_waker.poke,
        )
        results += await push_progress(conn, state.modules, request.user, data.progress, language)
        results += await push_attempts(conn, state.modules, request.user, data.attempts, language)
    return PushResults(results=results)


class PushSlots:
    """How many pushes this process works on at once. A push is tens of milliseconds of
    Python on the event loop (decoding, validating, counting a batch) between its queries;
    when phones sync faster than the process keeps up, the excess waits here, before taking
    a pool connection, instead of queueing on the loop ahead of every reader's request
    (docs/benchmarks.md, "Cards while pushes run"). A push that waits longer than
    ``wait`` seconds is a 503 ``busy`` with ``Retry-After``: nothing of it was stored, and
    sending it again is safe."""

    def __init__(self, limit: int, wait: float = POOL_WAIT) -> None:
        self.limit, self.wait = limit, wait
        self._free = asyncio.Semaphore(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._free.acquire(), self.wait)
        except TimeoutError:
            raise Busy(headers={"Retry-After": BUSY_RETRY_AFTER}) from None
        try:
            yield
        finally:
            self._free.release()


BUSY_RETRY_AFTER = "5"  # seconds


class SubmissionNotFound(NotFound):
    code = "submission_not_found"
    default_detail = N_("No submission with this id in your area.")


@post(
    "/submissions",
    dto=SubmissionBody,
    return_dto=None,
    guards=[requires_role(*COLLECTORS)],
    tags=["sync"],
    responses={
        200: ResponseSpec(
            ItemResult,
            description="Already stored (a retry): nothing changed",
            generate_examples=False,
        ),
        **problems(401, 403, 404, 409),
    },
)
async def create_submission(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    data: JSONBody[msgspec.Raw],
) -> Response[ItemResult]:
    """Store one submission (residents, online use); the same rules as a push."""
    language = negotiate(request.headers.get("accept-language"))
    catalog = await state.indicators.get(conn)
    # Decoded by ingest exactly as a push item is: strictly ("1" is not a version number).
    result = await ingest_one(
        conn,
        state.surveys,
        catalog,
        request.user,
        data,
        language,
        events=state.settings.outbox,
        wake=state.outbox_waker.poke,
    )
    if result.status == "rejected" and (error := _lenient_error(data)):
        raise ValidationFailed([error])
    if result.status == "accepted":
        return Response(result, status_code=201)
    if result.status == "duplicate":
        return Response(result, status_code=200)
    errors = result.errors or []
    if result.status == "conflict":
        raise Conflict(
            N_("This submission conflicts with what is stored."),
            code=errors[0].code if errors else "conflict",
        )
    if any(error.code == "survey_closed" for error in errors):
        raise Conflict(
            N_("This survey is closed: it takes no new submissions."), code="survey_closed"
        )
    if any(error.code == "household_not_found" for error in errors):
        raise NotFound(N_("No household with this id in your area."), code="household_not_found")
    # Already translated: looking them up again in the catalog leaves them as they are.
    raise ValidationFailed([FieldError(e.field, e.code, e.message) for e in errors])


@get("/submissions/{submission_id:uuid}", tags=["sync"], responses=problems(401, 404))
async def get_submission(
    request: Request[Principal, Token, Any],
    conn: NamedDependency[asyncpg.Connection],
    submission_id: FromPath[uuid.UUID],
) -> Submission:
    found = await hq.get_submission(conn, submission_id)
    if found is None:
        raise SubmissionNotFound()
    submission, _ = found
    household = await hq.get_household(conn, submission.household_id)
    if household is None or not household_visible(request.user, household):
        raise SubmissionNotFound()
    return submission
