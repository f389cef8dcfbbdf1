"""Demo data for a fresh install: a real ward of Thanh Hóa, its team, officials and a few
hundred households with varied, realistic answers."""

from __future__ import annotations

import random
import uuid

import asyncpg
import msgspec
from tqdm import tqdm

from api.auth import Principal
from api.config import Settings
from api.db import connect
from api.ingest import SurveyCache, ingest
from api.passwords import Passwords
from api.phone import normalize_phone
from api.queries import accounts, audit, households
from api.queries.areas import AreaRecord, get_area, list_areas
from api.queries.surveys import HOUSEHOLD_DIGITAL
from api.stats.catalog import load_catalog
from api.stats.counters import recounting
from api.stats.keys import RecordKeys, record_keys

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


def _household_answers(rng: random.Random, household_id: uuid.UUID) -> dict[str, object]:
    """A plausible household: urban Thanh Hóa, 2025 (most adults online, fewer seniors)."""
    size = rng.choices([1, 2, 3, 4, 5, 6], weights=[5, 15, 25, 30, 17, 8])[0]
    members: list[dict[str, object]] = []
    smartphones = 0
    for index in range(size):
        if index < 2:
            born = rng.randint(1950, 2000)
        else:
            born = rng.randint(1940, 2024) if rng.random() < 0.2 else rng.randint(2000, 2024)
        age = 2025 - born
        adult = age >= 15
        online = adult and rng.random() < (0.9 if age < 60 else 0.55)
        answers: dict[str, object] = {
            "birth_year": born,
            "sex": rng.choice(["female", "male"]),
            "smartphone": online or (age >= 10 and rng.random() < 0.3),
            "vneid": "none"
            if age < 14
            else rng.choices(
                ["none", "level1", "level2"], weights=[8, 12, 80] if online else [40, 30, 30]
            )[0],
            "cloud_accounts": rng.randint(1, 3) if online else 0,
            "digital_signature": online and rng.random() < 0.45,
            "epay": online and rng.random() < 0.8,
            "eps_used": online and rng.random() < 0.5,
            "skills_trained": adult and rng.random() < 0.6,
        }
        if adult and rng.random() < 0.3:
            answers["help_wanted"] = rng.sample(
                ["vneid", "signature", "cloud", "epay", "eps", "scams"], k=rng.randint(1, 2)
            )
        smartphones += bool(answers["smartphone"])
        members.append({"memberId": str(uuid.uuid4()), "answers": answers})
    broadband = rng.choices(
        ["fibre", "other_fixed", "mobile_only", "none"], weights=[70, 5, 18, 7]
    )[0]
    return {
        "id": str(uuid.uuid4()),
        "surveyId": str(HOUSEHOLD_DIGITAL),
        "surveyVersion": 1,
        "householdId": str(household_id),
        "collectedAt": f"2025-{rng.randint(3, 10):02d}-{rng.randint(1, 28):02d}T09:00:00+07:00",
        "consent": {"given": True, "noticeVersion": "2025-1"},
        "answers": {
            "hh_size": size,
            "hh_broadband": broadband,
            "hh_smart_devices": smartphones + rng.randint(0, 2),
        },
        "members": members,
    }


async def _demo_households(
    conn: asyncpg.Connection, ward: AreaRecord, count: int, keys: RecordKeys
) -> int:
    """Households with realistic submissions, stored through the same path as a sync push."""
    member = await conn.fetchrow(
        "SELECT id FROM app_user WHERE phone = $1", normalize_phone(DEMO_USERS[3][0])
    )
    assert member is not None
    existing = await conn.fetchval("SELECT count(*) FROM household WHERE ward_id = $1", ward.id)
    if existing >= count:
        return 0
    principal = Principal(
        user_id=member["id"],
        role="team_member",
        area_id=ward.id,
        province_id=ward.province_id,
        team_id=DEMO_TEAM_ID,
    )
    rng = random.Random(2025)  # noqa: S311 - reproducible demo data, not security
    cache = SurveyCache()
    catalog = await load_catalog(conn, keys)
    stored = 0
    with tqdm(total=count - existing, desc="demo households", unit="hh") as progress:
        while existing + stored < count:
            batch: list[msgspec.Raw] = []  # as a client sends them
            for _ in range(min(50, count - existing - stored)):
                household_id = uuid.uuid4()
                async with conn.transaction(), recounting(conn, catalog, [household_id]):
                    await households.insert_household(
                        conn,
                        household_id=household_id,
                        ward_id=ward.id,
                        province_id=ward.province_id,
                        hamlet_id=None,
                        label=f"Hộ {existing + stored + len(batch) + 1}",
                        created_by=member["id"],
                    )
                item = _household_answers(rng, household_id)
                batch.append(msgspec.Raw(msgspec.json.encode(item)))
            results = await ingest(conn, cache, catalog, principal, batch, "vi")
            assert all(r.status == "accepted" for r in results), results
            stored += len(batch)
            progress.update(len(batch))
    return stored


async def create_demo(dsn: str, settings: Settings, household_count: int = 300) -> None:
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
        added = await _demo_households(conn, ward, household_count, record_keys(settings))
    finally:
        await conn.close()
    print(
        f"Demo ward: {ward.name} ({ward.code}), {province.name}: "
        f"{household_count} households ({added} added now)"
    )
    print(f"Demo logins (password: {DEMO_PASSWORD}):")
    for phone, role, _ in DEMO_USERS:
        print(f"  {role:<18} {phone}")
