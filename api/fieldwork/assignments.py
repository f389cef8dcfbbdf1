"""Who visits whom: a team's assignments (hamlets or single households per member), the
households a member is given, and the team's progress. SQL beside each function.

Teams are the ``team`` rows (one ward each); members are the ``team_member`` accounts whose
``team_id`` is the team. A hamlet given to a member gives them every household of it,
including those registered later.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from api.stats.catalog import TIME_ZONE
from schemas.fieldwork import Assignment, MemberProgress, TeamProgress

VIETNAM = ZoneInfo(TIME_ZONE)


async def team_members(conn: asyncpg.Connection, team_id: uuid.UUID) -> dict[uuid.UUID, str | None]:
    rows = await conn.fetch(
        """SELECT id, display_name FROM app_user
           WHERE team_id = $1 AND role = 'team_member' ORDER BY created_at, id""",
        team_id,
    )
    return {row["id"]: row["display_name"] for row in rows}


async def assignments(conn: asyncpg.Connection, team_id: uuid.UUID) -> list[Assignment]:
    rows = await conn.fetch(
        """SELECT member_id, hamlet_id, household_id FROM team_assignment
           WHERE team_id = $1 ORDER BY member_id, hamlet_id NULLS LAST, household_id""",
        team_id,
    )
    return [msgspec.convert(row, Assignment, from_attributes=True) for row in rows]


async def member_assignments(conn: asyncpg.Connection, member_id: uuid.UUID) -> list[Assignment]:
    rows = await conn.fetch(
        """SELECT member_id, hamlet_id, household_id FROM team_assignment
           WHERE member_id = $1 ORDER BY hamlet_id NULLS LAST, household_id""",
        member_id,
    )
    return [msgspec.convert(row, Assignment, from_attributes=True) for row in rows]


async def outside_ward(
    conn: asyncpg.Connection, ward_id: int, hamlets: list[uuid.UUID], households: list[uuid.UUID]
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """The hamlets and households of the lists that are not in the ward."""
    found_hamlets = {
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM hamlet WHERE id = ANY($1::uuid[]) AND ward_id = $2", hamlets, ward_id
        )
    }
    found_households = {
        row["id"]
        for row in await conn.fetch(
            "SELECT id FROM household WHERE id = ANY($1::uuid[]) AND ward_id = $2",
            households,
            ward_id,
        )
    }
    return (
        [h for h in hamlets if h not in found_hamlets],
        [h for h in households if h not in found_households],
    )


async def replace_assignments(
    conn: asyncpg.Connection,
    team_id: uuid.UUID,
    ward_id: int,
    given: list[Assignment],
    assigned_by: uuid.UUID,
) -> None:
    await conn.execute("DELETE FROM team_assignment WHERE team_id = $1", team_id)
    await conn.execute(
        """INSERT INTO team_assignment (team_id, member_id, ward_id, hamlet_id, household_id,
                                        assigned_by)
           SELECT $1, member_id, $2, hamlet_id, household_id, $3
           FROM unnest($4::uuid[], $5::uuid[], $6::uuid[])
                AS a(member_id, hamlet_id, household_id)""",
        team_id,
        ward_id,
        assigned_by,
        [a.member_id for a in given],
        [a.hamlet_id for a in given],
        [a.household_id for a in given],
    )


_ASSIGNED = """EXISTS (SELECT 1 FROM team_assignment a
                       WHERE a.member_id = {member}
                         AND (a.household_id = h.id OR a.hamlet_id = h.hamlet_id))"""


async def assigned_households(
    conn: asyncpg.Connection,
    member_id: uuid.UUID,
    ward_id: int,
    after: uuid.UUID | None,
    limit: int,
) -> list[uuid.UUID]:
    """A member's assigned households in id order, after ``after``."""
    rows = await conn.fetch(
        f"""SELECT h.id FROM household h
            WHERE h.ward_id = $2 AND ($3::uuid IS NULL OR h.id > $3)
              AND {_ASSIGNED.format(member="$1")}
            ORDER BY h.id LIMIT $4""",
        member_id,
        ward_id,
        after,
        limit,
    )
    return [row["id"] for row in rows]


def month_bounds(period: str | None, today: date) -> tuple[str, datetime, datetime, date]:
    """(YYYY-MM, month start, next month's start, Monday of the week counted), in Vietnam
    time. The week is the current one, or the period's last week when it is over."""
    year, month = (today.year, today.month) if period is None else map(int, period.split("-"))
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    reference = min(today, following - timedelta(days=1))
    monday = reference - timedelta(days=reference.weekday())

    def start(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=VIETNAM)

    return f"{year:04d}-{month:02d}", start(first), start(following), monday


async def team_progress(
    conn: asyncpg.Connection,
    team_id: uuid.UUID,
    ward_id: int,
    period: str | None,
    today: date,
) -> TeamProgress:
    label, month_start, month_end, monday = month_bounds(period, today)
    week_start = datetime(monday.year, monday.month, monday.day, tzinfo=VIETNAM)
    members = await team_members(conn, team_id)
    rows = await conn.fetch(
        f"""WITH member AS (
                SELECT unnest($1::uuid[]) AS id
            ), assigned AS (
                SELECT m.id AS member_id, h.id AS household_id, h.current_submission_id
                FROM member m JOIN household h ON h.ward_id = $2
                 AND {_ASSIGNED.format(member="m.id")}
            ), visits AS (
                SELECT s.submitted_by AS member_id, count(DISTINCT s.household_id) AS month
                FROM submission s
                WHERE s.ward_id = $2 AND s.submitted_by = ANY($1::uuid[])
                  AND s.collected_at >= $3 AND s.collected_at < $4
                GROUP BY 1
            ), week_visits AS (
                SELECT s.submitted_by AS member_id, count(DISTINCT s.household_id) AS week
                FROM submission s
                WHERE s.ward_id = $2 AND s.submitted_by = ANY($1::uuid[])
                  AND s.collected_at >= $5 AND s.collected_at < $5 + '7 days'::interval
                GROUP BY 1
            ), waiting AS (
                SELECT s.submitted_by AS member_id, count(*) AS waiting
                FROM submission s
                WHERE s.ward_id = $2 AND s.submitted_by = ANY($1::uuid[])
                  AND NOT EXISTS (SELECT 1 FROM submission_review r WHERE r.submission_id = s.id)
                  AND (EXISTS (SELECT 1 FROM household h WHERE h.current_submission_id = s.id)
                       OR EXISTS (SELECT 1 FROM survey_head sh WHERE sh.submission_id = s.id))
                GROUP BY 1
            )
            SELECT m.id AS member_id,
                   (SELECT count(*) FROM assigned a WHERE a.member_id = m.id) AS assigned,
                   (SELECT count(*) FROM assigned a
                    WHERE a.member_id = m.id AND a.current_submission_id IS NULL
                      AND NOT EXISTS (SELECT 1 FROM survey_head sh
                                      WHERE sh.household_id = a.household_id)) AS never,
                   coalesce(v.month, 0) AS month, coalesce(w.week, 0) AS week,
                   coalesce(r.waiting, 0) AS waiting
            FROM member m
            LEFT JOIN visits v ON v.member_id = m.id
            LEFT JOIN week_visits w ON w.member_id = m.id
            LEFT JOIN waiting r ON r.member_id = m.id""",
        list(members),
        ward_id,
        month_start,
        month_end,
        week_start,
    )
    by_member = {row["member_id"]: row for row in rows}
    unassigned: int = await conn.fetchval(
        f"""SELECT count(*) FROM household h
            WHERE h.ward_id = $2 AND h.current_submission_id IS NULL
              AND NOT EXISTS (SELECT 1 FROM survey_head sh WHERE sh.household_id = h.id)
              AND NOT EXISTS (SELECT 1 FROM unnest($1::uuid[]) AS m(id)
                              WHERE {_ASSIGNED.format(member="m.id")})""",
        list(members),
        ward_id,
    )
    return TeamProgress(
        team_id=team_id,
        period=label,
        week_start=monday,
        members=[
            MemberProgress(
                member_id=member_id,
                display_name=name,
                assigned_households=by_member[member_id]["assigned"],
                visited_this_week=by_member[member_id]["week"],
                visited_this_month=by_member[member_id]["month"],
                waiting_for_review=by_member[member_id]["waiting"],
                never_visited=by_member[member_id]["never"],
            )
            for member_id, name in members.items()
        ],
        unassigned_never_visited=unassigned,
    )
