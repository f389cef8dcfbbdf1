"""Operations: liveness, readiness and Prometheus metrics (no login)."""

from __future__ import annotations

import asyncio
import hmac

import asyncpg
from litestar import Request, Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST

from api.errors import AppError, NotFound, problems
from api.i18n import N_
from api.migrate import head_revision
from schemas.operations import Health, Readiness


class NotReady(AppError):
    status_code = 503
    code = "not_ready"
    title = N_("Service unavailable")
    default_detail = N_("The database is unreachable or its migrations are not at head.")


@get("/healthz", exclude_from_auth=True, tags=["operations"])
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


READY_BUDGET = 2.0  # seconds: a load balancer's probe must get an answer, whatever happens


@get(
    "/readyz",
    exclude_from_auth=True,
    tags=["operations"],
    responses=problems(503),
)
async def readyz(state: State) -> Readiness:
    """The database is reachable and its schema is at the latest migration (answered within
    2 s in any case: waiting for a connection and the query share that budget)."""
    try:
        async with asyncio.timeout(READY_BUDGET), state.pool.acquire() as conn:
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise NotReady(headers={"Retry-After": "5"}) from exc
    if revision != head_revision():
        raise NotReady(headers={"Retry-After": "5"})
    return Readiness(status="ready", revision=revision)


class MetricsNotFound(NotFound):
    code = "not_found"


def may_scrape(request: Request[None, None, State]) -> bool:
    """With ``CONGDONGSO_METRICS_TOKEN`` set, a scraper sends it as a bearer token; without
    it, only clients on this machine may read the metrics."""
    token = request.app.state.settings.metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        return hmac.compare_digest(sent.encode(), f"Bearer {token}".encode())
    host = request.client.host if request.client else ""
    return host in ("127.0.0.1", "::1")


@get(
    "/metrics",
    exclude_from_auth=True,
    tags=["operations"],
    media_type="text/plain",
    responses=problems(404),
)
async def metrics(request: Request[None, None, State]) -> Response[bytes]:
    """Prometheus exposition of request counts, latencies and pool usage: for the metrics
    token's holder, or from this machine when no token is set (others: 404)."""
    if not may_scrape(request):
        raise MetricsNotFound()
    # Litestar appends "; charset=utf-8" to a text/* type itself: name it once.
    return Response(
        request.app.state.metrics.exposition(),
        media_type=CONTENT_TYPE_LATEST.removesuffix("; charset=utf-8"),
    )
