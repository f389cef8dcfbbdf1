"""Every error leaves the API here, once, as localized RFC 9457 problem+json.

Domain code raises :class:`AppError` subclasses carrying a machine ``code`` and untranslated
message ids; framework and driver exceptions are mapped by status. Titles, details and field
messages are translated into the caller's Accept-Language at the edge.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

import asyncpg
import msgspec
import msgspec.inspect
from litestar import Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from api.i18n import N_, negotiate, translate
from api.logs import request_id
from schemas.errors import FieldProblem, Problem

log = logging.getLogger("congdongso.errors")

PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, frozen=True):
    field: str
    code: str
    message: str  # an untranslated message id
    params: dict[str, object] | None = None


class AppError(Exception):
    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = N_("Bad request")
    default_detail: ClassVar[str] = N_("The request cannot be processed.")

    def __init__(
        self,
        detail: str | None = None,
        params: dict[str, object] | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail or self.default_detail)
        self.detail = detail or self.default_detail
        self.params = params
        self.errors = errors
        self.headers = headers
        self.instance_code = code or self.code


class ValidationFailed(AppError):
    code = "validation_failed"
    title = N_("Invalid input")
    default_detail = N_("Some fields are not valid.")

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        super().__init__(detail, errors=errors)


def invalid(field: str, code: str, message: str, **params: object) -> ValidationFailed:
    """One field's validation error, the common case."""
    return ValidationFailed([FieldError(field, code, message, params or None)])


class Unauthorized(AppError):
    status_code = 401
    code = "unauthorized"
    title = N_("Not signed in")
    default_detail = N_("Sign in to continue: the access token is missing, invalid or expired.")


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    title = N_("Not allowed")
    default_detail = N_("Your role does not allow this action.")


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    title = N_("Not found")
    default_detail = N_("Nothing was found at this address.")


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    title = N_("Conflict")
    default_detail = N_("The request conflicts with the current state.")


class Busy(AppError):
    """The server has more work of this kind than it takes at once: nothing was done, and
    the same request later will be (``Retry-After``)."""

    status_code = 503
    code = "busy"
    title = N_("Service unavailable")
    default_detail = N_(
        "The server is busy with other uploads: nothing of this one was stored. "
        "Send it again in a few seconds."
    )


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    title = N_("Too many attempts")
    default_detail = N_("Too many attempts. Try again later.")


# Framework exceptions, by status: (code, title, detail).
_BY_STATUS: dict[int, tuple[str, str, str]] = {
    400: ("bad_request", AppError.title, AppError.default_detail),
    401: (Unauthorized.code, Unauthorized.title, Unauthorized.default_detail),
    403: (Forbidden.code, Forbidden.title, Forbidden.default_detail),
    404: (NotFound.code, NotFound.title, NotFound.default_detail),
    405: (
        "method_not_allowed",
        N_("Method not allowed"),
        N_("This address does not accept this HTTP method."),
    ),
    406: ("not_acceptable", N_("Not acceptable"), N_("No acceptable representation exists.")),
    409: (Conflict.code, Conflict.title, Conflict.default_detail),
    413: (
        "body_too_large",
        N_("Request too large"),
        N_("The request body is larger than the server accepts."),
    ),
    415: (
        "unsupported_media_type",
        N_("Unsupported media type"),
        N_("Send the request body as application/json."),
    ),
    429: (TooManyRequests.code, TooManyRequests.title, TooManyRequests.default_detail),
    500: (
        "internal_error",
        N_("Internal error"),
        N_("Something went wrong on our side. The error has been logged."),
    ),
    503: (
        "unavailable",
        N_("Service unavailable"),
        N_("The service is temporarily unavailable. Try again shortly."),
    ),
}

# msgspec / Litestar validation messages → (field code, message id).
_TYPE_NAMES = {
    "str": N_("text"),
    "int": N_("an integer"),
    "float": N_("a number"),
    "bool": N_("true or false"),
    "object": N_("an object"),
    "array": N_("a list"),
    "null": N_("null"),
    "uuid": N_("a UUID"),
    "datetime": N_("a date and time"),
    "date": N_("a date"),
}
_RULES: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"Object missing required field `(?P<name>[^`]+)`"),
        "required",
        N_("This field is required."),
    ),
    (
        re.compile(r"Expected `(?P<expected>\w+)`(?: \| `\w+`)*, got `(?P<got>\w+)`"),
        "type",
        N_("Expected %(expected)s."),
    ),
    (
        re.compile(r"Expected `str` of length >= (?P<limit>\d+)"),
        "min_length",
        N_("Must be at least %(limit)s characters long."),
    ),
    (
        re.compile(r"Expected `str` of length <= (?P<limit>\d+)"),
        "max_length",
        N_("Must be at most %(limit)s characters long."),
    ),
    (
        re.compile(r"Expected `(?:array|object)` of length >= (?P<limit>\d+)"),
        "min_items",
        N_("Must contain at least %(limit)s items."),
    ),
    (
        re.compile(r"Expected `(?:array|object)` of length <= (?P<limit>\d+)"),
        "max_items",
        N_("Must contain at most %(limit)s items."),
    ),
    (
        re.compile(r"Expected `\w+` >= (?P<limit>\S+)"),
        "minimum",
        N_("Must be at least %(limit)s."),
    ),
    (
        re.compile(r"Expected `\w+` <= (?P<limit>\S+)"),
        "maximum",
        N_("Must be at most %(limit)s."),
    ),
    (
        re.compile(r"Expected `\w+` > (?P<limit>\S+)"),
        "minimum",
        N_("Must be greater than %(limit)s."),
    ),
    (
        re.compile(r"Expected `\w+` < (?P<limit>\S+)"),
        "maximum",
        N_("Must be less than %(limit)s."),
    ),
    (re.compile(r"matching regex"), "format", N_("Has an invalid format.")),
    (re.compile(r"Invalid enum value"), "choice", N_("Is not one of the allowed values.")),
    (re.compile(r"Invalid "), "format", N_("Has an invalid format.")),
    (re.compile(r"unknown field"), "unknown_field", N_("Is not a known field.")),
]
_INVALID = N_("Is not valid.")
# msgspec names where: "- at `$.members[0].answers`", or for a bad key "- at `key` in `$.answers`"
_PATH = re.compile(r" - at (?:`key` in )?`\$(?P<path>[^`]*)`$")


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name


# Friendlier format messages for fields whose pattern says little to a person.
_FORMAT_HINTS = {
    "phone": N_("Enter a Vietnamese mobile number, e.g. 0912345678."),
}
PASSWORD_NOT_ALLOWED = N_(
    "An account created or managed by someone else gets its password from its holder: "
    "hand them the activation code instead."
)
# Fields declared null-only to say "never send this": their own code and message.
_NULL_ONLY = {"password": ("password_not_allowed", PASSWORD_NOT_ALLOWED)}


def field_error(message: str, field: str = "") -> FieldError:
    """Translate one msgspec/Litestar validation message into a FieldError."""
    if match := _PATH.search(message):
        field = _join(field, match["path"].lstrip("."))
        message = message[: match.start()]
    for pattern, code, text in _RULES:
        if found := pattern.search(message):
            groups = found.groupdict()
            if code == "required":
                return FieldError(_join(field, groups["name"]), code, text)
            if code == "type":
                name = field.rsplit(".", 1)[-1]
                if groups["expected"] == "null" and name in _NULL_ONLY:
                    return FieldError(field, *_NULL_ONLY[name])
                expected = _TYPE_NAMES.get(groups["expected"], groups["expected"])
                return FieldError(field, code, text, {"expected": expected})
            if code == "format":
                text = _FORMAT_HINTS.get(field.rsplit(".", 1)[-1], text)
            return FieldError(field, code, text, groups or None)
    return FieldError(field, "invalid", _INVALID)


def field_errors_from_litestar(extra: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    for item in extra if isinstance(extra, list) else []:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key", ""))
        field = "" if key == "data" else key
        errors.append(field_error(str(item.get("message", "")), field))
    return errors


CHOICES = N_("Is not one of the allowed values: %(allowed)s.")
_MISSING = re.compile(r"Missing required \w+ parameter '(?P<name>[^']+)'")


def _with_choices(request: Request[Any, Any, Any], error: FieldError) -> FieldError:
    """A choice error that lists what the field allows, read from the handler's types."""
    handler = request.scope.get("route_handler")
    parameters = getattr(getattr(handler, "parsed_fn_signature", None), "parameters", {})
    head, _, rest = error.field.partition(".")
    name, path = (head, rest) if head in parameters and head != "data" else ("data", error.field)
    if name not in parameters:
        return error
    try:
        allowed = _allowed_at(msgspec.inspect.type_info(parameters[name].annotation), path)
    except (TypeError, ValueError):  # a type msgspec cannot describe: say less
        return error
    if not allowed:
        return error
    return FieldError(error.field, error.code, CHOICES, {"allowed": ", ".join(allowed)})


def _allowed_at(info: msgspec.inspect.Type, path: str) -> list[str]:
    """The literal values a field at ``path`` (``a.b[0].c``) of ``info`` may take."""
    for part in (p for p in re.split(r"\.|\[\d+\]", path) if p):
        info = _unwrap(info)
        if isinstance(info, msgspec.inspect.StructType):
            fields = {f.encode_name: f.type for f in info.fields}
            if part not in fields:
                return []
            info = fields[part]
        else:
            return []
        info = _unwrap(info)
    info = _unwrap(info)
    if isinstance(info, msgspec.inspect.LiteralType):
        return [str(value) for value in info.values]
    if isinstance(info, msgspec.inspect.EnumType):
        return [str(member.value) for member in info.cls]
    return []


def _unwrap(info: msgspec.inspect.Type) -> msgspec.inspect.Type:
    """Through lists and optional values, to the type that holds the choice."""
    while True:
        if isinstance(info, msgspec.inspect.UnionType):
            kept = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
            if len(kept) != 1:
                return info
            info = kept[0]
        elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType):
            info = info.item_type
        else:
            return info


def _problem(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    title: str,
    detail: str,
    params: dict[str, object] | None = None,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Problem]:
    language = negotiate(request.headers.get("accept-language"))
    translated_errors = translate_errors(language, errors) if errors else None
    body = Problem(
        type=f"urn:congdongso:problem:{code}",
        title=translate(language, title),
        status=status,
        detail=translate(language, detail, params),
        code=code,
        instance=f"urn:congdongso:request:{request_id(request.scope)}",
        errors=translated_errors,
    )
    return Response(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={"Content-Language": language, **(headers or {})},
    )


def translate_errors(language: str, errors: list[FieldError]) -> list[FieldProblem]:
    return [
        FieldProblem(
            field=error.field,
            code=error.code,
            message=translate(language, error.message, _translated_params(language, error)),
        )
        for error in errors
    ]


# Parameters that are message ids themselves: a type name, or what an import row uses and
# what to use instead.
_NESTED = frozenset({"expected", "what", "instead"})


def _translated_params(language: str, error: FieldError) -> dict[str, object] | None:
    if not error.params:
        return None
    # Parameter values that are themselves message ids (type names, what an import row
    # uses and what to use instead) are translated too, with the other parameters; values
    # given in each language ({"vi": …, "en": …}: a question's choices) are chosen.
    plain = {k: v for k, v in error.params.items() if k not in _NESTED}
    return {
        k: translate(language, v, plain)
        if k in _NESTED and isinstance(v, str)
        else v.get(language, v.get("vi"))
        if isinstance(v, dict)
        else v
        for k, v in error.params.items()
    }


# The database cannot answer now, through no fault of the caller: a restart or shutdown
# (CannotConnectNow, AdminShutdown, CrashShutdown), a lost or refused connection, a
# statement or lock timeout (api/db.py LIMITS), a transaction left idle too long, a
# deadlock, a pool that gave no connection in time. Retrying later works.
DATABASE_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,  # includes QueryCanceledError (statement_timeout)
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.IdleInTransactionSessionTimeoutError,
    asyncpg.DeadlockDetectedError,
    asyncpg.TooManyConnectionsError,
    OSError,
    TimeoutError,
)


# A client that left before its answer was complete (mid-body, or before reading the
# reply): nginx's 499 "client closed request" in the access log and metrics, never a 500.
CLIENT_CLOSED = 499
_GONE = "congdongso.client_gone"


def mark_client_gone(scope: Any) -> None:
    scope[_GONE] = True


def client_gone(scope: Any) -> bool:
    return bool(scope.get(_GONE))


def _unavailable(exc: BaseException) -> BaseException | None:
    """The database-unavailable condition behind ``exc``, if any: a lost connection often
    surfaces as the driver's complaint about the rollback that followed it
    (``InterfaceError: … the underlying connection is closed``)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, DATABASE_UNAVAILABLE):
            return seen
        if isinstance(seen, asyncpg.InternalClientError):
            # The driver's protocol state left behind by a backend that was terminated or
            # lost ("cannot switch to state …; another operation is in progress"); the
            # connection is discarded, and a retry gets a fresh one.
            return seen
        if not isinstance(seen, asyncpg.InterfaceError):
            return None
        seen = seen.__cause__ or seen.__context__
    return None


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Problem]:
    """The single exception → HTTP mapping for the whole app."""
    if client_gone(request.scope):
        # Litestar reports a body cut short by a disconnect as a 500; nobody will read
        # whatever is answered, and it is not a server error.
        return _problem(
            request, CLIENT_CLOSED, "client_closed", AppError.title, AppError.default_detail
        )
    if isinstance(exc, AppError):
        return _problem(
            request,
            exc.status_code,
            exc.instance_code,
            exc.title,
            exc.detail,
            exc.params,
            exc.errors,
            exc.headers,
        )
    if isinstance(exc, ValidationException):
        errors = [
            _with_choices(request, error) if error.code == "choice" else error
            for error in field_errors_from_litestar(exc.extra)
        ]
        if not errors and (missing := _MISSING.search(str(exc.detail))):
            # Litestar names a missing parameter only in its English detail.
            errors = [FieldError(missing["name"], "required", N_("This field is required."))]
        return _problem(
            request,
            400,
            ValidationFailed.code,
            ValidationFailed.title,
            ValidationFailed.default_detail,
            errors=errors or None,
        )
    if isinstance(exc, HTTPException):
        status = exc.status_code
        if status == 400 and isinstance(exc.__cause__, SerializationException):
            return _problem(
                request,
                400,
                "malformed_json",
                N_("Malformed JSON"),
                N_("The request body is not valid JSON."),
            )
        code, title, detail = _BY_STATUS.get(status, _BY_STATUS[500 if status >= 500 else 400])
        if status >= 500:
            log.error("server error %s on %s", status, request.scope.get("path_template", ""))
        return _problem(request, status, code, title, detail, headers=dict(exc.headers or {}))
    if isinstance(exc, (RecursionError, UnicodeDecodeError, msgspec.DecodeError)):
        # Raised while decoding a body, before any handler ran: nesting deeper than the
        # decoder goes, or bytes that are not UTF-8 (JSON is UTF-8, whatever the label says).
        return _problem(
            request,
            400,
            "malformed_json",
            N_("Malformed JSON"),
            N_("The request body is not valid JSON."),
        )
    if isinstance(exc, asyncpg.DataError):
        # Input the database refuses (a NUL byte, an out-of-range number) is the caller's error.
        return _problem(
            request,
            400,
            "invalid_data",
            N_("Invalid data"),
            N_(
                "A value in the request cannot be stored: check for control characters and "
                "numbers out of range."
            ),
        )
    if isinstance(exc, asyncpg.UniqueViolationError):
        return _problem(
            request,
            409,
            Conflict.code,
            Conflict.title,
            N_("A record with the same unique value already exists."),
        )
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return _problem(
            request,
            400,
            "invalid_reference",
            N_("Invalid reference"),
            N_("The request refers to a record that does not exist."),
        )
    if cause := _unavailable(exc):
        log.error("database unavailable: %s", type(cause).__name__)
        code, title, detail = _BY_STATUS[503]
        return _problem(request, 503, code, title, detail, headers={"Retry-After": "5"})
    log.exception("unhandled error on %s", request.scope.get("path_template", ""))
    code, title, detail = _BY_STATUS[500]
    return _problem(request, 500, code, title, detail)


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI documentation of the problem+json answers an operation can give.

    400 is always included: any parameter or body can fail validation.
    """
    return {
        status: ResponseSpec(
            data_container=Problem,
            description=_BY_STATUS.get(status, _BY_STATUS[400])[1],
            media_type=PROBLEM_JSON,
            generate_examples=False,  # api/openapi.py adds real ones
        )
        for status in sorted({400, *statuses})
    }


__all__ = [
    "PROBLEM_JSON",
    "AppError",
    "Conflict",
    "FieldError",
    "Forbidden",
    "NotFound",
    "TooManyRequests",
    "Unauthorized",
    "ValidationFailed",
    "field_error",
    "handle_exception",
    "invalid",
    "problems",
    "translate_errors",
]
