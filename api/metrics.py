"""Prometheus metrics and the access log, recorded in one ASGI middleware.

Each app has its own registry, so several apps in one process (the tests) do not collide.
Labels use the route template (``/api/v1/users/{user_id}``), never the raw path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from api.errors import CLIENT_CLOSED, client_gone, mark_client_gone
from api.stats.cardcache import CardCache

access_log = logging.getLogger("congdongso.access")
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PoolCollector(Collector):
    """Connection-pool usage, read at scrape time."""

    def __init__(self, get_pool: Callable[[], Any]) -> None:
        self.get_pool = get_pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self.get_pool()
        if pool is None:
            return
        size, idle = pool.get_size(), pool.get_idle_size()
        yield GaugeMetricFamily("db_pool_size", "Open connections in the pool", value=size)
        yield GaugeMetricFamily("db_pool_in_use", "Connections checked out", value=size - idle)
        yield GaugeMetricFamily("db_pool_max", "Pool capacity", value=pool.get_max_size())


class CardCacheCollector(Collector):
    """How the kept statistics cards do (api/cardcache.py), read at scrape time."""

    def __init__(self, cards: CardCache) -> None:
        self.cards = cards

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        cards = self.cards
        yield CounterMetricFamily("card_cache_hits", "Cards served as kept", value=cards.hits)
        yield CounterMetricFamily("card_cache_builds", "Cards built", value=cards.builds)
        yield GaugeMetricFamily("card_cache_cards", "Cards kept now", value=cards.size)
        yield GaugeMetricFamily(
            "card_cache_listening",
            "1 while the stats_changed listener is up (cards are kept only then)",
            value=int(cards.listening),
        )


class Metrics:
    def __init__(self, get_pool: Callable[[], Any], cards: CardCache) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests by route, method and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(PoolCollector(get_pool))
        self.registry.register(CardCacheCollector(cards))

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500
            finished = False

            async def receive_wrapper() -> ReceiveMessage:
                message = await receive()
                if message["type"] == "http.disconnect" and not finished:
                    mark_client_gone(scope)
                return message

            async def send_wrapper(message: Message) -> None:
                nonlocal status, finished
                if message["type"] == "http.response.start":
                    status = message["status"]
                try:
                    await send(message)
                except Exception:
                    mark_client_gone(scope)  # the server could not deliver: nobody listens
                    raise
                if message["type"] == "http.response.body" and not message.get("more_body"):
                    finished = True

            try:
                await app(scope, receive_wrapper, send_wrapper)
            except Exception:
                if not client_gone(scope):
                    raise
            finally:
                if client_gone(scope):
                    status = CLIENT_CLOSED  # logged as such, never as a server error
                elapsed = time.perf_counter() - start
                route = scope.get("path_template") or "unmatched"
                method = scope.get("method", "")
                self.requests.labels(method, route, str(status)).inc()
                self.latency.labels(method, route).observe(elapsed)
                # No query string, body or headers: they can carry personal data or tokens.
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "ms": round(elapsed * 1000, 2),
                    },
                )

        return measured
