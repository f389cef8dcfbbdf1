"""Demo data for a fresh install: a real ward of Thanh Hóa, its team and officials."""

from __future__ import annotations

import uuid

import asyncpg

from api.config import Settings
from api.db import connect
from api.passwords import Passwords
from api.queries import accounts, audit
from api.queries.areas import AreaRecord, get_area, list_areas

DEMO_PROVINCE = "38"  # Thanh Hóa
DEMO_WARD_NAME = "hac thanh"  # Phường Hạc Thành, the provincial capital's central ward
DEMO_PASSWORD = "demo-password"  # noqa: S105 - development only: `demo` is refused in production
DEMO_TEAM_ID = uuid.UUID("5d1e0000-0000-4000-8000-000000000001")

# phone, role, display name
DEMO_USERS = [
    ("0900000001", "admin", "Quản trị viên"),
    ("0900000002", "province_official", "Cán bộ Sở KH&CN Thanh Hóa"),
    ("0900000003", "ward_official", "Cán bộ UBND phường"),
    ("0900000004", "team_member", "Tổ viên tổ công nghệ số"),
]


async def demo_ward(conn: asyncpg.Connection) -> AreaRecord:
    province = await get_area(conn, DEMO_PROVINCE)
    assert province is not None, "areas are not loaded: run `congdongso migrate`"
    wards = await list_areas(
        conn, parent_id=province.id, query_key=DEMO_WARD_NAME, after=None, limit=1
    )
    if not wards:  # fall back to the province's first ward in Vietnamese order
        wards = await list_areas(conn, parent_id=province.id, query_key=None, after=None, limit=1)
    return wards[0]


async def create_demo(dsn: str, settings: Settings) -> None:
    from api.phone import normalize_phone

    hasher = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    conn = await connect(dsn)
    try:
        ward = await demo_ward(conn)
        province = await get_area(conn, DEMO_PROVINCE)
        assert province is not None
        password_hash = await hasher.hash(DEMO_PASSWORD)
        async with conn.transaction():
            await accounts.insert_team(
                conn,
                team_id=DEMO_TEAM_ID,
                ward_id=ward.id,
                province_id=ward.province_id,
                name="Tổ công nghệ số cộng đồng 1",
            )
            for phone, role, name in DEMO_USERS:
                area = {"admin": None, "province_official": province}.get(role, ward)
                created = await accounts.insert_user(
                    conn,
                    user_id=uuid.uuid4(),
                    phone=normalize_phone(phone) or phone,
                    password_hash=password_hash,
                    role=role,
                    area_id=area.id if area else None,
                    province_id=area.province_id if area else None,
                    team_id=DEMO_TEAM_ID if role == "team_member" else None,
                    display_name=name,
                )
                if created:
                    await audit.record(
                        conn,
                        "user_created",
                        "user",
                        None,
                        actor_id=None,
                        province_id=area.province_id if area else None,
                        detail={"role": role, "via": "demo"},
                    )
    finally:
        await conn.close()
    print(f"Demo ward: {ward.name} ({ward.code}), {province.name}")
    print(f"Demo logins (password: {DEMO_PASSWORD}):")
    for phone, role, _ in DEMO_USERS:
        print(f"  {role:<18} {phone}")
