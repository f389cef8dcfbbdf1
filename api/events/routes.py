"""Webhooks: administrators (nationally or for a province) and province officials (their
province) register where events go; the delivery log, redelivery and resuming."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import uuid
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.security.jwt import Token

from api.auth import Principal, Role, requires_role
from api.errors import Forbidden, NotFound, invalid, problems
from api.events import webhooks as q
from api.events.delivery import TIMEOUT_SECONDS, send
from api.i18n import N_
from api.queries import audit
from api.queries.areas import get_area
from api.routes.auth import client_addr
from schemas.events import Delivery, NewWebhook, NewWebhookSecret, Webhook

REGISTRARS: tuple[Role, ...] = ("admin", "province_official")
Before = Annotated[
    int | None, Parameter(ge=1, le=2**62, description="Attempts older than this id.")
]
DeliveryLimit = Annotated[int, Parameter(ge=1, le=500)]


NOT_PUBLIC = N_(
    "A webhook must point to a public internet address, not to this server's own network."
)


async def public_host(url: str) -> bool:
    """Whether every address the URL's host resolves to is a public one: a webhook must not
    let an official make the server call its own network (the database, the metrics, a
    router's admin page). Checked when the webhook is registered."""
    try:
        host = urlsplit(url).hostname  # ValueError: a bracketed host that is no IPv6 address
        if not host:
            return False
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # UnicodeError (a ValueError): a label IDNA cannot encode
        return False
    addresses = {ipaddress.ip_address(info[4][0]) for info in found}
    return bool(addresses) and all(address.is_global for address in addresses)


class WebhookNotFound(NotFound):
    code = "webhook_not_found"
    default_detail = N_("No webhook with this id in your area.")


class AnswersForAdmins(Forbidden):
    code = "answers_not_allowed"
    default_detail = N_("Only administrators register webhooks that receive answers.")


async def _mine(conn: asyncpg.Connection, caller: Principal, webhook_id: uuid.UUID) -> Webhook:
    found = await q.get_webhook(conn, webhook_id)
    if found is None:
        raise WebhookNotFound()
    webhook, province_id = found
    if caller.role != "admin" and province_id != caller.province_id:
        raise WebhookNotFound()
    return webhook


class WebhookRoutes(Controller):
    path = "/webhooks"
    tags = ["webhooks"]
    guards = [requires_role(*REGISTRARS)]

    @post("/", responses=problems(400, 401, 403, 404))
    async def create_webhook(
        self,
        request: Request[Principal, Token, Any],
        state: State,
        conn: NamedDependency[asyncpg.Connection],
        data: JSONBody[NewWebhook],
    ) -> NewWebhookSecret:
        """Register a webhook; the answer carries its signing secret, shown only this once.
        It receives the events written from now on: ``submission.accepted``,
        ``household.deleted``, ``review.decided``, ``target.changed`` (see
        ``api/events/delivery.py`` for the headers and the signature). Audited."""
        caller = request.user
        if data.include_answers and caller.role != "admin":
            raise AnswersForAdmins()
        if not state.settings.webhook_private_targets and not await public_host(data.url):
            raise invalid("url", "not_public", NOT_PUBLIC)
        province_id = caller.province_id if caller.role != "admin" else None
        if data.province_code is not None:
            area = await get_area(conn, data.province_code)
            if area is None or area.level != "province":
                raise invalid("provinceCode", "not_found", N_("No province with this code."))
            if caller.role != "admin" and area.id != caller.province_id:
                raise invalid("provinceCode", "not_found", N_("No province with this code."))
            province_id = area.id
        webhook_id = uuid.uuid4()
        secret = secrets.token_urlsafe(32)
        async with conn.transaction():
            await q.insert_webhook(
                conn,
                webhook_id=webhook_id,
                url=data.url,
                secret=secret,
                province_id=province_id,
                include_answers=data.include_answers,
                created_by=caller.user_id,
            )
            await audit.record(
                conn,
                "webhook_created",
                "webhook",
                webhook_id,
                actor_id=caller.user_id,
                province_id=province_id,
                client_addr=client_addr(request),
                detail={"includeAnswers": data.include_answers, "province": province_id},
            )
        found = await q.get_webhook(conn, webhook_id)
        assert found is not None
        return NewWebhookSecret(webhook=found[0], secret=secret)

    @get("/", responses=problems(401, 403))
    async def list_webhooks(
        self, request: Request[Principal, Token, Any], conn: NamedDependency[asyncpg.Connection]
    ) -> list[Webhook]:
        caller = request.user
        return await q.list_webhooks(conn, caller.province_id, caller.role == "admin")

    @get("/{webhook_id:uuid}/deliveries", responses=problems(400, 401, 403, 404))
    async def list_webhook_deliveries(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        webhook_id: FromPath[uuid.UUID],
        before: FromQuery[Before] = None,
        limit: FromQuery[DeliveryLimit] = 100,
    ) -> list[Delivery]:
        """Every attempt, newest first (``before``: continue below an attempt id)."""
        await _mine(conn, request.user, webhook_id)
        return await q.deliveries(conn, webhook_id, before, limit)

    @post(
        "/{webhook_id:uuid}/events/{event_id:uuid}/redeliver",
        status_code=200,
        responses=problems(401, 403, 404),
    )
    async def redeliver_event(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        webhook_id: FromPath[uuid.UUID],
        event_id: FromPath[uuid.UUID],
    ) -> Delivery:
        """Send one event again now (the same event id: receivers deduplicate by it); the
        attempt is logged as manual. The worker's own order is unchanged."""
        caller = request.user
        await _mine(conn, caller, webhook_id)
        target = next((t for t in await q.targets(conn, [webhook_id])), None)
        event = (
            await q.event_by_id(conn, event_id, target.include_answers)
            if target is not None
            else None
        )
        if (
            event is None
            or target is None
            or (
                target.province_id is not None
                and not await q.event_in_province(conn, event.id, target.province_id)
            )
        ):
            raise NotFound(N_("No such event for this webhook."), code="event_not_found")
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS) as client:
            status, error, elapsed = await send(
                client, target.url, target.secret, event, target.include_answers
            )
        await q.log_attempt(
            conn,
            webhook_id,
            event,
            1,
            manual=True,
            status_code=status,
            error=error,
            delivered=error is None,
            duration_ms=elapsed,
        )
        (latest,) = await q.deliveries(conn, webhook_id, None, 1)
        return latest

    @post("/{webhook_id:uuid}/resume", status_code=200, responses=problems(401, 403, 404))
    async def resume_webhook(
        self,
        request: Request[Principal, Token, Any],
        conn: NamedDependency[asyncpg.Connection],
        webhook_id: FromPath[uuid.UUID],
    ) -> Webhook:
        """Resume a paused webhook: its waiting events are sent from where it stopped."""
        await _mine(conn, request.user, webhook_id)
        await q.resume(conn, webhook_id)
        found = await q.get_webhook(conn, webhook_id)
        assert found is not None
        return found[0]
