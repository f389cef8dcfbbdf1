"""Areas: the official 2025 provinces and wards (hamlets join them in the survey work)."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from schemas.areas import Area, AreaLevel, DivisionType

SCHEME = "vn2025"  # the 2025 reform's codes; codes are only unique within a scheme


class AreaRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    code: str
    name: str
    division_type: DivisionType
    level: AreaLevel
    parent_id: int | None
    parent_code: str | None
    province_id: int
    sort_key: str

    def public(self) -> Area:
        return Area(
            code=self.code,
            name=self.name,
            division_type=self.division_type,
            level=self.level,
            parent_code=self.parent_code,
        )


_COLUMNS = """a.id, a.code, a.name, a.division_type, a.level, a.parent_id,
              p.code AS parent_code, a.province_id, a.sort_key"""


async def get_area(conn: asyncpg.Connection, code: str) -> AreaRecord | None:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM area a LEFT JOIN area p ON p.id = a.parent_id
            WHERE a.scheme = $1 AND a.code = $2""",
        SCHEME,
        code,
    )
    return None if row is None else msgspec.convert(row, AreaRecord, from_attributes=True)


async def get_area_by_id(conn: asyncpg.Connection, area_id: int) -> AreaRecord | None:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM area a LEFT JOIN area p ON p.id = a.parent_id
            WHERE a.id = $1""",
        area_id,
    )
    return None if row is None else msgspec.convert(row, AreaRecord, from_attributes=True)


async def list_areas(
    conn: asyncpg.Connection,
    *,
    parent_id: int | None,
    query_key: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[AreaRecord]:
    """Children of ``parent_id``; without a parent, the provinces, or every area when searching.

    ``query_key`` is a search key (see api.textkeys); it matches at the start of a word.
    Ordered by Vietnamese collation (sort_key), keyset-paginated on (sort_key, code).
    """
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM area a LEFT JOIN area p ON p.id = a.parent_id
            WHERE a.scheme = $1
              AND CASE WHEN $2::int IS NOT NULL THEN a.parent_id = $2
                       WHEN $3::text IS NOT NULL THEN true
                       ELSE a.level = 'province' END
              AND ($3::text IS NULL OR ' ' || a.search_key LIKE '% ' || $3 || '%')
              AND ($4::text IS NULL OR (a.sort_key, a.code) > ($4, $5::text COLLATE "C"))
            ORDER BY a.sort_key, a.code
            LIMIT $6""",
        SCHEME,
        parent_id,
        query_key,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [msgspec.convert(row, AreaRecord, from_attributes=True) for row in rows]


class HamletRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A hamlet / residential group, shown as an area one level below its ward."""

    id: uuid.UUID
    name: str
    ward_id: int
    ward_code: str
    province_id: int
    sort_key: str

    def public(self) -> Area:
        return Area(
            code=str(self.id),
            name=self.name,
            division_type="hamlet",
            level="hamlet",
            parent_code=self.ward_code,
        )


_HAMLET = """SELECT h.id, h.name, h.ward_id, w.code AS ward_code, h.province_id, h.sort_key
             FROM hamlet h JOIN area w ON w.id = h.ward_id"""


async def get_hamlet(conn: asyncpg.Connection, hamlet_id: uuid.UUID) -> HamletRecord | None:
    row = await conn.fetchrow(f"{_HAMLET} WHERE h.id = $1", hamlet_id)
    return None if row is None else msgspec.convert(row, HamletRecord, from_attributes=True)


async def list_hamlets(
    conn: asyncpg.Connection,
    *,
    ward_id: int,
    query_key: str | None,
    after: tuple[str, str] | None,
    limit: int,
) -> list[HamletRecord]:
    rows = await conn.fetch(
        f"""{_HAMLET}
            WHERE h.ward_id = $1
              AND ($2::text IS NULL OR ' ' || h.search_key LIKE '% ' || $2 || '%')
              AND ($3::text IS NULL OR (h.sort_key, h.id::text) > ($3, $4::text))
            ORDER BY h.sort_key, h.id::text
            LIMIT $5""",
        ward_id,
        query_key,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [msgspec.convert(row, HamletRecord, from_attributes=True) for row in rows]


async def insert_hamlet(
    conn: asyncpg.Connection,
    *,
    hamlet_id: uuid.UUID,
    ward_id: int,
    province_id: int,
    name: str,
    search_key: str,
    sort_key: str,
) -> bool:
    """False when the id is taken or the ward already has a hamlet of that name."""
    inserted = await conn.fetchval(
        """INSERT INTO hamlet (id, ward_id, province_id, name, search_key, sort_key)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING true""",
        hamlet_id,
        ward_id,
        province_id,
        name,
        search_key,
        sort_key,
    )
    return bool(inserted)


async def hamlet_ward(conn: asyncpg.Connection, hamlet_id: uuid.UUID) -> int | None:
    ward_id: int | None = await conn.fetchval("SELECT ward_id FROM hamlet WHERE id = $1", hamlet_id)
    return ward_id
