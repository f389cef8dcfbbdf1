"""The OpenAPI document's shape (api/openapi.py): what generated clients depend on."""

from __future__ import annotations

import re
from typing import Any

import pytest

from api.app import create_app
from api.config import Settings
from api.openapi import PROBLEM_EXAMPLES, document, finish

REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(
        env="test",
        data_dir=str(tmp_path_factory.mktemp("openapi")),
        jwt_secret="openapi-secret-openapi-secret-0032",
    )
    return document(create_app("postgresql://unused@127.0.0.1/unused", settings))


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    ]


def schemas_in(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            found += schemas_in(value)
    return found


def test_the_question_union_is_a_discriminated_hierarchy(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    union = schemas["SurveyQuestion"]
    assert union["discriminator"]["propertyName"] == "kind"
    mapping = union["discriminator"]["mapping"]
    assert union["oneOf"] == [{"$ref": ref} for ref in mapping.values()]
    assert schemas["SurveyQuestionBase"]["discriminator"] == union["discriminator"]
    assert schemas["SurveyQuestionBase"]["required"] == ["key", "kind", "label"]
    assert set(mapping) == {
        "integer",
        "decimal",
        "boolean",
        "text",
        "date",
        "single_choice",
        "multi_choice",
        "note",
        "calculate",
    }
    for ref in mapping.values():
        member = schemas[ref.removeprefix(REF)]
        assert member["allOf"][0] == {"$ref": f"{REF}SurveyQuestionBase"}
    choice = schemas["SingleChoiceQuestion"]["allOf"][1]
    assert choice["required"] == ["choices", "kind"]
    assert choice["properties"]["kind"] == {"type": "string", "enum": ["single_choice"]}
    definition = schemas["SurveyDefinition"]["properties"]["questions"]
    assert definition["items"] == {"$ref": f"{REF}SurveyQuestion"}
    # No inline union of question kinds is left anywhere.
    for node in schemas_in(doc):
        refs = {item.get("$ref") for item in node.get("oneOf", []) if isinstance(item, dict)}
        assert f"{REF}IntegerQuestion" not in refs or node is union


def test_names_read_well(doc: dict[str, Any]) -> None:
    names = set(doc["components"]["schemas"])
    assert {"SurveyQuestion", "QuizQuestion", "QuizChoice", "SurveyChoice", "AreaPage"} <= names
    assert not [name for name in names if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name)]
    assert "Question" not in names


def test_path_parameters_are_camel_case(doc: dict[str, Any]) -> None:
    for path, _, op in operations(doc):
        for name in re.findall(r"\{(\w+)\}", path):
            assert "_" not in name, path
        for parameter in op.get("parameters", []):
            if parameter["in"] == "path":
                assert "_" not in parameter["name"], path
    assert "/api/v1/surveys/{surveyId}/versions/{version}" in doc["paths"]


def test_push_items_and_answers_are_typed(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/api/v1/sync/push"]["post"]["requestBody"]["content"]
    push = body["application/json"]["schema"]
    items = {
        name: prop["items"]
        for name, prop in (push.get("properties") or schemas["SyncPush"]["properties"]).items()
    }
    assert items == {
        "submissions": {"$ref": f"{REF}NewSubmission"},
        "progress": {"$ref": f"{REF}PushProgress"},
        "attempts": {"$ref": f"{REF}PushAttempt"},
    }
    assert {"moduleId", "lessons", "id"} <= set(schemas["PushProgress"]["properties"])
    assert {"moduleId", "attemptId", "answers"} <= set(schemas["PushAttempt"]["properties"])
    for component in ("NewSubmission", "Submission", "MemberAnswers"):
        answers = schemas[component]["properties"]["answers"]
        assert answers["additionalProperties"]["oneOf"][0] == {"$ref": f"{REF}AnswerValue"}
    kinds = [item["type"] for item in schemas["AnswerValue"]["oneOf"]]
    assert kinds == ["number", "boolean", "string", "array"]
    # Nothing the server sends or takes is left untyped.
    for node in schemas_in(doc):
        assert node.get("schema", True) != {}
        assert node.get("items", True) != {}
        assert node.get("additionalProperties", True) != {}
        if node.get("type") == "object" and "allOf" not in node:
            assert node.get("properties") or node.get("additionalProperties"), node


def test_every_operation_declares_its_problems_with_real_examples(doc: dict[str, Any]) -> None:
    for path, method, op in operations(doc):
        responses = op["responses"]
        assert {"500", "503"} <= set(responses), (method, path)
        if op.get("security"):
            assert "401" in responses, (method, path)
        if "requestBody" in op:
            assert {"413", "415"} <= set(responses), (method, path)
        for status, response in responses.items():
            problem = response.get("content", {}).get("application/problem+json")
            if problem is None:
                continue
            assert problem["schema"] == {"$ref": f"{REF}Problem"}
            assert problem["example"] == PROBLEM_EXAMPLES[int(status)]
            assert problem["example"]["status"] == int(status)
        assert "Retry-After" in responses["503"]["headers"]
        if "429" in responses:
            assert "Retry-After" in responses["429"]["headers"]


def test_binary_bodies_headers_and_not_modified(doc: dict[str, Any]) -> None:
    paths = doc["paths"]
    xlsx = paths["/api/v1/stats/areas/{code}/export.xlsx"]["get"]["responses"]["200"]
    (media_type,) = xlsx["content"]
    assert media_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert xlsx["content"][media_type]["schema"] == {"type": "string", "format": "binary"}
    assert {"Content-Disposition", "Cache-Control"} <= set(xlsx["headers"])
    csv = paths["/api/v1/stats/areas/{code}/export.csv"]["get"]["responses"]["200"]
    assert csv["content"]["text/csv"]["schema"] == {"type": "string"}
    svg = paths["/api/v1/stats/areas/{code}/chart.svg"]["get"]["responses"]["200"]
    assert svg["content"]["image/svg+xml"]["schema"] == {"type": "string"}
    for path in ("/api/v1/surveys/{surveyId}/versions/{version}", "/api/v1/modules/{moduleId}"):
        responses = paths[path]["get"]["responses"]
        body = responses["200"]["content"]["application/json"]["schema"]
        assert "$ref" in body, "a 200 body is never null"
        assert {"ETag", "Cache-Control"} <= set(responses["200"]["headers"])
        assert {"ETag", "Cache-Control"} <= set(responses["304"]["headers"])
    public = paths["/api/v1/public/areas/{code}/stats"]["get"]["responses"]["200"]
    assert "Cache-Control" in public["headers"]


def test_finish_leaves_the_generated_document_alone() -> None:
    generated: dict[str, Any] = {
        "openapi": "3.1.0",
        "paths": {},
        "components": {
            "schemas": {
                name: {"type": "object", "properties": {"x": {"type": "string"}}}
                for name in ("NewSubmission", "Submission", "MemberAnswers", "Condition")
            }
            | {
                name: {
                    "type": "object",
                    "properties": {"key": {"type": "string"}, "kind": {"const": name}},
                    "required": ["key", "kind"],
                }
                for name in (
                    "IntegerQuestion",
                    "DecimalQuestion",
                    "BooleanQuestion",
                    "TextQuestion",
                    "DateQuestion",
                    "SingleChoiceQuestion",
                    "MultiChoiceQuestion",
                    "NoteQuestion",
                    "CalculateQuestion",
                )
            }
        },
    }
    generated["components"]["schemas"]["IntegerQuestion"]["properties"]["max"] = {
        "oneOf": [{"type": "integer"}, {"type": "string", "const": "collectedYear"}]
    }
    before = repr(generated)
    finished = finish(generated)
    assert repr(generated) == before
    assert finished["components"]["schemas"]["SurveyQuestionBase"]["required"] == ["key", "kind"]


def test_constraints_inside_lists_and_maps_are_documented(doc: dict[str, Any]) -> None:
    """What msgspec enforces on list items and map keys and values, the document says
    (Litestar alone drops it: style.md pitfall 3b)."""
    schemas = doc["components"]["schemas"]
    slug = {"maxLength": 40, "minLength": 1, "pattern": "^[a-z0-9][a-z0-9_-]*$"}
    key = {"maxLength": 40, "minLength": 1, "pattern": "^[a-z][a-z0-9_]*$"}
    components = schemas["Competences"]["properties"]["components"]
    assert components["items"] == {"maxLength": 3, "pattern": r"^[1-6]\.[1-9]$", "type": "string"}
    assert components["uniqueItems"] is True  # from the Meta's extra_json_schema
    answers = schemas["NewAttempt"]["properties"]["answers"]
    assert (answers["minProperties"], answers["maxProperties"]) == (1, 50)
    assert answers["propertyNames"] == slug
    assert answers["additionalProperties"] == {
        "type": "array", "items": {**slug, "type": "string"}, "maxItems": 10
    }  # fmt: skip
    filters = schemas["SurveyChoice"]["properties"]["filters"]["oneOf"][0]
    assert filters["propertyNames"] == key
    assert filters["additionalProperties"]["maxLength"] == 100
    # A map whose values api/openapi.py types (answers) keeps its keys' constraints.
    submitted = schemas["NewSubmission"]["properties"]["answers"]
    assert submitted["propertyNames"] == key
    assert submitted["additionalProperties"]["oneOf"][0] == {"$ref": f"{REF}AnswerValue"}
    # An optional field's constraints stay where Litestar puts them, not repeated in the arm.
    name = schemas["NewUser"]["properties"]["displayName"]
    assert name["maxLength"] == 60
    assert name["oneOf"][0] == {"type": "string"}
