"""The OpenAPI document clients are generated from: Litestar's output, finished in one place.

The mobile app's Kotlin, Dart and TypeScript clients are generated from this document, so it
is a product (tests/test_openapi.py, tests/test_clients.py). Litestar 2.25 cannot express a
few things; :func:`finish` adds them to the generated document once, each step below says
which gap it fills:

- tagged unions get a named ``oneOf`` with a ``discriminator`` (``propertyName`` and
  ``mapping``) and a shared base each member extends: Litestar inlines a bare ``oneOf``
  (litestar#4564, #4575), which generators flatten into one class;
- generic pages get readable names (``AreaPage``, not ``Page_schemas.areas.Area_``);
- path parameters are camelCase like every other name (``{surveyId}``); URLs are unchanged;
- values typed ``Any`` at run time because they are checked against a survey version
  (answers, skip-logic values) get the union of the answer kinds, ``AnswerValue``;
- push items, decoded one by one at run time, get their item schemas;
- every operation declares the problems any request can meet (500, 503 with
  ``Retry-After``; 401 when signed in; 413 and 415 with a body; ``Retry-After`` on 429),
  each with a real example;
- a 2xx body is never ``null`` (a handler that can answer without a body says 304 or 204).

One gap is filled while Litestar builds the document, by :class:`StructConstraints`: the
``Meta`` constraints inside list items and map keys and values (``list[Slug]``,
``dict[Key, FilterText]``), which Litestar drops (style.md pitfall 3b), are copied from
msgspec's own JSON schema of each Struct, so the document promises what decoding enforces.
"""

from __future__ import annotations

import copy
import importlib.util
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import msgspec
from litestar import Litestar, Request, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import NotFoundException
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.params import FromPath
from litestar.plugins import OpenAPISchemaPlugin
from litestar.response import File
from litestar.typing import FieldDefinition

from schemas.modules import PushAttempt, PushProgress
from schemas.surveys import SurveyQuestion

if TYPE_CHECKING:
    from litestar._openapi.schema_generation import SchemaCreator

Document = dict[str, Any]
REF = "#/components/schemas/"

# What msgspec checks on decoding and a JSON schema can say (``enum``, ``const`` and
# ``format`` Litestar already writes for literals, UUIDs and dates wherever they are).
CONSTRAINTS = (
    "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minItems", "maxItems", "minProperties", "maxProperties",
    "propertyNames", "uniqueItems",
)  # fmt: skip


def _attribute(key: str) -> str:
    """The attribute of Litestar's ``Schema`` for a JSON name (``maxLength`` → ``max_length``)."""
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), key)


# Unions of tagged Structs, by the component name clients see.
TAGGED_UNIONS: dict[str, Any] = {"SurveyQuestion": SurveyQuestion}

# Structs only reached through a ``schema_extra`` (decoded one by one at run time).
EXTRA_COMPONENTS: tuple[type[msgspec.Struct], ...] = (PushProgress, PushAttempt)

# What an answer can be: a number, true/false, a text (also a date, "2025-07-01") or the
# values of a multiple choice. Kinds do not overlap in JSON, so ``oneOf`` holds.
ANSWER_VALUE: Document = {
    "title": "AnswerValue",
    "description": (
        "An answer: a number, true/false, a text (a date as `2025-07-01`) or the list of "
        "values of a multiple choice; which one depends on the question's `kind`."
    ),
    "oneOf": [
        {"type": "number"},
        {"type": "boolean"},
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}, "maxItems": 100},
    ],
}
# Component → property → the schema that replaces Litestar's ``{}`` (run-time ``Any``).
_NULLABLE_ANSWER = {"oneOf": [{"$ref": f"{REF}AnswerValue"}, {"type": "null"}]}
_ANSWERS = {
    "type": "object",
    "maxProperties": 200,
    "additionalProperties": _NULLABLE_ANSWER,
    "description": "Question key → answer (`null` or absent: not answered).",
}
TYPED_ANY: dict[str, dict[str, Document]] = {
    "NewSubmission": {"answers": _ANSWERS},
    "Submission": {"answers": _ANSWERS},
    "MemberAnswers": {"answers": _ANSWERS},
    "Condition": {
        "value": {
            **_NULLABLE_ANSWER,
            "default": None,
            "description": "Compared with the answer; ignored by `answered`/`not_answered`.",
        }
    },
}

# Every question kind's ``default`` (the answer a re-visit starts from) is an answer too.
_DEFAULT_ANSWER = {
    **_NULLABLE_ANSWER,
    "default": None,
    "description": "The answer a re-visit starts from when it has none (required questions "
    "added by a later version need one).",
}
for _kind in SurveyQuestion.__args__:
    TYPED_ANY[_kind.__name__] = {"default": _DEFAULT_ANSWER}

# Inline unions of scalars that generators would name after their place (IntegerQuestionMax).
NAMED_INLINE: dict[tuple[str, str], tuple[str, str]] = {
    ("IntegerQuestion", "max"): (
        "IntegerBound",
        "An upper bound, or `collectedYear`: the year of the submission's `collectedAt`.",
    ),
}

PROBLEM_EXAMPLES: dict[int, Document] = {
    400: {
        "type": "urn:congdongso:problem:validation_failed",
        "title": "Invalid input",
        "status": 400,
        "detail": "Some fields are not valid.",
        "code": "validation_failed",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
        "errors": [
            {"field": "phone", "code": "format", "message": "Enter a Vietnamese mobile number."}
        ],
    },
    401: {
        "type": "urn:congdongso:problem:unauthorized",
        "title": "Not signed in",
        "status": 401,
        "detail": "Sign in to continue: the access token is missing, invalid or expired.",
        "code": "unauthorized",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    403: {
        "type": "urn:congdongso:problem:forbidden",
        "title": "Not allowed",
        "status": 403,
        "detail": "Your role does not allow this action.",
        "code": "forbidden",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    404: {
        "type": "urn:congdongso:problem:not_found",
        "title": "Not found",
        "status": 404,
        "detail": "Nothing was found at this address.",
        "code": "not_found",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    409: {
        "type": "urn:congdongso:problem:conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "The request conflicts with the current state.",
        "code": "conflict",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    413: {
        "type": "urn:congdongso:problem:body_too_large",
        "title": "Request too large",
        "status": 413,
        "detail": "The request body is larger than the server accepts.",
        "code": "body_too_large",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    415: {
        "type": "urn:congdongso:problem:unsupported_media_type",
        "title": "Unsupported media type",
        "status": 415,
        "detail": "Send the request body as application/json.",
        "code": "unsupported_media_type",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    429: {
        "type": "urn:congdongso:problem:too_many_requests",
        "title": "Too many attempts",
        "status": 429,
        "detail": "Too many attempts. Try again later.",
        "code": "too_many_requests",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    500: {
        "type": "urn:congdongso:problem:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "Something went wrong on our side. The error has been logged.",
        "code": "internal_error",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
    503: {
        "type": "urn:congdongso:problem:unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": "The service is temporarily unavailable. Try again shortly.",
        "code": "unavailable",
        "instance": "urn:congdongso:request:7f3c2a9e4b1d4e0f",
    },
}
_DESCRIPTIONS = {
    401: "Not signed in",
    413: "Request too large",
    415: "Unsupported media type",
    500: "Internal error",
    503: "Service unavailable (the database is busy or unreachable)",
}
RETRY_AFTER: Document = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
_PAGE = re.compile(r"^Page_[\w.]*\.(?P<item>\w+)_$")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


class StructConstraints(OpenAPISchemaPlugin):
    """Every Struct's schema as Litestar builds it, with the constraints it leaves out.

    Litestar reads a field's own ``Meta`` but not one nested in its type: items of a list,
    keys and values of a dict (and a dict's own ``min_length``/``max_length``). msgspec's
    JSON schema of the Struct has them all; each one Litestar's schema lacks at the same
    place is copied over. Listed before Litestar's own plugins, this one is asked first for
    every Struct and lets the next plugin that supports it build the component.
    """

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return False

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        return not field_definition.is_union and field_definition.is_subclass_of(msgspec.Struct)

    def to_openapi_schema(
        self, field_definition: FieldDefinition, schema_creator: SchemaCreator
    ) -> Schema:
        builder = next(
            plugin
            for plugin in schema_creator.plugins
            if plugin is not self and schema_creator.plugin_supports_field(plugin, field_definition)
        )
        built = builder.to_openapi_schema(
            field_definition=field_definition, schema_creator=schema_creator
        )
        source = msgspec.json.schema(field_definition.annotation)
        definition = source["$defs"][source["$ref"].rsplit("/", 1)[-1]]
        for name, wanted in definition.get("properties", {}).items():
            target = (built.properties or {}).get(name)
            if isinstance(target, Schema):
                _add_constraints(target, wanted)
        return built


def _add_constraints(target: Schema, source: Document, said: frozenset[str] = frozenset()) -> None:
    """Copy into ``target`` the constraints of ``source`` (msgspec's schema of the same value)
    it does not state, nor an enclosing union (``said``: Litestar hoists an optional field's
    constraints onto its ``oneOf``)."""
    for key in CONSTRAINTS:
        if key in source and key not in said and getattr(target, _attribute(key)) is None:
            value = source[key]
            setattr(target, _attribute(key), _schema(value) if isinstance(value, dict) else value)
    for key in ("items", "additionalProperties"):
        inner = getattr(target, _attribute(key))
        if isinstance(source.get(key), dict) and isinstance(inner, Schema):
            _add_constraints(inner, source[key])
    arms = [arm for arm in target.one_of or target.any_of or [] if isinstance(arm, Schema)]
    stated = said | {key for key in CONSTRAINTS if getattr(target, _attribute(key)) is not None}
    for wanted in source.get("anyOf", []):
        for arm in arms:
            if wanted.get("type") not in (None, "null") and _type(arm) == wanted["type"]:
                _add_constraints(arm, wanted, stated)


def _type(schema: Schema) -> object:
    return schema.type.value if isinstance(schema.type, OpenAPIType) else schema.type


def _schema(source: Document) -> Schema:
    """A Litestar ``Schema`` from a plain one (a map's ``propertyNames``: string checks)."""
    schema = Schema()
    for key, value in source.items():
        if key == "type":
            schema.type = OpenAPIType(value)
        elif key in CONSTRAINTS:
            setattr(schema, _attribute(key), value)
    return schema


def finish(generated: Document) -> Document:
    """The document as served: Litestar's, with the gaps above filled (a new dict)."""
    doc = copy.deepcopy(generated)
    doc.setdefault("components", {}).setdefault("schemas", {})
    _rename_pages(doc)  # rebuilds the dict: look components up after it
    schemas: Document = doc["components"]["schemas"]
    _add_extra_components(schemas)
    schemas["AnswerValue"] = ANSWER_VALUE
    for component, typed in TYPED_ANY.items():
        for name, schema in typed.items():
            present = schemas.get(component, {}).get("properties", {})
            if name in present:
                # The value is typed here; its constraints (a map's keys and size) stay.
                kept = {key: present[name][key] for key in CONSTRAINTS if key in present[name]}
                present[name] = {**kept, **copy.deepcopy(schema)}
    for (component, prop), (name, description) in NAMED_INLINE.items():
        schemas[name] = _named(schemas[component]["properties"][prop], name, description)
        nullable = {"type": "null"} in schemas[component]["properties"][prop].get("oneOf", [])
        ref: Document = {"$ref": f"{REF}{name}"}
        schemas[component]["properties"][prop] = (
            {"oneOf": [ref, {"type": "null"}]} if nullable else ref
        )
    for name, union in TAGGED_UNIONS.items():
        _name_tagged_union(doc, name, union)
    _camel_path_parameters(doc)
    for _, _, operation in operations(doc):
        _typed_bodies(operation)
        _declare_problems(operation)
        _no_null_bodies(operation)
        _not_modified_headers(operation)
    return doc


def operations(doc: Document) -> Iterator[tuple[str, str, Document]]:
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def _walk(node: Any, visit: Callable[[Any], Any]) -> Any:
    """Rebuild ``node`` bottom-up, replacing each dict by ``visit(dict)``."""
    if isinstance(node, dict):
        return visit({key: _walk(value, visit) for key, value in node.items()})
    if isinstance(node, list):
        return [_walk(value, visit) for value in node]
    return node


def _replace_in_place(doc: Document, visit: Callable[[Any], Any]) -> None:
    rebuilt = _walk(doc, visit)
    doc.clear()
    doc.update(rebuilt)


def _rename_pages(doc: Document) -> None:
    schemas: Document = doc["components"]["schemas"]
    renames = {old: f"{match['item']}Page" for old in list(schemas) if (match := _PAGE.match(old))}
    for old, new in renames.items():
        schemas[new] = schemas.pop(old)
        schemas[new]["title"] = new
    refs = {f"{REF}{old}": f"{REF}{new}" for old, new in renames.items()}

    def visit(node: Document) -> Document:
        if isinstance(node.get("$ref"), str) and node["$ref"] in refs:
            return {**node, "$ref": refs[node["$ref"]]}
        return node

    _replace_in_place(doc, visit)


def _add_extra_components(schemas: Document) -> None:
    _, components = msgspec.json.schema_components(EXTRA_COMPONENTS, ref_template=REF + "{name}")
    for name, schema in components.items():
        # As Litestar writes them: an optional field is left out, not ``default: null``
        # (which TypeScript generators read as "always sent").
        for prop in schema.get("properties", {}).values():
            if prop.get("default", ...) is None:
                del prop["default"]
        schemas.setdefault(name, schema)


def _named(schema: Document, name: str, description: str) -> Document:
    """``schema`` as a component; ``null`` stays with the property."""
    kept = [
        {**item, "enum": [item["const"]]} if "const" in item else item
        for item in schema.get("oneOf", [])
        if item != {"type": "null"}
    ]
    return {"title": name, "description": description, "oneOf": kept}


def _name_tagged_union(doc: Document, name: str, union: Any) -> None:
    """Model a msgspec tagged union the way every generator we test types it.

    ``name`` is the union: ``oneOf`` its members with a ``discriminator`` (``propertyName``
    and ``mapping``). Each member is ``allOf`` the shared ``{name}Base`` (which carries the
    discriminator too) and its own properties. TypeScript gets a union it can narrow by
    ``kind``; Kotlin (kotlinx) a sealed interface decoded by the tag into the member's class;
    Dart (dio) a ``OneOf`` chosen by the tag. A bare ``oneOf`` is flattened into one class by
    the Kotlin generator (7.x) whatever its discriminator; a base alone is no union in
    TypeScript.
    """
    members: list[type[msgspec.Struct]] = list(get_args(union))
    configs = [member.__struct_config__ for member in members]
    tag_fields = {config.tag_field for config in configs}
    if len(tag_fields) != 1 or None in tag_fields:
        raise ValueError(f"{name}: every member needs the same tag field")
    (tag_field,) = tag_fields
    assert tag_field is not None
    schemas: Document = doc["components"]["schemas"]
    generated = [schemas[member.__name__] for member in members]
    shared = [
        key
        for key, value in generated[0]["properties"].items()
        if key != tag_field and all(other["properties"].get(key) == value for other in generated)
    ]
    required_everywhere = set.intersection(*(set(g.get("required", [])) for g in generated))
    refs = [f"{REF}{member.__name__}" for member in members]
    discriminator: Document = {
        "propertyName": tag_field,
        "mapping": {str(config.tag): ref for config, ref in zip(configs, refs, strict=True)},
    }
    base_name = f"{name}Base"
    base: Document = {
        "title": base_name,
        "type": "object",
        "properties": {
            **{key: generated[0]["properties"][key] for key in shared},
            tag_field: {"type": "string", "description": f"Which kind of {name} this is."},
        },
        "required": sorted((required_everywhere & set(shared)) | {tag_field}),
        "discriminator": {
            "propertyName": tag_field,
            "mapping": {str(config.tag): ref for config, ref in zip(configs, refs, strict=True)},
        },
    }
    for member, config, schema in zip(members, configs, generated, strict=True):
        # Each member names its own tag, so exactly one member matches a value (``oneOf``
        # holds for validators that ignore the discriminator); generators use the mapping.
        own = {
            tag_field: {"type": "string", "enum": [config.tag]},
            **{k: v for k, v in schema["properties"].items() if k not in shared and k != tag_field},
        }
        part: Document = {
            "type": "object",
            "properties": own,
            "required": sorted(set(schema.get("required", [])) & set(own) | {tag_field}),
        }
        replaced: Document = {
            "title": member.__name__,
            "allOf": [{"$ref": f"{REF}{base_name}"}, part],
        }
        if "description" in schema:
            replaced["description"] = schema["description"]
        schemas[member.__name__] = replaced
    wanted = set(refs)

    def visit(node: Document) -> Document:
        one_of = node.get("oneOf")
        if (
            isinstance(one_of, list)
            and len(one_of) == len(wanted)
            and {item.get("$ref") for item in one_of if isinstance(item, dict)} == wanted
        ):
            rest = {key: value for key, value in node.items() if key != "oneOf"}
            return {"$ref": f"{REF}{name}", **rest}
        return node

    _replace_in_place(doc, visit)
    doc["components"]["schemas"][base_name] = base
    doc["components"]["schemas"][name] = {
        "title": name,
        "oneOf": [{"$ref": ref} for ref in refs],
        "discriminator": discriminator,
    }


def camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _camel_path_parameters(doc: Document) -> None:
    paths: Document = doc.get("paths", {})
    renamed: Document = {}
    for path, item in paths.items():
        new_path = re.sub(r"\{(\w+)\}", lambda m: "{" + camel(m.group(1)) + "}", path)
        for parameter in item.get("parameters", []):
            if parameter.get("in") == "path":
                parameter["name"] = camel(parameter["name"])
        for method in _METHODS:
            for parameter in item.get(method, {}).get("parameters", []):
                if parameter.get("in") == "path":
                    parameter["name"] = camel(parameter["name"])
        renamed[new_path] = item
    doc["paths"] = renamed


def problem_response(status: int, description: str | None = None) -> Document:
    response: Document = {
        "description": description or _DESCRIPTIONS.get(status, str(status)),
        "content": {
            "application/problem+json": {
                "schema": {"$ref": f"{REF}Problem"},
                "example": PROBLEM_EXAMPLES[status],
            }
        },
    }
    if status in (429, 503):
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


def _declare_problems(operation: Document) -> None:
    responses: Document = operation.setdefault("responses", {})
    wanted = {500, 503}
    if operation.get("security"):
        wanted.add(401)
    if "requestBody" in operation:
        wanted |= {413, 415}
    for code in sorted(wanted):
        responses.setdefault(str(code), problem_response(code))
    for key, response in responses.items():
        if not key.isdigit() or int(key) not in PROBLEM_EXAMPLES:
            continue
        content = response.get("content", {}).get("application/problem+json")
        if content is not None:
            content["example"] = PROBLEM_EXAMPLES[int(key)]
        if int(key) in (429, 503):
            response.setdefault("headers", {})["Retry-After"] = RETRY_AFTER


def _no_null_bodies(operation: Document) -> None:
    for status, response in operation.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        for media in response.get("content", {}).values():
            schema = media.get("schema", {})
            one_of = schema.get("oneOf")
            if isinstance(one_of, list) and {"type": "null"} in one_of:
                kept = [item for item in one_of if item != {"type": "null"}]
                media["schema"] = kept[0] if len(kept) == 1 else {**schema, "oneOf": kept}


def document(app: Litestar) -> Document:
    """The finished document of ``app``, built once."""
    built: Document | None = app.state.get("openapi_document")
    if built is None:
        built = finish(msgspec.to_builtins(app.openapi_schema.to_schema()))
        app.state.openapi_document = built
    return built


# The API reference page: Swagger UI 5 from the pinned swagger-ui-py package (PyPI), served
# from this origin, so /schema works on a ward's laptop with no internet. The package is only
# located, never imported (its own code is for other frameworks).
_SWAGGER = importlib.util.find_spec("swagger_ui")
ASSETS_DIR = (
    Path(next(iter(_SWAGGER.submodule_search_locations or []))) / "static" if _SWAGGER else None
)
ASSETS_PATH = "/schema/assets"
ASSET_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
    "swagger-ui.css": "text/css",
}


class ReferencePage(SwaggerRenderPlugin):
    """``/schema``: Swagger UI over the finished document, every asset same-origin."""

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            css_url=f"{ASSETS_PATH}/swagger-ui.css",
            standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
            path="/",
            favicon="",
        )

    def render(self, request: Request[Any, Any, Any], openapi_schema: Document) -> bytes:
        del openapi_schema  # Litestar's unfinished copy
        return super().render(request, document(request.app))


@get(f"{ASSETS_PATH}/{{name:str}}", include_in_schema=False, exclude_from_auth=True)
async def reference_asset(name: FromPath[str]) -> File:
    """One of Swagger UI's three files (nothing else of the package is served)."""
    if name not in ASSET_FILES or ASSETS_DIR is None:
        raise NotFoundException()
    return File(
        ASSETS_DIR / name,
        filename=name,
        media_type=ASSET_FILES[name],
        content_disposition_type="inline",
        headers={"Cache-Control": "public, max-age=86400"},
    )


class FinishedJson(JsonRenderPlugin):
    """Serves ``/schema/openapi.json`` as :func:`document` finishes it."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: Document) -> bytes:
        del openapi_schema  # Litestar's unfinished copy
        return self.render_json(request, document(request.app))


def documented_header(name: str, description: str) -> ResponseHeader:
    """A response header the handler sets itself, declared for the document."""
    return ResponseHeader(name=name, description=description, documentation_only=True)


def _typed_bodies(operation: Document) -> None:
    """Non-JSON bodies are strings: text as text, anything else as bytes (``binary``)."""
    for response in operation.get("responses", {}).values():
        for header in response.get("headers", {}).values():
            header.setdefault("schema", {"type": "string"})
        for media_type, media in response.get("content", {}).items():
            if "json" in media_type:
                continue
            if media_type.startswith(("text/", "image/svg+xml")):
                media["schema"] = {"type": "string"}
            else:
                media["schema"] = {"type": "string", "format": "binary"}


def _not_modified_headers(operation: Document) -> None:
    """A 304 repeats the validators and caching headers of the 200 it stands for."""
    responses = operation.get("responses", {})
    if "304" in responses and "200" in responses:
        kept = {
            name: header
            for name, header in responses["200"].get("headers", {}).items()
            if name in ("ETag", "Cache-Control", "Vary")
        }
        if kept:
            responses["304"]["headers"] = kept
