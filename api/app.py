"""create_app: the only place where the application is wired together."""

from __future__ import annotations

import gc
import re
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.config.compression import CompressionConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Contact, Tag
from litestar.routes import HTTPRoute

from api.auth import jwt_auth
from api.config import Settings, jwt_secret, settings_from_env
from api.db import pool_lifespan, provide_conn
from api.errors import handle_exception
from api.events import delivery
from api.events import routes as webhooks
from api.events.outbox import Waker
from api.fieldwork import routes as fieldwork
from api.headers import security_headers
from api.ingest import SurveyCache
from api.learning import ModuleCache
from api.logs import echo_request_id
from api.metrics import Metrics
from api.openapi import FinishedJson, ReferencePage, StructConstraints, reference_asset
from api.passwords import Passwords
from api.routes import (
    accounts,
    areas,
    auth,
    health,
    households,
    modules,
    residents,
    surveys,
    sync,
)
from api.stats import closing
from api.stats import routes as stats
from api.stats.cardcache import CardCache
from api.stats.catalog import CatalogCache
from api.stats.exports import ExportSlots
from api.stats.folder import Folder
from api.stats.keys import record_keys
from api.stats.places import Places

API_VERSION = "1.0.0"


def _operation_id(handler: object, *_: object) -> str:
    # Stable, readable ids for generated mobile clients: list_areas → listAreas.
    name: str = getattr(handler, "handler_name", "")
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def remember_allowed_methods(app: Litestar) -> None:
    app.state.allowed_methods = {
        route.path_format: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }


async def answer_options(request: Request[Any, Any, Any]) -> Response[None] | None:
    """Answer OPTIONS with every method of the path.

    Litestar's automatic answer lists only one handler's method for a controller path with
    several (``Allow: OPTIONS, POST`` for GET+POST ``/users``).
    """
    if request.method != "OPTIONS":
        return None
    allowed = request.app.state.allowed_methods.get(request.scope.get("path_template"), "OPTIONS")
    return Response(None, status_code=204, headers={"Allow": allowed})


def settle_heap(_: Litestar) -> None:
    """Keep the collector off what the imports and the app built (it lives as long as the
    process: ``gc.freeze``), and collect the youngest generation every 20,000 allocations
    rather than 700: a pushed batch allocates tens of thousands of objects, few of them in
    cycles, and each collection walked them (docs/benchmarks.md, "Write path")."""
    if not gc.get_freeze_count():  # once per process (tests build many apps in one)
        gc.freeze()
    young, middle, old = gc.get_threshold()
    gc.set_threshold(max(young, 20_000), max(middle, 20), max(old, 20))


def create_app(dsn: str, settings: Settings | None = None) -> Litestar:
    settings = settings or settings_from_env()
    secret = jwt_secret(settings)
    security = jwt_auth(secret, settings.access_token_ttl)
    cards = CardCache(max_age=settings.card_max_age)
    metrics = Metrics(get_pool=lambda: app.state.get("pool"), cards=cards)
    folder = Folder(dsn, settings.fold_interval, watcher=metrics.folded)

    # Signing in needs no token; everything else under /api/v1 does (and says so in OpenAPI).
    public = Router(
        path="/api/v1",
        route_handlers=[
            auth.login,
            auth.activate_account,
            auth.refresh,
            residents.register,
            stats.get_public_area_stats,
        ],
    )
    signed_in = Router(
        path="/api/v1",
        security=[security.security_requirement],
        route_handlers=[
            auth.logout,
            auth.me,
            areas.AreaRoutes,
            fieldwork.FieldworkRoutes,
            fieldwork.TeamWorkRoutes,
            fieldwork.ReviewRoutes,
            webhooks.WebhookRoutes,
            accounts.UserRoutes,
            accounts.TeamRoutes,
            surveys.SurveyRoutes,
            households.HouseholdRoutes,
            sync.pull,
            sync.push,
            sync.create_submission,
            sync.get_submission,
            residents.create_invite,
            residents.my_household,
            residents.delete_my_household,
            stats.StatsRoutes,
            stats.set_target,
            closing.close_period,
            modules.ModuleRoutes,
            modules.get_area_learning,
            modules.list_recommended_modules,
        ],
    )
    app = Litestar(
        route_handlers=[
            health.healthz,
            health.readyz,
            health.metrics,
            reference_asset,
            public,
            signed_in,
        ],
        lifespan=[
            pool_lifespan(dsn, settings.pool_min, settings.pool_max, settings.export_pool_max),
            *([cards.lifespan(dsn)] if settings.card_cache else []),
            *(
                [
                    delivery.lifespan(
                        dsn,
                        retry_base=settings.webhook_retry_base,
                        pause_after=settings.webhook_pause_after,
                        poll=settings.webhook_poll,
                        private_ok=settings.webhook_private_targets,
                        keep_days=settings.outbox_keep_days,
                    )
                ]
                if settings.webhook_worker
                else []
            ),
            folder.lifespan(),
        ],
        plugins=[StructConstraints()],
        on_startup=[remember_allowed_methods, settle_heap],
        before_request=answer_options,
        dependencies={"conn": Provide(provide_conn)},
        exception_handlers={Exception: handle_exception},
        middleware=[metrics.middleware, cards.middleware, security.middleware],
        before_send=[security_headers, echo_request_id],
        request_max_body_size=settings.max_body_bytes,
        compression_config=CompressionConfig(backend="gzip", minimum_size=1024),
        openapi_config=OpenAPIConfig(
            title="Cộng đồng số API",
            version=API_VERSION,
            description=(
                "Surveys, offline sync, learning modules and ward statistics for Vietnam's "
                "community digital technology teams. Errors are RFC 9457 problem+json, "
                "localized by Accept-Language (vi default, en)."
            ),
            contact=Contact(name="Cộng đồng số"),
            path="/schema",
            render_plugins=[ReferencePage(), FinishedJson()],
            operation_id_creator=_operation_id,
            use_handler_docstrings=True,
            components=[security.openapi_components],
            tags=[
                Tag(name="auth", description="Sign in, tokens and the caller's account"),
                Tag(name="accounts", description="Users and teams, managed by officials"),
                Tag(name="areas", description="The 2025 provinces, wards and their hamlets"),
                Tag(name="surveys", description="Survey definitions and immutable versions"),
                Tag(name="households", description="Households registered by ward teams"),
                Tag(name="sync", description="Offline sync and submissions"),
                Tag(name="residents", description="Invites, registration, a resident's data"),
                Tag(name="stats", description="Ward statistics against the plan targets"),
                Tag(name="fieldwork", description="Visit plans and ward settings for the teams"),
                Tag(
                    name="learning",
                    description="Digital-literacy modules, quizzes, progress and statistics",
                ),
                Tag(name="webhooks", description="Signed events for other systems"),
                Tag(name="operations", description="Health, readiness and metrics"),
            ],
        ),
        logging_config=None,  # api.logs configures logging once per process
        debug=False,
    )
    app.state.settings = settings
    app.state.surveys = SurveyCache()
    keys = record_keys(settings)
    app.state.indicators = CatalogCache(keys)
    app.state.places = Places()
    app.state.cards = cards
    app.state.outbox_waker = Waker(lambda: app.state.get("pool"))
    app.state.push_slots = sync.PushSlots(settings.pushes_per_worker)
    app.state.folder = folder
    app.state.export_slots = ExportSlots(settings.exports_per_user)
    app.state.modules = ModuleCache(keys)
    app.state.jwt_secret = secret
    app.state.metrics = metrics
    app.state.passwords = Passwords(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )
    return app
