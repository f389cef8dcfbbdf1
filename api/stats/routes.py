"""Ward statistics against the plan targets: cards, children, series, exports, targets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, NamedTuple, cast

import asyncpg
import msgspec
from litestar import Controller, MediaType, Request, Response, get, put
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response import Stream
from litestar.security.jwt import Token

from api.auth import Principal, Role, requires_role
from api.errors import Forbidden, NotFound, invalid, problems
from api.events import outbox
from api.i18n import N_, negotiate
from api.openapi import documented_header
from api.pagination import decode_cursor, encode_cursor
from api.params import AreaCode, Cursor
from api.queries import audit
from api.queries.accounts import get_user
from api.routes.auth import client_addr
from api.stats import counters as q
from api.stats import report
from api.stats.cardcache import NATION_GROUP, CardCache
from api.stats.cards import card, children, series, series_forecast
from api.stats.catalog import Catalog
from api.stats.chart import SVG_TYPE, render
from api.stats.exports import (
    CSV_TYPE,
    XLSX_TYPE,
    csv_stream,
    export_rows,
    xlsx_stream,
)
from api.stats.periods import PERIOD_PATTERN, Grain, Period, parse_period, today
from api.stats.places import Place, Places, may_read, sees_exact
from schemas.base import Page
from schemas.stats import Card, ChildRow, Indicator, NewTarget, Series, Target

READERS: tuple[Role, ...] = ("admin", "province_official", "ward_official", "team_member")
PeriodText = Annotated[
    str,
    Parameter(
        max_length=10,
        pattern=PERIOD_PATTERN,
        description="`current`, a month `2025-07`, a quarter `2025-Q3` or a year `2025`.",
    ),
]
IndicatorCode = Annotated[str, Parameter(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_]+$")]
ChildLimit = Annotated[int, Parameter(ge=1, le=500, description="Rows per page (1–500).")]
# An export waits this long for one of the export pool's connections between provinces.
EXPORT_WAIT = 30.0
PUBLIC_CACHE = "public, max-age=300"
PRIVATE_CACHE = "private, max-age=300"
REPORT_DISPOSITION = documented_header(
    "Content-Disposition",
    '`attachment; filename="congdongso-report-<code>-<period>-<YYYYMMDD>.xlsx"`',
)
EXPORT_DISPOSITION = documented_header(
    "Content-Disposition",
    '`attachment; filename="congdongso-<code>-<YYYYMMDD>.csv"` (or `.xlsx`)',
)
NO_STORE = documented_header("Cache-Control", "`no-store`: exports are personal to the caller.")
PRIVATE_CACHED = documented_header("Cache-Control", f"`{PRIVATE_CACHE}`")
PUBLIC_CACHED = documented_header("Cache-Control", f"`{PUBLIC_CACHE}`")
BY_LANGUAGE = documented_header("Vary", "`Accept-Language`: the body is in the caller's language.")


class StatsAreaNotFound(NotFound):
    code = "area_not_found"
    default_detail = N_("No area with this code in your scope.")


class ChildCursor(NamedTuple):
    """The sort key of the last row shown: the group (areas with no data first for ``gap``
    and ``coverage``: they are where teams should go; last for ``value``), then the figure,
    then the area's place in Vietnamese order (areas are fixed data)."""

    group: int
    figure: float
    order: int


def _indicator(catalog: Catalog, code: str) -> Indicator:
    found = catalog.by_code.get(code.upper())
    if found is None:
        raise invalid(
            "indicator",
            "unknown_indicator",
            N_("Unknown indicator; use one of %(codes)s."),
            codes=", ".join(catalog.codes),
        )
    return found


async def _readable(
    db: asyncpg.Connection | asyncpg.Pool, places: Places, principal: Principal, code: str
) -> Place:
    place = await places.find(db, code)
    if place is None or not may_read(principal, place):
        raise StatsAreaNotFound()
    return place


async def _series(
    conn: asyncpg.Connection,
    state: State,
    principal: Principal,
    place: Place,
    chosen: Indicator,
    grain: Grain,
    language: str,
) -> Series:
    exact = sees_exact(principal, place.id)
    points = await series(
        conn, state.places, place, chosen, grain, exact=exact, language=language, now=today()
    )
    return Series(
        area=place.public(language),
        indicator=chosen.code,
        name=getattr(chosen.name, language),
        unit=chosen.unit,
        grain=grain,
        points=points,
        forecast=await series_forecast(
            conn, state.places, place, chosen, points[-1].target, exact=exact, now=today()
        ),
    )


class StatsRoutes(Controller):
    path = "/stats/areas"
    tags = ["stats"]
    guards = [requires_role(*READERS)]

    @get("/{code:str}", responses=problems(401, 403, 404))
    async def get_area_stats(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        code: FromPath[AreaCode],
        period: FromQuery[PeriodText] = "current",
    ) -> Response[Card]:
        """The indicator card of a ward, a province or the nation (`VN`) for a period.

        Each household counts with its latest accepted submission as of the end of the
        period. Protected (cell key method) except for a ward official's or team member's
        own ward, which is exact.
        """
        place = await _readable(state.pool, state.places, request.user, code)
        return await _card_answer(
            state,
            place,
            parse_period(period, today()),
            exact=sees_exact(request.user, place.id),
            language=negotiate(request.headers.get("accept-language")),
        )

    @get("/{code:str}/children", responses=problems(401, 403, 404))
    async def list_area_stats_children(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        code: FromPath[AreaCode],
        indicator: FromQuery[IndicatorCode],
        period: FromQuery[PeriodText] = "current",
        sort: FromQuery[Literal["gap", "coverage", "value", "name"]] = "gap",
        cursor: FromQuery[Cursor] = None,
        limit: FromQuery[ChildLimit] = 100,
    ) -> Page[ChildRow]:
        """One row per child area (provinces of `VN`, wards of a province) for one indicator,
        with its coverage and forecast; `noData` flags areas with no figure to show (nobody
        surveyed, or withheld for privacy).

        `sort=gap` (default): areas with no data first (flagged: they are where teams should
        go), then the furthest behind their target. `sort=coverage`: no data first, then the
        lowest coverage. `sort=value`: the lowest value first, no data last. `sort=name`:
        Vietnamese order.
        """
        language = negotiate(request.headers.get("accept-language"))
        place = await _readable(conn, state.places, request.user, code)
        catalog = await state.indicators.get(conn)
        chosen = _indicator(catalog, indicator)
        rows = await children(
            conn, state.places, place, chosen, parse_period(period, today()), language
        )
        keyed = []
        for order, row in enumerate(rows):  # rows come in Vietnamese order
            value, no_data = row.indicator, row.indicator.value is None
            if sort == "gap":
                key = ChildCursor(0 if no_data else 1, -(value.gap or 0.0), order)
            elif sort == "coverage":
                covered = row.coverage.value
                key = ChildCursor(0 if covered is None else 1, covered or 0.0, order)
            elif sort == "value":
                key = ChildCursor(1 if no_data else 0, value.value or 0.0, order)
            else:
                key = ChildCursor(0, 0.0, order)
            keyed.append((key, row))
        keyed.sort(key=lambda item: item[0])
        after = decode_cursor(cursor, ChildCursor)
        shown = [item for item in keyed if after is None or item[0] > after][: limit + 1]
        return Page(
            items=[
                ChildRow(
                    area=row.place.public(language),
                    indicator=row.indicator,
                    coverage=row.coverage,
                    no_data=row.indicator.value is None,
                )
                for _, row in shown[:limit]
            ],
            next_cursor=encode_cursor(shown[limit - 1][0]) if len(shown) > limit else None,
        )

    @get("/{code:str}/series", responses=problems(401, 403, 404))
    async def get_area_stats_series(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        code: FromPath[AreaCode],
        indicator: FromQuery[IndicatorCode],
        grain: FromQuery[Grain] = "month",
    ) -> Series:
        """One indicator over the last 24 months (8 quarters, 5 years), oldest first."""
        language = negotiate(request.headers.get("accept-language"))
        place = await _readable(conn, state.places, request.user, code)
        catalog = await state.indicators.get(conn)
        return await _series(
            conn, state, request.user, place, _indicator(catalog, indicator), grain, language
        )

    @get(
        "/{code:str}/chart.svg",
        media_type=SVG_TYPE,
        responses=problems(400, 401, 403, 404),
        response_headers=[PRIVATE_CACHED, BY_LANGUAGE],
    )
    async def get_area_stats_chart(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        code: FromPath[AreaCode],
        indicator: FromQuery[IndicatorCode],
    ) -> Response[str]:
        """The monthly series of one indicator against its target as a small accessible SVG
        (`role="img"`, a title and a description, axis labels, the target as a dashed line),
        in the caller's language: the same figures as the series endpoint. Cacheable by the
        caller's browser for 5 minutes.
        """
        language = negotiate(request.headers.get("accept-language"))
        place = await _readable(conn, state.places, request.user, code)
        catalog = await state.indicators.get(conn)
        monthly = await _series(
            conn, state, request.user, place, _indicator(catalog, indicator), "month", language
        )
        return Response(
            render(monthly, language),
            media_type=SVG_TYPE,
            headers={"Cache-Control": PRIVATE_CACHE, "Vary": "Accept-Language"},
        )

    @get(
        "/{code:str}/report.xlsx",
        media_type=XLSX_TYPE,
        responses=problems(400, 401, 403, 404),
        response_headers=[REPORT_DISPOSITION, NO_STORE],
    )
    async def get_area_stats_report(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        code: FromPath[AreaCode],
        period: FromQuery[PeriodText] = "current",
    ) -> Response[bytes]:
        """The officials' Excel report of a ward, a province or the nation (`VN`) for a
        period, in the caller's language; audited like the exports.

        A cover (area, period, when, who, which figures are exact and which protected), a
        summary row per indicator (value, target, gap, status, the last 6 months, forecast),
        native charts, the monthly series and, for a province or the nation, a sheet per
        indicator of the areas under it (no data first, then the furthest behind). The
        figures are the caller's cards': exact only in a ward official's or team member's own
        ward, the same withheld cells.
        """
        language = negotiate(request.headers.get("accept-language"))
        place = await _readable(conn, state.places, request.user, code)
        chosen = parse_period(period, today())
        catalog = await state.indicators.get(conn)
        user = await get_user(conn, request.user.user_id)
        await audit.record(
            conn,
            "stats.export",
            "area",
            place.code,
            actor_id=request.user.user_id,
            province_id=place.province_id,
            client_addr=client_addr(request),
            detail={"format": "report", "language": language, "period": chosen.label},
        )
        generated = datetime.now(UTC)
        # One snapshot: the card, the series and the children tables agree.
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            data = await report.gather(
                conn,
                catalog,
                state.places,
                place,
                chosen,
                exact=sees_exact(request.user, place.id),
                language=language,
                versions=state.modules.get,
                author=report.Author(
                    request.user.role, user.display_name if user is not None else None
                ),
                generated=generated,
            )
        content = await asyncio.to_thread(report.build, data, language)
        filename = f"congdongso-report-{place.code}-{chosen.label}-{today():%Y%m%d}.xlsx"
        return Response(
            content,
            media_type=XLSX_TYPE,
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )

    @get(
        "/{code:str}/export.csv",
        media_type=CSV_TYPE,
        responses=problems(401, 403, 404, 429),
        response_headers=[EXPORT_DISPOSITION, NO_STORE],
    )
    async def export_area_stats_csv(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        code: FromPath[AreaCode],
    ) -> Stream:
        """The last 24 months of the area and every area under it, protected, as CSV.

        Headers, names and numbers follow Accept-Language (`vi`: `;` between fields,
        `75,6 %`). Every export is audited.
        """
        return await _export(request, state, conn, code, "csv")

    @get(
        "/{code:str}/export.xlsx",
        media_type=XLSX_TYPE,
        responses=problems(401, 403, 404, 429),
        response_headers=[EXPORT_DISPOSITION, NO_STORE],
    )
    async def export_area_stats_xlsx(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        code: FromPath[AreaCode],
    ) -> Stream:
        """The same rows as the CSV export, as an Excel workbook (counts as numbers)."""
        return await _export(request, state, conn, code, "xlsx")


async def _export(
    request: Request[Principal, Token, Any],
    state: State,
    conn: asyncpg.Connection,
    code: str,
    kind: Literal["csv", "xlsx"],
) -> Stream:
    language = negotiate(request.headers.get("accept-language"))
    place = await _readable(conn, state.places, request.user, code)
    catalog = await state.indicators.get(conn)
    # A refused export (429) is not audited: nothing left the office.
    release = state.export_slots.take(request.user.user_id)
    try:
        await audit.record(
            conn,
            "stats.export",
            "area",
            place.code,
            actor_id=request.user.user_id,
            province_id=place.province_id,
            client_addr=client_addr(request),
            detail={"format": kind, "language": language},
        )
    except BaseException:
        release()
        raise
    exports: asyncpg.Pool = state.export_pool
    places: Places = state.places

    @asynccontextmanager
    async def read() -> AsyncIterator[asyncpg.Connection]:
        # A short read-only snapshot on the export pool's connection, given back before the
        # rows are formatted and sent: a slow or stalled client holds no connection.
        async with exports.acquire(timeout=EXPORT_WAIT) as proxy:
            reader = cast(asyncpg.Connection, proxy)
            async with reader.transaction(isolation="repeatable_read", readonly=True):
                yield reader

    async def content() -> AsyncIterator[bytes]:
        rows = export_rows(read, catalog, places, place, today())
        stream = csv_stream(rows, language) if kind == "csv" else xlsx_stream(rows, language)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            release()

    filename = f"congdongso-{place.code}-{today():%Y%m%d}.{kind}"
    return Stream(
        content(),
        media_type=CSV_TYPE if kind == "csv" else XLSX_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
        # Also after an answer whose body never started (the client left first).
        background=BackgroundTask(release),
    )


@put(
    "/targets/{area_code:str}/{indicator:str}",
    guards=[requires_role("admin", "province_official")],
    tags=["stats"],
    responses=problems(401, 403, 404),
)
async def set_target(
    request: Request[Principal, Token, Any],
    state: State,
    conn: NamedDependency[asyncpg.Connection],
    area_code: FromPath[AreaCode],
    indicator: FromPath[IndicatorCode],
    data: JSONBody[NewTarget],
) -> Target:
    """Set a plan target for an area (`VN`: the national default) and year; audited.

    The nearest area up the hierarchy with a target applies, with its latest year not after
    the period's. Percent targets are fractions (0.8 = 80 %).
    """
    place = await _readable(conn, state.places, request.user, area_code)
    if request.user.role != "admin" and place.level == "nation":
        raise Forbidden()
    catalog = await state.indicators.get(conn)
    chosen = _indicator(catalog, indicator)
    if chosen.unit == "fraction" and data.value > 1:
        # A rule of the indicator, not of the form: the schema's range is the ratios' 0–100.
        raise invalid(
            "value",
            "not_a_fraction",
            N_("A percent target is a fraction between 0 and 1 (0.8 = 80 %)."),
        )
    async with conn.transaction():
        previous = await q.set_target(
            conn,
            area_id=place.id,
            indicator=chosen.code,
            year=data.year,
            value=data.value,
            user_id=request.user.user_id,
        )
        await audit.record(
            conn,
            "target.set",
            "area",
            place.code,
            actor_id=request.user.user_id,
            province_id=place.province_id,
            client_addr=client_addr(request),
            detail={
                "indicator": chosen.code,
                "year": data.year,
                "value": data.value,
                "previous": previous,
            },
        )
        await outbox.target_changed(
            conn, place.code, place.province_id, chosen.code, data.year, data.value
        )
    return Target(area_code=place.code, indicator=chosen.code, year=data.year, value=data.value)


@get(
    "/public/areas/{code:str}/stats",
    tags=["stats"],
    responses=problems(404),
    response_headers=[PUBLIC_CACHED, BY_LANGUAGE],
    exclude_from_auth=True,
)
async def get_public_area_stats(
    request: Request[Any, Any, Any],
    state: State,
    code: FromPath[AreaCode],
    period: FromQuery[PeriodText] = "current",
) -> Response[Card]:
    """Any area's card without signing in: always protected, cacheable for 5 minutes."""
    place = await state.places.find(state.pool, code)
    if place is None:
        raise StatsAreaNotFound()
    return await _card_answer(
        state,
        place,
        parse_period(period, today()),
        exact=False,
        language=negotiate(request.headers.get("accept-language")),
        headers={"Cache-Control": PUBLIC_CACHE, "Vary": "Accept-Language"},
    )


async def _card_answer(
    state: State,
    place: Place,
    period: Period,
    *,
    exact: bool,
    language: str,
    headers: dict[str, str] | None = None,
) -> Response[Card]:
    """The card as this process last rendered it, while its counters have not changed
    (api/cardcache.py); otherwise built and kept. A kept card needs no connection, so one
    is taken from the pool only to build."""
    cards: CardCache = state.cards

    async def build() -> bytes:
        async with state.pool.acquire() as conn:
            built = await card(
                conn,
                await state.indicators.get(conn),
                state.places,
                place,
                period,
                exact=exact,
                language=language,
                versions=state.modules.get,
            )
        return msgspec.json.encode(built)

    # Every cell is protected on its own, so a ward's or a province's card depends only on
    # its province's counters (and targets); the nation's on every province's.
    group = place.province_id if place.level != "nation" and place.province_id else NATION_GROUP
    body = await cards.card(group, (place.code, period, exact, language), build)
    # Already JSON: Litestar sends bytes as they are (the cast only keeps Card in OpenAPI).
    return Response(cast(Card, body), media_type=MediaType.JSON, headers=headers)
