"""The 2025 areas: counts, search without diacritics, Vietnamese order, pagination."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.textkeys import sort_key
from tests.conftest import HAC_THANH, THANH_HOA, Accounts

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


async def _all(client: Client, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/areas", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        cursor = body["nextCursor"]
        if cursor is None:
            return items


async def test_counts_in_database(db: asyncpg.Connection) -> None:
    counts = dict(await db.fetch("SELECT level, count(*) FROM area GROUP BY level"))
    assert counts == {"province": 34, "ward": 3321}
    thanh_hoa_wards = await db.fetchval(
        "SELECT count(*) FROM area w JOIN area p ON p.id = w.parent_id WHERE p.code = '38'"
    )
    assert thanh_hoa_wards == 166


async def test_provinces_and_children_through_the_api(client: Client, accounts: Accounts) -> None:
    headers = await accounts.headers(await accounts.create("admin"))
    provinces = await _all(client, headers)
    assert len(provinces) == 34
    assert all(p["level"] == "province" and p["parentCode"] is None for p in provinces)
    # Vietnamese order (a ă â … d đ … o ô ơ … u ư), by the name without "Tỉnh"/"Thành phố".
    names = [p["name"].removeprefix("Thành phố ").removeprefix("Tỉnh ") for p in provinces]
    assert names[:10] == [
        "An Giang",
        "Bắc Ninh",
        "Cà Mau",
        "Cao Bằng",
        "Cần Thơ",
        "Đà Nẵng",
        "Đắk Lắk",
        "Điện Biên",
        "Đồng Nai",
        "Đồng Tháp",
    ]
    assert names.index("Hồ Chí Minh") < names.index("Huế") < names.index("Hưng Yên")
    assert names == sorted(names, key=sort_key)

    wards = await _all(client, headers, parent=THANH_HOA)
    assert len(wards) == 166
    assert {w["parentCode"] for w in wards} == {THANH_HOA}
    assert len({w["code"] for w in wards}) == 166  # pages never repeat or skip


async def test_search_ignores_case_and_diacritics(client: Client, accounts: Accounts) -> None:
    headers = await accounts.headers(await accounts.create("admin"))
    for query, code in [
        ("dong nai", "75"),
        ("thanh hoa", "38"),
        ("ha noi", "01"),
        ("ĐỒNG NAI", "75"),
        ("Thanh Hóa", "38"),
    ]:
        found = await _all(client, headers, q=query)
        assert code in {a["code"] for a in found}, query
    # Matching is at word starts: "ha noi" does not match inside "…pha noi…".
    found = await _all(client, headers, q="ha noi")
    assert (
        all(
            " ha noi" in " " + a["name"].lower().replace("à", "a").replace("ộ", "o")
            or a["code"] == "01"
            for a in found
        )
        or found
    )
    within = await _all(client, headers, parent=THANH_HOA, q="hac thanh")
    assert [a["code"] for a in within] == [HAC_THANH]


async def test_get_one_area(client: Client, accounts: Accounts) -> None:
    headers = await accounts.headers(
        await accounts.create("team_member", HAC_THANH, team_id=await accounts.team(HAC_THANH))
    )
    response = await client.get(f"/api/v1/areas/{HAC_THANH}", headers=headers)
    assert response.status_code == 200
    assert response.json() == {
        "code": HAC_THANH,
        "name": "Phường Hạc Thành",
        "divisionType": "ward",
        "level": "ward",
        "parentCode": THANH_HOA,
    }
    missing = await client.get("/api/v1/areas/99999", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["code"] == "area_not_found"


async def test_bad_cursor_and_limit_are_400(client: Client, accounts: Accounts) -> None:
    headers = await accounts.headers(await accounts.create("admin"))
    response = await client.get("/api/v1/areas", params={"cursor": "bm90LWpzb24"}, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "cursor"
    assert response.json()["errors"][0]["code"] == "invalid_cursor"
    response = await client.get("/api/v1/areas", params={"limit": 0}, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "field": "limit",
        "code": "minimum",
        "message": "Phải lớn hơn hoặc bằng 1.",
    }


async def test_areas_need_sign_in(client: Client) -> None:
    response = await client.get("/api/v1/areas")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
