"""Closing a ward's month: its figures are frozen as of the closing time.

Statistics stay live (a late submission collected in a month still moves the counters), but
once a ward's officials close a month, the ward's cards for that month (and for the quarter
or year it ends) read the counters stored at closing instead, and say "closed on … by …".
Province and national cards stay live; forecasts too. The route is
``POST /stats/areas/{wardCode}/periods/{period}/close``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec
from babel.dates import format_date
from litestar import Request, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter
from litestar.security.jwt import Token

from api.auth import Principal, requires_role
from api.errors import Conflict, NotFound, invalid, problems
from api.i18n import FORMAT_LOCALES, N_, negotiate, translate
from api.params import AreaCode
from api.queries import audit
from api.routes.auth import client_addr
from api.stats import counters as q
from api.stats.catalog import TIME_ZONE
from api.stats.cells import EMPTY, Cell, add
from api.stats.periods import MONTH_PATTERN, Period, parse_period, today
from schemas.stats import ClosedPeriod

VIETNAM = ZoneInfo(TIME_ZONE)
Month = Annotated[str, Parameter(pattern=MONTH_PATTERN, description="A month, YYYY-MM.")]
CLOSED_TEXT = N_("Closed on %(date)s by %(name)s")
SOMEONE = N_("a ward official")


class Closed(msgspec.Struct, frozen=True):
    cells: dict[str, Cell]
    closed_at: datetime
    closed_by: str | None

    def public(self, language: str) -> ClosedPeriod:
        day = format_date(
            self.closed_at.astimezone(VIETNAM).date(), "short", locale=FORMAT_LOCALES[language]
        )
        name = self.closed_by or translate(language, SOMEONE)
        return ClosedPeriod(
            closed_at=self.closed_at,
            closed_by=self.closed_by,
            text=translate(language, CLOSED_TEXT, {"date": day, "name": name}),
        )


async def closed_month(conn: asyncpg.Connection, ward_id: int, month: date) -> Closed | None:
    """The ward's month as closed, if it was."""
    row = await conn.fetchrow(
        """SELECT c.cells, c.closed_at, u.display_name
           FROM period_close c LEFT JOIN app_user u ON u.id = c.closed_by
           WHERE c.ward_id = $1 AND c.month = $2""",
        ward_id,
        month,
    )
    if row is None:
        return None
    cells = {measure: tuple(cell) for measure, cell in row["cells"].items()}
    return Closed(cells=cells, closed_at=row["closed_at"], closed_by=row["display_name"])


class WardNotFound(NotFound):
    code = "area_not_found"
    default_detail = N_("No ward with this code in your area.")


@post(
    "/stats/areas/{code:str}/periods/{period:str}/close",
    status_code=200,
    guards=[requires_role("ward_official")],
    tags=["stats"],
    responses=problems(400, 401, 403, 404, 409),
)
async def close_period(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    code: FromPath[AreaCode],
    period: FromPath[Month],
) -> ClosedPeriod:
    """Close a month of the caller's ward (``YYYY-MM``, once it is over); audited. From
    then on the ward's cards for that month show the figures as of now and say who closed
    it and when (``closed``); later submissions collected in that month no longer change
    them there (province and national figures stay live)."""
    caller = request.user
    place = await state.places.find(conn, code)
    if place is None or place.level != "ward" or place.id != caller.area_id:
        raise WardNotFound()
    assert place.id is not None
    assert place.province_id is not None
    now = today()
    parsed: Period = parse_period(period, now)
    assert parsed.end is not None
    if parsed.end >= date(now.year, now.month, 1):
        # A rule of the day (the document cannot say which months are over).
        raise invalid("period", "period_not_over", N_("Only a month that is over can be closed."))
    language = negotiate(request.headers.get("accept-language"))
    async with conn.transaction():
        deltas = await q.monthly_deltas(conn, [place.id], parsed.end)
        cells: dict[str, Cell] = {}
        for delta in deltas:
            cells[delta.measure] = add(cells.get(delta.measure, EMPTY), delta.cell)
        inserted = await conn.fetchval(
            """INSERT INTO period_close (ward_id, province_id, month, cells, closed_by)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true""",
            place.id,
            place.province_id,
            parsed.end,
            {measure: list(cell) for measure, cell in cells.items()},
            caller.user_id,
        )
        if not inserted:
            raise Conflict(N_("This month is already closed."), code="period_closed")
        await audit.record(
            conn,
            "period_closed",
            "area",
            place.code,
            actor_id=caller.user_id,
            province_id=place.province_id,
            client_addr=client_addr(request),
            detail={"period": period},
        )
        # Cards kept by every process for this province are rebuilt with the closed figures.
        await conn.execute("SELECT pg_notify('stats_changed', $1::text)", str(place.province_id))
    found = await closed_month(conn, place.id, parsed.end)
    assert found is not None
    return found.public(language)
