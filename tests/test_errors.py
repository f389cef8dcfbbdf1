"""Bad input never becomes a 500: NUL bytes, huge numbers, bodies too large, broken JSON."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient, RequestFactory

from api.errors import field_error, handle_exception
from tests.conftest import HAC_THANH, Accounts, submission
from tests.test_stats import new_household, ward_team

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def test_nul_byte_in_text_is_a_400(client: Client, accounts: Accounts) -> None:
    official = await accounts.create("ward_official", HAC_THANH)
    headers = await accounts.headers(official)
    response = await client.post(
        "/api/v1/teams", json={"wardCode": HAC_THANH, "name": "Tổ\u0000 1"}, headers=headers
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "name"
    search = await client.get("/api/v1/areas", params={"q": "ha\u0000noi"}, headers=headers)
    assert search.status_code == 400


async def test_out_of_range_numbers_are_400(client: Client, accounts: Accounts) -> None:
    headers = await accounts.headers(await accounts.create("admin"))
    for limit in (str(2**63), "-1", "1e3", "abc"):
        response = await client.get("/api/v1/areas", params={"limit": limit}, headers=headers)
        assert response.status_code == 400, limit


async def test_malformed_json_and_wrong_shapes(client: Client) -> None:
    broken = await client.post(
        "/api/v1/auth/login", content=b'{"phone": ', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["code"] == "malformed_json"
    array = await client.post("/api/v1/auth/login", json=[1, 2])
    assert array.status_code == 400
    assert array.json()["code"] == "validation_failed"


async def test_body_size_is_limited(client: Client) -> None:
    huge = b'{"phone": "0912345678", "password": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v1/auth/login", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_database_input_errors_map_to_400() -> None:
    request = RequestFactory().get("/api/v1/areas", headers={"Accept-Language": "en"})
    response = handle_exception(request, asyncpg.CharacterNotInRepertoireError("NUL"))
    assert response.status_code == 400
    response = handle_exception(request, asyncpg.NumericValueOutOfRangeError("overflow"))
    assert response.status_code == 400
    response = handle_exception(request, RuntimeError("boom"))
    assert response.status_code == 500


def test_msgspec_messages_become_field_codes() -> None:
    assert field_error("Expected `int` <= 30 - at `$.answers.hh_size`").code == "maximum"
    error = field_error("Expected `int` <= 30 - at `$.answers.hh_size`")
    assert (error.field, error.params) == ("answers.hh_size", {"limit": "30"})
    assert field_error("Object missing required field `consent`", "items[0]").field == (
        "items[0].consent"
    )
    assert field_error("Invalid enum value 'x'", "role").code == "choice"
    assert field_error("Expected `str` matching regex '^x$'", "phone").code == "format"
    assert field_error("something unexpected", "f").code == "invalid"


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
        TimeoutError(),
        ConnectionRefusedError(),
    ],
)
def test_database_unavailable_is_a_503_with_retry_after(exc: Exception) -> None:
    request = RequestFactory().get("/api/v1/me", headers={"Accept-Language": "en"})
    response = handle_exception(request, exc)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


async def test_bodies_that_cannot_be_decoded_are_400_everywhere(client: Client) -> None:
    """Signed in or not: nesting deeper than the decoder goes, bytes that are not UTF-8."""
    deep = b'{"phone": ' + b"[" * 6000 + b"]" * 6000 + b"}"
    not_utf8 = b'{"phone": "\\xff\\xfe", "password": "x"}'.replace(b"\\xff\\xfe", b"\xff\xfe")
    for path in ("/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/register"):
        for body in (deep, not_utf8):
            response = await client.post(
                path, content=body, headers={"Content-Type": "application/json; charset=latin-1"}
            )
            assert response.status_code == 400, (path, response.text)
            assert response.json()["code"] == "malformed_json"


async def test_a_push_item_that_is_not_an_object_is_rejected_alone(
    client: Client, accounts: Accounts
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    household = await new_household(client, team, HAC_THANH)
    good = submission(household)
    response = await client.post(
        "/api/v1/sync/push",
        json={"submissions": [good, None, 7], "progress": ["x"], "attempts": [[]]},
        headers=team,
    )
    assert response.status_code == 200, response.text
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["accepted", "rejected", "rejected", "rejected", "rejected"]
    stored = await client.get(f"/api/v1/submissions/{good['id']}", headers=team)
    assert stored.status_code == 200


async def test_single_and_batch_submissions_decode_alike(
    client: Client, accounts: Accounts
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    household = await new_household(client, team, HAC_THANH)
    item = submission(household)
    item["surveyVersion"] = "1"  # a string: refused by both paths
    single = await client.post("/api/v1/submissions", json=item, headers=team)
    assert single.status_code == 400, single.text
    assert single.json()["errors"][0]["field"] == "surveyVersion"
    pushed = await client.post("/api/v1/sync/push", json={"submissions": [item]}, headers=team)
    assert pushed.json()["results"][0]["status"] == "rejected"
    assert pushed.json()["results"][0]["errors"][0]["field"] == "surveyVersion"


async def test_answer_keys_are_checked_alike_pushed_or_single(
    client: Client, accounts: Accounts
) -> None:
    """A key that no question has is an error of the validation (all of them listed); a key
    that cannot be a question's is an error of the decoding (the item's only one), at the
    answers that hold it, however the item comes."""
    team = await ward_team(accounts, HAC_THANH)
    household = await new_household(client, team, HAC_THANH)
    cases: list[tuple[dict[str, object], list[tuple[str, str]]]] = []
    unknown = submission(household, hh_colour="red")
    unknown_member = submission(household)
    unknown_member["members"][1]["answers"]["pet"] = None  # type: ignore[index]
    cases += [
        (unknown, [("answers.hh_colour", "unknown_question")]),
        (unknown_member, [("members[1].answers.pet", "unknown_question")]),
    ]
    for key in ("Bad-Key", "k" * 41):
        malformed = submission(household, hh_smart_devices=99, **{key: 1})
        malformed_member = submission(household, hh_smart_devices=99)
        malformed_member["members"][2]["answers"][key] = 1  # type: ignore[index]
        cases += [
            (malformed, [("answers", "format" if key == "Bad-Key" else "max_length")]),
            (
                malformed_member,
                [("members[2].answers", "format" if key == "Bad-Key" else "max_length")],
            ),
        ]
    pushed = await client.post(
        "/api/v1/sync/push", json={"submissions": [item for item, _ in cases]}, headers=team
    )
    for (item, expected), result in zip(cases, pushed.json()["results"], strict=True):
        assert result["status"] == "rejected"
        assert [(e["field"], e["code"]) for e in result["errors"]] == expected
        single = await client.post("/api/v1/submissions", json=item, headers=team)
        assert single.status_code == 400, single.text
        assert single.json()["errors"] == result["errors"]


async def test_labels_and_names_are_visible_text_without_numbers(
    client: Client, accounts: Accounts
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    for label in ("\u200b\u200b", "\ufeff", "\u202e", "   "):
        response = await client.post(
            "/api/v1/households", json={"wardCode": HAC_THANH, "label": label}, headers=team
        )
        assert response.status_code == 400, label
        assert response.json()["errors"][0]["code"] == "empty"
    for label in ("Nguyễn Văn An 0912345678", "Nhà 091 234 5678", "CCCD 038090001234"):
        response = await client.post(
            "/api/v1/households",
            json={"wardCode": HAC_THANH, "label": label},
            headers={**team, "Accept-Language": "en"},
        )
        assert response.status_code == 400, label
        error = response.json()["errors"][0]
        assert (error["field"], error["code"]) == ("label", "number_in_label")
        assert "phone or ID number" in error["message"]
    # Stored in NFC, trimmed, invisible controls gone; a retry with the same text is the same.
    decomposed = " Nha\u0300  so\u0302\u0301 12\u200b "
    household_id = str(uuid.uuid4())
    body = {"id": household_id, "wardCode": HAC_THANH, "label": decomposed}
    first = await client.post("/api/v1/households", json=body, headers=team)
    assert first.status_code in (200, 201), first.text
    assert first.json()["label"] == "Nhà số 12"
    again = await client.post("/api/v1/households", json=body, headers=team)
    assert again.json() == first.json()


async def test_a_bad_parameter_names_the_parameter_sent(
    client: AsyncTestClient[Litestar], accounts: Accounts
) -> None:
    team_id = await accounts.team(HAC_THANH)
    member = await accounts.create("team_member", HAC_THANH, team_id=team_id)
    headers = {**(await accounts.headers(member)), "Accept-Language": "en"}
    for query, name in (("cursor=garbage!", "cursor"), ("limit=many", "limit")):
        answer = await client.get(f"/api/v1/sync/pull?{query}", headers=headers)
        assert answer.status_code == 400, answer.text
        assert [e["field"] for e in answer.json()["errors"]] == [name]


async def test_a_choice_error_lists_the_allowed_values(
    client: AsyncTestClient[Litestar], accounts: Accounts
) -> None:
    admin = await accounts.headers(await accounts.create("admin"))
    for language, sentence in (
        ("en", "Is not one of the allowed values: "),
        ("vi", "Không nằm trong các giá trị cho phép: "),
    ):
        headers = {**admin, "Accept-Language": language}
        body = {"phone": "0912345670", "role": "king", "areaCode": "38"}
        answer = await client.post("/api/v1/users", json=body, headers=headers)
        assert answer.status_code == 400, answer.text
        (error,) = answer.json()["errors"]
        assert (error["field"], error["code"]) == ("role", "choice")
        assert error["message"].startswith(sentence)
        assert "province_official" in error["message"]
        assert "ward_official" in error["message"]
    answer = await client.get(
        "/api/v1/stats/areas/38/children?indicator=HH_BROADBAND&sort=biggest",
        headers={**admin, "Accept-Language": "en"},
    )
    assert answer.status_code == 400, answer.text
    assert "errors" in answer.json(), answer.text
    (error,) = answer.json()["errors"]
    assert error["field"] == "sort"
    assert error["message"] == "Is not one of the allowed values: coverage, gap, name, value."
    # A required parameter left out is named too.
    answer = await client.get(
        "/api/v1/stats/areas/38/children", headers={**admin, "Accept-Language": "en"}
    )
    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        {"field": "indicator", "code": "required", "message": "This field is required."}
    ]


def test_a_driver_error_after_a_lost_connection_is_a_503() -> None:
    """A connection lost mid-transaction surfaces as the driver's complaint about the
    rollback that followed (seen under PostgreSQL restarts): still a 503, not a 500."""
    request = RequestFactory().get("/api/v1/sync/push", headers={"Accept-Language": "en"})
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed")
        except asyncpg.ConnectionDoesNotExistError:
            raise asyncpg.InterfaceError("cannot call Transaction.__aexit__()") from None
    except asyncpg.InterfaceError as exc:
        lost = exc
    assert lost.__context__ is not None
    assert handle_exception(request, lost).status_code == 503
    alone = asyncpg.InterfaceError("cannot perform operation: another operation is in progress")
    assert handle_exception(request, alone).status_code == 500  # a bug stays a bug
