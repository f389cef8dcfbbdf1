"""Prometheus metrics and the access log, recorded in one ASGI middleware.

Served by several granian workers, the counters are shared through prometheus-client's
multiprocess mode: ``congdongso serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an emptied
directory before the workers start, each worker writes its samples there, and any worker's
``/metrics`` adds them up, so every scrape returns the service's totals. What belongs to one
worker (its pool, its memory, its kept cards) is a gauge with a ``worker`` label (the
process id), sampled at most once a second while the worker serves requests, and by the
worker that answers the scrape; gauges of workers that died are dropped at scrape time.

Without that variable (tests, ``uvicorn``) each app has its own registry, so several apps in
one process do not collide.

The status counted is the one sent: a rejection by the sign-in middleware is answered here
through the app's one error mapping (api/errors.py), so a 401 is counted and logged as 401.
Labels use the route template (``/api/v1/users/{user_id}``), never the raw path.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from api.errors import CLIENT_CLOSED, client_gone, handle_exception, mark_client_gone
from api.logs import current_request_id, request_id
from api.stats.cardcache import CardCache

access_log = logging.getLogger("congdongso.access")
disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created series are noise

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SAMPLE_EVERY = 1.0  # seconds between samples of a worker's own gauges


def shared_dir() -> str | None:
    """The multiprocess directory when workers share their metrics, else None."""
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_shared_dir(path: str) -> None:
    """Empty (or create) the directory before any worker starts: old files would add a
    previous run's counts to this one's."""
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.remove(stale)


class PoolCollector(Collector):
    """Connection-pool usage, read at scrape time (one process)."""

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


class WorkerGauges:
    """Per-worker gauges in multiprocess mode: the same names, a ``worker`` label."""

    def __init__(self, get_pool: Callable[[], Any], cards: CardCache) -> None:
        self.get_pool = get_pool
        self.cards = cards
        self.worker = str(os.getpid())
        self.process = ProcessCollector(registry=None)
        self.last = 0.0

        def gauge(name: str, text: str) -> Gauge:
            # Not registered: in multiprocess mode the scrape reads the workers' files.
            return Gauge(name, text, ["worker"], multiprocess_mode="livemostrecent", registry=None)

        self.gauges = {
            "db_pool_size": gauge("db_pool_size", "Open connections in the pool"),
            "db_pool_in_use": gauge("db_pool_in_use", "Connections checked out"),
            "db_pool_max": gauge("db_pool_max", "Pool capacity"),
            "card_cache_hits": gauge("card_cache_hits", "Cards served as kept (since start)"),
            "card_cache_builds": gauge("card_cache_builds", "Cards built (since start)"),
            "card_cache_cards": gauge("card_cache_cards", "Cards kept now"),
            "card_cache_listening": gauge("card_cache_listening", "1 while listening"),
            "process_resident_memory_bytes": gauge(
                "process_resident_memory_bytes", "Resident memory of the worker"
            ),
            "process_cpu_seconds": gauge("process_cpu_seconds", "CPU time of the worker"),
            "process_open_fds": gauge("process_open_fds", "Open file descriptors"),
            "process_start_time_seconds": gauge(
                "process_start_time_seconds", "Start time of the worker (Unix time)"
            ),
        }

    def sample(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < SAMPLE_EVERY:
            return
        self.last = now
        values: dict[str, float] = {}
        pool = self.get_pool()
        if pool is not None:
            size, idle = pool.get_size(), pool.get_idle_size()
            values |= {
                "db_pool_size": size,
                "db_pool_in_use": size - idle,
                "db_pool_max": pool.get_max_size(),
            }
        cards = self.cards
        values |= {
            "card_cache_hits": cards.hits,
            "card_cache_builds": cards.builds,
            "card_cache_cards": cards.size,
            "card_cache_listening": int(cards.listening),
        }
        for family in self.process.collect():
            name = family.name.removesuffix("_total")
            if name in self.gauges and family.samples:
                values[name] = family.samples[0].value
        for name, value in values.items():
            self.gauges[name].labels(self.worker).set(value)


def _drop_dead_workers(path: str) -> None:
    """Gauges of a worker that died (a crash, a kill) would stay at their last value."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = int(file.rsplit("_", 1)[1].removesuffix(".db"))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass


class Metrics:
    def __init__(self, get_pool: Callable[[], Any], cards: CardCache) -> None:
        self.shared = shared_dir()
        if self.shared is not None:
            # prometheus-client picks file-backed values when it is first imported; the
            # serving process imported it before setting the directory and forked the
            # workers, so choose again before the first metric is made.
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
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
        # The folder (api/stats/folder.py): only the leading process folds, so the counters
        # add up across workers to the service's folds; the last fold's time is the
        # newest any worker wrote ("max"), and the log's rows left after it are that fold's.
        self.folds = Counter(
            "stat_folds", "Folds of the counters' log into the counters", registry=self.registry
        )
        self.folded_rows = Counter(
            "stat_folded_log_rows", "Log rows folded into the counters", registry=self.registry
        )
        self.fold_seconds = Histogram(
            "stat_fold_duration_seconds",
            "How long a fold's transaction took",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.last_fold = Gauge(
            "stat_last_fold_timestamp_seconds",
            "When the last fold committed (Unix time): the folder's lag is now minus this",
            multiprocess_mode="max",
            registry=self.registry,
        )
        self.log_rows_left = Gauge(
            "stat_log_rows_after_fold",
            "Rows in the counters' log right after the last fold (written meanwhile)",
            multiprocess_mode="mostrecent",
            registry=self.registry,
        )
        self.workers = WorkerGauges(get_pool, cards) if self.shared else None
        if self.workers is None:
            self.registry.register(PoolCollector(get_pool))
            self.registry.register(CardCacheCollector(cards))
            self.registry.register(ProcessCollector(registry=None))

    def folded(self, rows: int, seconds: float, left: int) -> None:
        """One fold committed (called by the leading folder)."""
        self.folds.inc()
        self.folded_rows.inc(rows)
        self.fold_seconds.observe(seconds)
        self.last_fold.set(time.time())
        self.log_rows_left.set(left)

    def exposition(self) -> bytes:
        """The text a scrape gets: the service's totals in multiprocess mode."""
        if self.shared is None or self.workers is None:
            return generate_latest(self.registry)
        self.workers.sample(force=True)
        _drop_dead_workers(self.shared)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, self.shared)  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 0
            finished = False
            token = current_request_id.set(request_id(scope))

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
                try:
                    await app(scope, receive_wrapper, send_wrapper)
                except Exception as exc:
                    if client_gone(scope):
                        pass  # nobody is listening: logged as 499 below
                    elif status:  # the answer had started: nothing else can be sent
                        raise
                    else:
                        # A middleware's rejection (the sign-in check): answered here, by
                        # the same mapping the app uses, so its real status is counted.
                        request: Request[Any, Any, Any] = Request(scope, receive, send)
                        answer = handle_exception(request, exc).to_asgi_response(None, request)
                        await answer(scope, receive, send_wrapper)
            finally:
                if client_gone(scope):
                    status = CLIENT_CLOSED  # logged as such, never as a server error
                elapsed = time.perf_counter() - start
                route = scope.get("path_template") or "unmatched"
                method = scope.get("method", "")
                counted = str(status or 500)
                self.requests.labels(method, route, counted).inc()
                self.latency.labels(method, route).observe(elapsed)
                if self.workers is not None:
                    self.workers.sample()
                # No query string, body or headers: they can carry personal data or tokens.
                access_log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": route,
                        "status": status or 500,
                        "ms": round(elapsed * 1000, 2),
                    },
                )
                current_request_id.reset(token)

        return measured
