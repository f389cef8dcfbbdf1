"""Property-based contract test: schemathesis drives every operation of the OpenAPI document
against a real server (uvicorn in a thread, a real database), signed in as an admin and as
a team member.

It fails on any 5xx, any status or content type the document does not declare, any response
body that does not match its declared schema, and any schema-valid request answered 400.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from api import embedded
from api.app import create_app
from api.config import Settings
from api.db import connect
from api.passwords import Passwords
from tests.conftest import FAST_ARGON2, PASSWORD, _create_database, _drop_database, serve_in_thread

TEAM_WARD = "14797"  # Phường Hạc Thành


async def _seed(dsn: str) -> dict[str, str]:
    """An admin and a team member of a ward team; their phones by role."""
    conn = await connect(dsn)
    try:
        password_hash = await Passwords(1, 1024, 1).hash(PASSWORD)
        phones = {"admin": "+84911000001", "team_member": "+84911000002"}
        await conn.execute(
            "INSERT INTO app_user (id, phone, password_hash, role) VALUES ($1, $2, $3, 'admin')",
            uuid.uuid4(),
            phones["admin"],
            password_hash,
        )
        team = uuid.uuid4()
        await conn.execute(
            """INSERT INTO team (id, ward_id, province_id, name)
               SELECT $1, id, province_id, 'Tổ 1' FROM area WHERE code = $2""",
            team,
            TEAM_WARD,
        )
        await conn.execute(
            """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id, team_id)
               SELECT $1, $2, $3, 'team_member', id, province_id, $4 FROM area WHERE code = $5""",
            uuid.uuid4(),
            phones["team_member"],
            password_hash,
            team,
            TEAM_WARD,
        )
        return phones
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def live_server(
    server_dsn: str, template_db: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    name = f"cds_contract_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(server_dsn, name, template=template_db))
    dsn = embedded.with_database(server_dsn, name)
    phones = asyncio.run(_seed(dsn))
    settings_ = Settings(
        env="test",
        data_dir=str(Path(tmp_path_factory.mktemp("contract"))),
        jwt_secret="contract-secret-contract-secret-32",
        **FAST_ARGON2,  # type: ignore[arg-type]
    )
    with serve_in_thread(create_app(dsn, settings_)) as base:
        tokens = {
            role: httpx.post(
                f"{base}/api/v1/auth/login", json={"phone": phone, "password": PASSWORD}
            ).json()["accessToken"]
            for role, phone in phones.items()
        }
        yield base, tokens
    asyncio.run(_drop_database(server_dsn, name))


@pytest.fixture(scope="module")
def api_schema(live_server: tuple[str, dict[str, str]]) -> schemathesis.BaseSchema:
    base, _ = live_server
    return schemathesis.openapi.from_url(f"{base}/schema/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


# A 400 to a schema-valid request is a failure unless every error in it is a rule, not a
# form: a code of the domain, which JSON Schema cannot state — `consent_required`,
# `number_in_label`, `empty` once invisible characters are removed, `not_a_fraction` (a
# target above 1 for an indicator whose unit is a fraction; the unit is the indicator's),
# `future_period` and `period_not_over` (they depend on today), `invalid_cursor` (a cursor
# is whatever the server wrote into the previous page's `nextCursor`; the document says its
# alphabet and length and that anything else is refused), a survey condition that points
# forward, … — and `required` for a field the schema makes optional because only some roles
# need it. A form error (a type, pattern, length or range), on a plain field or inside list
# items and map keys and values (api/openapi.py documents those from msgspec's schema),
# fails the test; except `invalid` on a cross-reference inside a definition (`relevant.key`
# naming a question that does not exist).
FORM_CODES = {
    "type", "format", "min_length", "max_length", "min_items", "max_items", "minimum",
    "maximum", "choice", "unknown_field", "invalid",
}  # fmt: skip


def _allowed(error: dict[str, str]) -> bool:
    field, code = error["field"], error["code"]
    if code not in FORM_CODES:  # includes `required`, a form code only when unconditional
        return True
    return code == "invalid" and "." in field


@schemathesis.check
def valid_requests_are_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    if response.status_code == 400:
        errors = response.json().get("errors") or []
        if errors and all(_allowed(error) for error in errors):
            return None
    return positive_data_acceptance(ctx, response, case)


def _check(case: schemathesis.Case, token: str) -> None:
    if case.operation.path == "/api/v1/auth/logout" and isinstance(case.body, dict):
        # Logging the caller out everywhere would only test that logging out works.
        case.body = {"refreshToken": "not-a-real-token"}
    # Every check, with these two adjusted:
    # - positive_data_acceptance: as above, but for the errors _allowed() explains;
    # - negative_data_rejection: unknown query parameters are ignored on purpose (an older
    #   server must not break a newer app), and the token is re-added to every case.
    # Missing and bad tokens are covered by test_auth.py.
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
        additional_checks=[valid_requests_are_accepted],
    )


# Bounded for `make test`: generated cases only (schemathesis's coverage cases, run as
# explicit examples, are many per operation), no shrinking.
SETTINGS = settings(
    max_examples=5,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@SETTINGS
def test_every_operation_honours_the_contract_as_admin(
    case: schemathesis.Case, live_server: tuple[str, dict[str, str]]
) -> None:
    _check(case, live_server[1]["admin"])


@schema.parametrize()
@SETTINGS
def test_every_operation_honours_the_contract_as_team_member(
    case: schemathesis.Case, live_server: tuple[str, dict[str, str]]
) -> None:
    _check(case, live_server[1]["team_member"])
