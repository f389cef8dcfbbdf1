"""Surveys: published versions for the app; drafts and publishing for admins and provinces."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.security.jwt import Token

from api.answers import check_definition
from api.auth import Principal, Role, requires_role
from api.errors import Conflict, NotFound, ValidationFailed, problems
from api.i18n import N_
from api.openapi import documented_header
from api.params import IfNoneMatch
from api.queries import audit
from api.queries import surveys as q
from schemas.surveys import NewSurvey, Published, SurveyDefinition, SurveySummary, SurveyVersion

AUTHORS: tuple[Role, ...] = ("admin", "province_official")


class SurveyNotFound(NotFound):
    code = "survey_not_found"
    default_detail = N_("No survey or survey version with this id.")


VERSION_ETAG = documented_header(
    "ETag", "The version's validator: send it back in `If-None-Match` to get a 304."
)
VERSION_CACHE = documented_header(
    "Cache-Control", "`private, max-age=31536000, immutable`: a published version never changes."
)


def version_etag(survey_id: uuid.UUID, version: int) -> str:
    # Published versions are immutable, so the id and number identify the content.
    return f'"{survey_id}.{version}"'


class SurveyRoutes(Controller):
    path = "/surveys"
    tags = ["surveys"]

    @get("/", responses=problems(401))
    async def list_surveys(
        self, request: Request[Principal, Token, Any], conn: NamedDependency[asyncpg.Connection]
    ) -> list[SurveySummary]:
        """Surveys with a published version (authors also see unpublished drafts)."""
        return await q.list_surveys(conn, with_drafts=request.user.role in AUTHORS)

    @get(
        "/{survey_id:uuid}/versions/{version:int}",
        response_headers=[VERSION_ETAG, VERSION_CACHE],
        responses={
            304: ResponseSpec(
                None, description="Not modified (If-None-Match matched)", generate_examples=False
            ),
            **problems(401, 404),
        },
    )
    async def get_survey_version(
        self,
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        survey_id: FromPath[uuid.UUID],
        version: FromPath[int],
        if_none_match: IfNoneMatch = None,
    ) -> Response[SurveyVersion | None]:
        """One immutable published version (cacheable; answers 304 to a matching ETag)."""
        etag = version_etag(survey_id, version)
        headers = {"ETag": etag, "Cache-Control": "private, max-age=31536000, immutable"}
        if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
            return Response(None, status_code=304, headers=headers)
        if not 1 <= version <= 1_000_000:
            raise SurveyNotFound()
        found = await state.surveys.get(conn, {(survey_id, version)})
        record = found.get((survey_id, version))
        if record is None:
            raise SurveyNotFound()
        return Response(record.public(), headers=headers)

    @post("/", guards=[requires_role(*AUTHORS)], responses=problems(401, 403, 409))
    async def create_survey(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewSurvey],
    ) -> SurveySummary:
        """Create a survey whose first draft is ``definition``."""
        if errors := check_definition(data.definition):
            raise ValidationFailed(
                [msgspec.structs.replace(e, field=f"definition.{e.field}") for e in errors]
            )
        survey_id = data.id or uuid.uuid4()
        async with conn.transaction():
            if not await q.create_survey(
                conn, survey_id, data.code, data.definition, request.user.user_id
            ):
                raise Conflict(N_("A survey with this id or code already exists."))
            await audit.record(
                conn,
                "survey_created",
                "survey",
                survey_id,
                actor_id=request.user.user_id,
                detail={"code": data.code},
            )
        return SurveySummary(
            id=survey_id,
            code=data.code,
            title=data.definition.title,
            latest_version=None,
            has_draft=True,
        )

    @put(
        "/{survey_id:uuid}/draft",
        guards=[requires_role(*AUTHORS)],
        responses=problems(401, 403, 404),
    )
    async def save_survey_draft(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        survey_id: FromPath[uuid.UUID],
        data: JSONBody[SurveyDefinition],
    ) -> SurveyDefinition:
        """Replace the draft (the next version); published versions are untouched."""
        if errors := check_definition(data):
            raise ValidationFailed(errors)
        async with conn.transaction():
            if await q.lock_survey(conn, survey_id) is None:
                raise SurveyNotFound()
            await q.save_draft(conn, survey_id, data)
            await audit.record(
                conn, "survey_draft_saved", "survey", survey_id, actor_id=request.user.user_id
            )
        return data

    @post(
        "/{survey_id:uuid}/publish",
        guards=[requires_role(*AUTHORS)],
        responses=problems(401, 403, 404, 409),
    )
    async def publish_survey(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        survey_id: FromPath[uuid.UUID],
    ) -> Published:
        """Freeze the draft as the next immutable version; offline clients get it at pull."""
        async with conn.transaction():
            survey = await q.lock_survey(conn, survey_id)
            if survey is None:
                raise SurveyNotFound()
            if survey["draft"] is None:
                raise Conflict(N_("There is no draft to publish."), code="no_draft")
            version = await q.publish_draft(conn, survey_id, request.user.user_id)
            await audit.record(
                conn,
                "survey_published",
                "survey",
                survey_id,
                actor_id=request.user.user_id,
                detail={"version": version},
            )
        return Published(survey_id=survey_id, version=version)
