"""Every user-facing message exists in both catalogs, and errors follow Accept-Language."""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.i18n import format_number, format_rate, negotiate, translate

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
Client = AsyncTestClient[Litestar]


def _message_ids_in_code() -> set[str]:
    ids: set[str] = set()
    for directory in ("api", "schemas"):
        for _, _, message, _, _ in extract_from_dir(
            ROOT / directory, method_map=[("**.py", "python")], keywords=DEFAULT_KEYWORDS
        ):
            ids.add(message if isinstance(message, str) else message[0])
    return ids


@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_message_is_translated(language: str) -> None:
    with (ROOT / "i18n" / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=language)
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = _message_ids_in_code() - translated
    assert not missing, f"run `make messages` and translate into {language}: {sorted(missing)}"


def test_vietnamese_is_really_vietnamese() -> None:
    # A catalog that merely copies the English ids would pass the test above.
    assert translate("vi", "Not found") == "Không tìm thấy"
    assert translate("en", "Not found") == "Not found"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "vi"),
        ("", "vi"),
        ("en", "en"),
        ("en-US,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5", "en"),
        ("vi-VN", "vi"),
        ("en;q=0.2, vi;q=0.8", "vi"),
        ("en_GB", "en"),
        ("de", "vi"),
        ("*", "vi"),
        ("en;q=0", "vi"),
        ("en;q=abc", "vi"),
    ],
)
def test_language_negotiation(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_cldr_formatting() -> None:
    assert format_rate(0.756, "vi") == "75,6\u00a0%"
    assert format_rate(0.756, "en") == "75.6%"
    assert format_number(1234567, "vi") == "1.234.567"
    assert format_number(1234567, "en") == "1,234,567"


async def test_problem_json_in_both_languages(client: Client) -> None:
    body = {"phone": 123, "password": ""}
    vi = await client.post("/api/v1/auth/login", json=body)
    en = await client.post("/api/v1/auth/login", json=body, headers={"Accept-Language": "en"})
    for response in (vi, en):
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
    assert vi.headers["content-language"] == "vi"
    assert en.headers["content-language"] == "en"
    assert vi.json()["title"] == "Dữ liệu nhập không hợp lệ"
    assert en.json()["title"] == "Invalid input"
    assert vi.json()["code"] == en.json()["code"] == "validation_failed"
    assert vi.json()["status"] == 400
    assert en.json()["errors"] == [{"field": "phone", "code": "type", "message": "Expected text."}]
    assert vi.json()["errors"] == [
        {"field": "phone", "code": "type", "message": "Cần một chuỗi văn bản."}
    ]


async def test_missing_field_names_the_field(client: Client) -> None:
    response = await client.post(
        "/api/v1/auth/login", json={"phone": "0912345678"}, headers={"Accept-Language": "en"}
    )
    assert response.json()["errors"] == [
        {"field": "password", "code": "required", "message": "This field is required."}
    ]


async def test_unknown_route_and_method(client: Client) -> None:
    missing = await client.get("/api/v1/nothing-here", headers={"Accept-Language": "en"})
    assert missing.status_code == 404
    assert missing.json()["title"] == "Not found"
    wrong_method = await client.delete("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["allow"]


def test_every_catalog_entry_is_translated_in_both_languages_with_its_placeholders() -> None:
    """Walk the template catalog: each message has a vi and an en text, not fuzzy, naming
    exactly the placeholders of its id (a lost ``%(allowed)s`` would drop the choices)."""
    import re

    placeholder = re.compile(r"%\((\w+)\)s")
    with (ROOT / "i18n" / "messages.pot").open("rb") as f:
        template = [m.id for m in read_po(f) if m.id]
    assert template
    for language in ("vi", "en"):
        with (ROOT / "i18n" / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
            catalog = read_po(f, locale=language)
        for message_id in template:
            message = catalog.get(message_id)
            assert message is not None, (language, message_id)
            assert message.string, (language, message_id)
            assert not message.fuzzy, (language, message_id)
            assert isinstance(message.string, str)
            wanted = set(placeholder.findall(str(message_id)))
            assert set(placeholder.findall(message.string)) == wanted, (language, message_id)
