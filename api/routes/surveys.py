"""Surveys: published versions for the app; drafts and publishing for admins and provinces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, post, put
from litestar.datastructures import State, UploadFile
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.security.jwt import Token

from api.answers import check_definition
from api.auth import Principal, Role, requires_role
from api.authoring import compat
from api.authoring.xlsform import InvalidWorkbook, definition_problems, import_xlsform
from api.errors import (
    Conflict,
    Forbidden,
    NotFound,
    ValidationFailed,
    invalid,
    problems,
    translate_errors,
)
from api.i18n import N_, negotiate
from api.openapi import documented_header
from api.params import IfNoneMatch
from api.queries import audit
from api.queries import surveys as q
from api.queries.submissions import survey_states
from schemas.surveys import (
    ImportedSurvey,
    LeftOutRow,
    NewSurvey,
    Published,
    SurveyDefinition,
    SurveySummary,
    SurveyVersion,
)

XLSFORM_LIMIT = 5_000_000  # bytes: a 1,000-question form with its choices is far smaller


@dataclass
class XLSFormUpload:
    file: UploadFile  # the .xlsx workbook (survey, choices and settings sheets)


class UnsupportedRows(ValidationFailed):
    code = "unsupported_rows"
    default_detail = N_(
        "Nothing was created: some rows use what this server does not support (each is "
        "listed in errors). Change them, or import again with partial=true to leave them out."
    )


AUTHORS: tuple[Role, ...] = ("admin", "province_official")


class SurveyNotFound(NotFound):
    code = "survey_not_found"
    default_detail = N_("No survey or survey version with this id.")


class NationalSurvey(Forbidden):
    code = "national_survey"
    default_detail = N_("Only administrators change national surveys.")


def readable(principal: Principal, province_id: int | None) -> bool:
    """A national survey is everyone's; a province's is its officials' and its wards'."""
    return province_id is None or principal.role == "admin" or province_id == principal.province_id


async def lock_authored(
    conn: asyncpg.Connection, principal: Principal, survey_id: uuid.UUID
) -> dict[str, Any]:
    """The survey, locked, if the caller authors it: 404 out of scope, 403 a national one."""
    survey = await q.lock_survey(conn, survey_id)
    if survey is None or not readable(principal, survey["province_id"]):
        raise SurveyNotFound()
    if principal.role != "admin" and survey["province_id"] is None:
        raise NationalSurvey()
    return survey


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
        """Surveys with a published version (authors also see unpublished drafts): the
        national ones and the caller's province's (administrators: all)."""
        caller = request.user
        return await q.list_surveys(
            conn,
            with_drafts=caller.role in AUTHORS,
            province_id=caller.province_id,
            everywhere=caller.role == "admin",
        )

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
        request: Request[Principal, Token, Any],
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
        scope = (await survey_states(conn, [survey_id]))[survey_id]
        if not readable(request.user, scope.province_id):
            raise SurveyNotFound()
        return Response(record.public(), headers=headers)

    @post("/", guards=[requires_role(*AUTHORS)], responses=problems(401, 403, 409))
    async def create_survey(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewSurvey],
    ) -> SurveySummary:
        """Create a survey whose first draft is ``definition``: a province official's is
        their province's (its wards see it once published), an administrator's national."""
        if errors := check_definition(data.definition):
            raise ValidationFailed(
                [msgspec.structs.replace(e, field=f"definition.{e.field}") for e in errors]
            )
        survey_id = data.id or uuid.uuid4()
        async with conn.transaction():
            if not await q.create_survey(
                conn,
                survey_id,
                data.code,
                data.definition,
                request.user.user_id,
                None if request.user.role == "admin" else request.user.province_id,
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
            province_code=await q.province_code(conn, survey_id),
        )

    @post(
        "/import",
        guards=[requires_role(*AUTHORS)],
        responses=problems(400, 401, 403, 409),
    )
    async def import_survey(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        data: Annotated[XLSFormUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
        partial: FromQuery[bool] = False,
    ) -> ImportedSurvey:
        """Create a survey draft from an XLSForm (.xlsx, multipart field ``file``), read by
        pyxform. The survey's code is the form's ``form_id``; it is the caller's province's
        (an administrator's: national), like ``POST /surveys``.

        Supported: text, integer, decimal, date, note, select_one and select_multiple with
        the choices sheet (and ``choice_filter column=${key}``), calculate (+ - * div mod),
        begin/end group, one begin/end repeat (the member roster), required, relevant
        (comparisons with a number or text, and/or/not, selected()), constraint (. >= n,
        string-length(.), regex(., '…')), default, ``label``/``hint`` in Vietnamese (vi)
        and English (en), settings form_id, form_title, version, default_language.

        Any other row, column or expression is reported per row (400 ``unsupported_rows``:
        ``errors[].field`` is ``sheet[row].column``) and nothing is created, unless
        ``partial=true``: then the draft leaves them out and ``leftOut`` lists them."""
        language = negotiate(request.headers.get("accept-language"))
        workbook = await data.file.read(XLSFORM_LIMIT + 1)
        if len(workbook) > XLSFORM_LIMIT:
            raise invalid(
                "file",
                "max_length",
                N_("The file is larger than %(limit)s bytes."),
                limit=XLSFORM_LIMIT,
            )
        try:
            # pyxform is CPU work (a few hundred ms for a long form): off the event loop.
            imported = await anyio.to_thread.run_sync(import_xlsform, workbook)
        except InvalidWorkbook as exc:
            raise invalid(
                "file",
                "invalid_xlsform",
                N_("This file is not an XLSForm that can be read: %(reason)s"),
                reason=str(exc)[:300],
            ) from exc
        left_out = list(imported.problems)
        definition = imported.definition
        if definition is not None:
            left_out += definition_problems(imported, check_definition(definition))
        if left_out and (
            not partial or definition is None or len(left_out) > len(imported.problems)
        ):
            # Rows that refer to left-out rows cannot be left out in turn: refused as well.
            raise UnsupportedRows([row.error() for row in left_out])
        if definition is None:
            raise invalid("file", "no_questions", N_("The form has no question to import."))
        survey_id = uuid.uuid4()
        caller = request.user
        async with conn.transaction():
            if not await q.create_survey(
                conn,
                survey_id,
                imported.form_id,
                definition,
                caller.user_id,
                None if caller.role == "admin" else caller.province_id,
            ):
                raise Conflict(N_("A survey with this id or code already exists."))
            await audit.record(
                conn,
                "survey_imported",
                "survey",
                survey_id,
                actor_id=caller.user_id,
                detail={
                    "code": imported.form_id,
                    "formVersion": imported.version,
                    "leftOut": len(left_out),
                },
            )
        summary = await q.survey_summary(conn, survey_id)
        assert summary is not None  # created above
        messages = translate_errors(language, [row.error() for row in left_out])
        return ImportedSurvey(
            survey=summary,
            form_id=imported.form_id,
            form_version=imported.version,
            left_out=[
                LeftOutRow(sheet=row.sheet, row=row.row, column=row.column, message=m.message)
                for row, m in zip(left_out, messages, strict=True)
            ],
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
            await lock_authored(conn, request.user, survey_id)
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
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        survey_id: FromPath[uuid.UUID],
    ) -> Published:
        """Freeze the draft as the next immutable version; offline clients get it at pull.

        Refused (409, ``incompatible_draft``, one error per key) when the draft breaks what
        stored answers or the indicators rely on: a key changes kind or level, a choice that
        stored answers use disappears, a question becomes required without a ``default`` for
        re-visits, or a key an indicator rule reads changes or disappears. Labels, hints and
        new optional questions change freely."""
        async with conn.transaction():
            survey = await lock_authored(conn, request.user, survey_id)
            if survey["draft"] is None:
                raise Conflict(N_("There is no draft to publish."), code="no_draft")
            if survey["closed_at"] is not None:
                raise Conflict(N_("This survey is closed."), code="survey_closed")
            previous = await q.latest_definition(conn, survey_id)
            if previous is not None:
                draft = msgspec.convert(survey["draft"], SurveyDefinition)
                catalog = await state.indicators.get(conn) if survey["household_state"] else None
                found = compat.review(
                    previous, draft, catalog.indicators if catalog is not None else None
                )
                errors = found.errors
                if found.removed_choices:
                    used = await q.choices_in_use(conn, survey_id, found.removed_choices)
                    errors += compat.choice_errors(used, draft)
                if errors:
                    raise Conflict(
                        N_("The draft is not compatible with the published version."),
                        errors=errors,
                        code="incompatible_draft",
                    )
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

    @post(
        "/{survey_id:uuid}/close",
        status_code=200,
        guards=[requires_role(*AUTHORS)],
        responses=problems(401, 403, 404),
    )
    async def close_survey(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        survey_id: FromPath[uuid.UUID],
    ) -> SurveySummary:
        """Stop new submissions to this survey (pushed items get ``rejected`` with code
        ``survey_closed``; ``POST /submissions`` answers 409). Its versions and data stay.
        Closing a closed survey changes nothing."""
        async with conn.transaction():
            survey = await lock_authored(conn, request.user, survey_id)
            if survey["household_state"]:
                raise Conflict(
                    N_("The household survey the statistics read cannot be closed."),
                    code="household_state_survey",
                )
            if survey["closed_at"] is None:
                await q.close_survey(conn, survey_id, request.user.user_id)
                await audit.record(
                    conn, "survey_closed", "survey", survey_id, actor_id=request.user.user_id
                )
        found = await q.survey_summary(conn, survey_id)
        assert found is not None  # locked and present above
        return found
