"""Operations: liveness, readiness and Prometheus metrics (no login)."""

from __future__ import annotations

import asyncpg
from litestar import Request, Response, get
from litestar.datastructures import State
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.errors import AppError, problems
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


@get(
    "/readyz",
    exclude_from_auth=True,
    tags=["operations"],
    responses=problems(503),
)
async def readyz(state: State) -> Readiness:
    """The database is reachable and its schema is at the latest migration."""
    try:
        async with state.pool.acquire(timeout=2) as conn:
            revision = await conn.fetchval("SELECT version_num FROM alembic_version")
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise NotReady(headers={"Retry-After": "5"}) from exc
    if revision != head_revision():
        raise NotReady(headers={"Retry-After": "5"})
    return Readiness(status="ready", revision=revision)


@get("/metrics", exclude_from_auth=True, tags=["operations"], media_type="text/plain")
async def metrics(request: Request[None, None, State]) -> Response[bytes]:
    """Prometheus exposition of request counts, latencies and pool usage."""
    return Response(
        generate_latest(request.app.state.metrics.registry),
        media_type=CONTENT_TYPE_LATEST,
    )
