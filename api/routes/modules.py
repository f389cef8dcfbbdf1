"""Learning modules: reading them (localized, cacheable), quiz attempts and lesson progress,
drafts and publishing for admins and provinces, learning statistics, recommendations."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.security.jwt import Token

from api.auth import Principal, Role, requires_role
from api.errors import Conflict, FieldError, NotFound, ValidationFailed, problems
from api.i18n import N_, negotiate
from api.learning import check_definition, record_attempt, record_progress, summarize
from api.pagination import decode_cursor, encode_cursor
from api.params import AreaCode, Cursor, IfNoneMatch, Limit
from api.queries import audit
from api.queries import households as hq
from api.queries import modules as q
from api.queries.areas import get_area
from api.recommend import rank
from api.routes.households import HouseholdNotFound, household_visible
from api.scope import covers
from api.stats.cards import learning_in
from api.stats.places import sees_exact
from schemas.base import Page
from schemas.modules import (
    AttemptResult,
    Audience,
    LearningStats,
    Module,
    ModuleDefinition,
    ModuleDraft,
    ModulePublished,
    ModuleSummary,
    NewAttempt,
    NewModule,
    Progress,
    ProgressUpdate,
    Recommendation,
    Recommendations,
)

AUTHORS: tuple[Role, ...] = ("admin", "province_official")
LEARNERS: tuple[Role, ...] = ("team_member", "ward_official", "resident")
STATS_READERS: tuple[Role, ...] = ("admin", "province_official", "ward_official", "team_member")

Competence = Annotated[
    str | None,
    Parameter(
        pattern=r"^[1-6](\.[1-9])?$",
        max_length=3,
        description='A competence component ("2.3") or a whole domain ("2").',
    ),
]


class ModuleNotFound(NotFound):
    code = "module_not_found"
    default_detail = N_("No published learning module with this id.")


class ModuleCursor(msgspec.Struct, array_like=True, frozen=True):
    code: str


def module_etag(module_id: uuid.UUID, version: int, language: str) -> str:
    # Versions are immutable: the id, the number and the language identify the content.
    return f'"{module_id}.{version}.{language}"'


def _raise_errors(errors: list[FieldError]) -> None:
    if any(error.code == "household_not_found" for error in errors):
        raise HouseholdNotFound()
    raise ValidationFailed(errors)


class ModuleRoutes(Controller):
    path = "/modules"
    tags = ["learning"]

    @get("/", responses=problems(401))
    async def list_modules(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        audience: FromQuery[Audience | None] = None,
        competence: FromQuery[Competence] = None,
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[Limit] = 50,
    ) -> Page[ModuleSummary]:
        """Published modules (their latest version) in code order, in the caller's language."""
        language = negotiate(request.headers.get("accept-language"))
        after = decode_cursor(cursor, ModuleCursor)
        keys = await q.list_modules(
            conn,
            audience=audience,
            competence=competence,
            after=after.code if after else None,
            limit=limit + 1,
        )
        records = await state.modules.get(conn, set(keys))
        items = [summarize(records[key], language) for key in keys[:limit] if key in records]
        more = len(keys) > limit
        return Page(
            items=items,
            next_cursor=encode_cursor((items[-1].code,)) if more and items else None,
        )

    @get(
        "/{module_id:uuid}",
        responses={
            304: ResponseSpec(None, description="Not modified (If-None-Match matched)"),
            **problems(401, 404),
        },
    )
    async def get_module(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        module_id: FromPath[uuid.UUID],
        if_none_match: IfNoneMatch = None,
    ) -> Response[Module | None]:
        """The latest published version with its lessons and quiz, in the caller's language
        (Accept-Language, Vietnamese by default). The correct answers are never included:
        attempts are scored by the server. Answers 304 to a matching ETag."""
        language = negotiate(request.headers.get("accept-language"))
        version = await q.latest_version(conn, module_id)
        if version is None:
            raise ModuleNotFound()
        etag = module_etag(module_id, version, language)
        headers = {
            "ETag": etag,
            "Cache-Control": "private, no-cache",  # revalidate: a new version may appear
            "Vary": "Accept-Language",
            "Content-Language": language,
        }
        if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
            return Response(None, status_code=304, headers=headers)
        module = await state.modules.module(conn, module_id, version, language)
        if module is None:
            raise ModuleNotFound()
        return Response(module, headers=headers)

    @post(
        "/{module_id:uuid}/attempts",
        guards=[requires_role(*LEARNERS)],
        responses={
            200: ResponseSpec(AttemptResult, description="Already stored (a retry): the result"),
            **problems(401, 403, 404, 409),
        },
    )
    async def create_module_attempt(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        module_id: FromPath[uuid.UUID],
        data: JSONBody[NewAttempt],
    ) -> Response[AttemptResult]:
        """Score a quiz attempt on the server and record it: ``score`` is the fraction of
        questions answered exactly right (a multiple choice needs every correct choice and no
        other). Retrying with the same ``attemptId`` and content returns the same result (200);
        other content under the same id is a 409."""
        language = negotiate(request.headers.get("accept-language"))
        outcome = await record_attempt(conn, state.modules, request.user, module_id, data, language)
        if outcome.status == "not_found":
            raise ModuleNotFound()
        if outcome.status == "conflict":
            raise Conflict(
                N_("An attempt with this id was stored with different content."),
                code="content_differs",
            )
        if outcome.result is None:
            _raise_errors(outcome.errors or [])
        assert outcome.result is not None
        return Response(outcome.result, status_code=201 if outcome.status == "accepted" else 200)

    @put(
        "/{module_id:uuid}/progress",
        guards=[requires_role(*LEARNERS)],
        responses=problems(401, 403, 404),
    )
    async def save_module_progress(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        module_id: FromPath[uuid.UUID],
        data: JSONBody[ProgressUpdate],
    ) -> Progress:
        """Mark lessons completed (idempotent: completion accumulates, repeating changes
        nothing) and return the learner's progress in the module."""
        outcome = await record_progress(conn, state.modules, request.user, module_id, data)
        if outcome.status == "not_found":
            raise ModuleNotFound()
        if outcome.progress is None:
            _raise_errors(outcome.errors or [])
        assert outcome.progress is not None
        return outcome.progress

    @post("/", guards=[requires_role(*AUTHORS)], responses=problems(401, 403, 409))
    async def create_module(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewModule],
    ) -> ModuleDraft:
        """Create a module whose first draft is ``definition`` (publish it to make it visible)."""
        if errors := check_definition(data.definition):
            raise ValidationFailed(
                [msgspec.structs.replace(e, field=f"definition.{e.field}") for e in errors]
            )
        module_id = data.id or uuid.uuid4()
        async with conn.transaction():
            if not await q.create_module(
                conn, module_id, data.code, data.definition, request.user.user_id
            ):
                raise Conflict(N_("A module with this id or code already exists."))
            await audit.record(
                conn,
                "module_created",
                "learning_module",
                module_id,
                actor_id=request.user.user_id,
                detail={"code": data.code},
            )
        return ModuleDraft(
            id=module_id, code=data.code, definition=data.definition, from_version=None
        )

    @get(
        "/{module_id:uuid}/draft",
        guards=[requires_role(*AUTHORS)],
        responses=problems(401, 403, 404),
    )
    async def get_module_draft(
        self, conn: NamedDependency[asyncpg.Connection], module_id: FromPath[uuid.UUID]
    ) -> ModuleDraft:
        """The draft in both languages with the correct answers; without a draft, a copy of
        the latest version to start one from (``fromVersion``)."""
        found = await q.get_draft(conn, module_id)
        if found is None:
            raise NotFound(N_("No learning module with this id."), code="module_not_found")
        code, definition, from_version = found
        return ModuleDraft(
            id=module_id, code=code, definition=definition, from_version=from_version
        )

    @put(
        "/{module_id:uuid}/draft",
        guards=[requires_role(*AUTHORS)],
        responses=problems(401, 403, 404),
    )
    async def save_module_draft(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        module_id: FromPath[uuid.UUID],
        data: JSONBody[ModuleDefinition],
    ) -> ModuleDefinition:
        """Replace the draft (the next version); published versions are untouched."""
        if errors := check_definition(data):
            raise ValidationFailed(errors)
        async with conn.transaction():
            if await q.lock_module(conn, module_id) is None:
                raise NotFound(N_("No learning module with this id."), code="module_not_found")
            await q.save_draft(conn, module_id, data)
            await audit.record(
                conn,
                "module_draft_saved",
                "learning_module",
                module_id,
                actor_id=request.user.user_id,
            )
        return data

    @post(
        "/{module_id:uuid}/publish",
        guards=[requires_role(*AUTHORS)],
        responses=problems(401, 403, 404, 409),
    )
    async def publish_module(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        module_id: FromPath[uuid.UUID],
    ) -> ModulePublished:
        """Freeze the draft as the next immutable version; learners and offline clients get
        it from now on (earlier versions stay as they were, for scoring their attempts)."""
        async with conn.transaction():
            module = await q.lock_module(conn, module_id)
            if module is None:
                raise NotFound(N_("No learning module with this id."), code="module_not_found")
            if module["draft"] is None:
                raise Conflict(N_("There is no draft to publish."), code="no_draft")
            version = await q.publish_draft(conn, module_id, request.user.user_id)
            await audit.record(
                conn,
                "module_published",
                "learning_module",
                module_id,
                actor_id=request.user.user_id,
                detail={"version": version},
            )
        return ModulePublished(module_id=module_id, version=version)


@get(
    "/stats/areas/{code:str}/learning",
    guards=[requires_role(*STATS_READERS)],
    tags=["learning"],
    responses=problems(401, 403, 404),
)
async def get_area_learning(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    code: FromPath[AreaCode],
) -> LearningStats:
    """Learning in an area (a ward, or a province as the sum of its wards): per module the
    learners who attempted its quiz, completed every lesson and passed; per competence
    component, the sums over the modules tagged with it. Officials see their own area; small
    numbers are hidden except in a ward official's or team member's own ward."""
    area = await get_area(conn, code)
    if area is None or not covers(request.user, area):
        raise NotFound(N_("No area with this code in your scope."), code="area_not_found")
    ward_ids = [area.id] if area.level == "ward" else await q.ward_ids_of(conn, area.id)
    shown = await learning_in(
        conn,
        ward_ids,
        exact=sees_exact(request.user, area.id),
        language=negotiate(request.headers.get("accept-language")),
        versions=state.modules.get,
    )
    return LearningStats(area=area.public(), modules=shown.modules, competences=shown.competences)


@get(
    "/households/{household_id:uuid}/recommended-modules",
    tags=["learning"],
    responses=problems(401, 404),
)
async def list_recommended_modules(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    household_id: FromPath[uuid.UUID],
) -> Recommendations:
    """Published modules for residents, ranked by the household's gaps in its current
    survey answers (with the reason, in the caller's language); without answers yet, a
    default order."""
    household = await hq.get_household(conn, household_id)
    if household is None or not household_visible(request.user, household):
        raise HouseholdNotFound()
    language = negotiate(request.headers.get("accept-language"))
    (household_state,) = await hq.household_states(conn, [household_id])
    current = household_state.current
    records = await state.modules.get(conn, set(await q.latest_versions(conn)))
    by_code = {r.code: r for r in records.values() if "resident" in r.definition.audience}
    ranked = rank(
        list(by_code),
        None
        if current is None
        else (
            current.answers,
            [msgspec.to_builtins(m) for m in current.members],
            current.collected_at.year,
        ),
        language,
    )
    return Recommendations(
        household_id=household_id,
        based_on_submission_id=None if current is None else current.id,
        items=[
            Recommendation(
                rank=i + 1,
                module=summarize(by_code[r.code], language),
                reason=r.reason,
                weight=r.weight,
            )
            for i, r in enumerate(ranked)
        ],
    )
