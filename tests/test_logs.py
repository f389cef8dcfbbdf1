"""Logs an operator can use (api/logs.py): one JSON object per line, a request id on every
line and answer, application events, and never a secret or personal data."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.logs import JsonFormatter, event
from tests.conftest import HAC_THANH, PASSWORD, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    """What the service logs during the test, as the JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


async def test_request_ids_are_echoed_and_named_in_problems(client: Client) -> None:
    sent = {"X-Request-ID": "phone-7f3c2a9e-0001"}
    answer = await client.get("/api/v1/me", headers=sent)
    assert answer.status_code == 401
    assert answer.headers["x-request-id"] == "phone-7f3c2a9e-0001"
    assert answer.json()["instance"] == "urn:congdongso:request:phone-7f3c2a9e-0001"
    # A missing or unusable id is replaced by one of ours, still echoed.
    for headers in ({}, {"X-Request-ID": "bad id\twith spaces"}, {"X-Request-ID": "x" * 300}):
        answer = await client.get("/api/v1/nowhere", headers=headers)
        assert answer.status_code == 404
        generated = answer.headers["x-request-id"]
        assert len(generated) == 32
        assert answer.json()["instance"] == f"urn:congdongso:request:{generated}"
    assert (await client.get("/healthz")).headers["x-request-id"]


async def test_sign_ins_and_changes_are_events_without_secrets(
    client: Client, accounts: Accounts, log: io.StringIO
) -> None:
    admin = await accounts.create("admin")
    tokens = await accounts.login(admin)
    wrong = await client.post(
        "/api/v1/auth/login",
        json={"phone": admin.phone, "password": "not the password"},
        headers={"X-Request-ID": "sign-in-failure-1"},
    )
    assert wrong.status_code == 401
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    created = await client.post(
        "/api/v1/users",
        json={"phone": "0912345678", "role": "province_official", "areaCode": "38"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    changed = await client.patch(
        f"/api/v1/users/{created.json()['id']}",
        json={"role": "ward_official", "areaCode": HAC_THANH},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    written = log.getvalue()
    entries = [json.loads(line) for line in written.splitlines()]
    events = {entry["event"]: entry for entry in entries if "event" in entry}
    assert events["login"]["actor_id"] == str(admin.id)
    failed = events["login_failed"]
    assert failed["subject_id"] == str(admin.id)
    assert failed["requestId"] == "sign-in-failure-1"
    assert events["user_created"]["detail"]["role"] == "province_official"
    role = events["user_updated"]["detail"]["role"]
    assert role == {"from": "province_official", "to": "ward_official"}
    access = [e for e in entries if e["logger"] == "congdongso.access"]
    assert {"method", "route", "status", "ms", "requestId"} <= set(access[0])
    assert any(e["status"] == 401 and e["route"] == "/api/v1/auth/login" for e in access)
    # Never a password, token, phone number or activation code.
    for secret in (
        PASSWORD,
        "not the password",
        tokens["accessToken"],
        tokens["refreshToken"],
        admin.phone,
        "0912345678",
        "84912345678",
        created.json()["activationCode"],
    ):
        assert secret not in written


def test_events_refuse_secrets_and_personal_data() -> None:
    for field in ("password", "token", "phone", "answers", "activation_code"):
        with pytest.raises(ValueError, match="never log"):
            event("sign_in", **{field: "x"})
    with pytest.raises(ValueError, match="never log"):
        event("user_updated", detail={"phone": "0912345678"})
