"""Areas: the official 2025 provinces and wards (hamlets join them in the survey work)."""

from __future__ import annotations

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
