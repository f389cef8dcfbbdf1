"""Issue 14: the outbox's cost on pushes, XLSForm import time, webhook delivery latency.

(a) ``POST /sync/push`` (100 new household_digital submissions per batch, 8 clients) on a
server writing the outbox and on one with ``CONGDONGSO_OUTBOX=false``, alternating, the
same number of rounds each, in the same run (goal: the outbox costs at most 10 %).
(b) ``POST /surveys/import`` of a 200-question XLSForm (tests/xlsforms.py ``long_form``),
sequentially, against pyxform's own reading of the same workbook in this process.
(c) Webhook delivery latency with a healthy receiver on loopback: pushes of 10 submissions
five times a second; for each event, from its transaction's start (``occurredAt``) to its
arrival at the receiver.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import msgspec
from pyxform.xls2json import workbook_to_json
from pyxform.xls2json_backends import get_xlsform

from api.db import connect
from bench import Result
from bench.env import Context, serve
from bench.sync import (
    PASSWORD,
    PUSH_CLIENTS,
    PUSH_WARD,
    _clients,
    _collector,
    _households,
    _push_check,
    push_bodies,
    submission,
)
from tests.xlsforms import long_form

NAME = "events"
TITLE = "Outbox cost on pushes, XLSForm import, webhook delivery latency (granian)"

PHONE = "+84910000014"


class _Receiver:
    """A healthy webhook receiver in its own thread: when each event arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, tuple[float, str]] = {}  # event id → (arrival, occurredAt)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                arrived = time.time()
                event = msgspec.json.decode(body)
                receiver.arrivals.setdefault(event["id"], (arrived, event["occurredAt"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def run(ctx: Context) -> list[Result]:
    rounds = 2 if ctx.quick else 3
    duration = ctx.seconds(8, 2)
    rng = random.Random(14)
    conn = await connect(ctx.dsn)
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", PUSH_WARD)
        await _collector(conn, area, PHONE)
        count = ctx.count(40_000 * rounds, 6_000 * rounds) + ctx.count(6_000, 1_000)
        print(f"  creating {count:,} households …")
        fresh: Iterator[uuid.UUID] = iter(await _households(conn, area, count))
    finally:
        await conn.close()

    push_body = push_bodies(fresh, rng)

    # (a) the outbox on and off, alternating.
    rates: dict[bool, list[float]] = {True: [], False: []}
    for index in range(rounds * 2):
        outbox = index % 2 == 1
        settings = {
            "CONGDONGSO_OUTBOX": "true" if outbox else "false",
            "CONGDONGSO_WEBHOOK_PRIVATE_TARGETS": "true",  # the receiver is on loopback
        }
        label = f"events-outbox-{'on' if outbox else 'off'}"
        async with serve(ctx, "granian", settings, label=label) as server:
            token = await server.login(PHONE, PASSWORD)
            path = "/api/v1/sync/push"
            await _clients(server, token, path, push_body, _push_check, connections=2, duration=1)
            pushed, accepted = await _clients(
                server,
                token,
                path,
                push_body,
                _push_check,
                connections=PUSH_CLIENTS,
                duration=duration,
            )
            rates[outbox].append(accepted / pushed.seconds)
            print(
                f"  round {index // 2 + 1}, outbox {'on ' if outbox else 'off'}: "
                f"{accepted / pushed.seconds:,.0f} submissions/s ({pushed.summary()})"
            )
    off = Result(
        label="POST /sync/push, outbox off (median of rounds)",
        value=statistics.median(rates[False]),
        unit="subs/s",
        note=", ".join(f"{r:,.0f}" for r in rates[False]),
    )
    on = Result(
        label="POST /sync/push, outbox on (median of rounds)",
        value=statistics.median(rates[True]),
        unit="subs/s",
        baseline=off,
        note=", ".join(f"{r:,.0f}" for r in rates[True]),
    )
    results = [off, on]

    # (b) importing a 200-question XLSForm, against pyxform alone.
    workbook = long_form(200)
    times = ctx.count(7, 3)
    parsed = []
    for _ in range(times):
        started = time.perf_counter()
        workbook_to_json(get_xlsform(workbook, file_type=".xlsx"), warnings=[])
        parsed.append(time.perf_counter() - started)
    pyxform_only = Result(
        label="pyxform: read and build the 200-question form (median)",
        value=1000 * statistics.median(parsed),
        unit="ms",
    )
    async with serve(ctx, "granian", label="events-import") as server:
        token = await server.login()
        imports = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            for index in range(times + 1):
                data = workbook
                started = time.perf_counter()
                response = await client.post(
                    "/api/v1/surveys/import",
                    files={"file": ("form.xlsx", data, "application/octet-stream")},
                    headers={"Authorization": f"Bearer {token}"},
                )
                elapsed = time.perf_counter() - started
                # Each import creates the survey "long_form": drop it for the next round.
                if response.status_code != 201:
                    raise RuntimeError(f"import: {response.status_code} {response.text[:300]}")
                conn = await connect(ctx.dsn)
                try:
                    await conn.execute("DELETE FROM survey WHERE code = 'long_form'")
                finally:
                    await conn.close()
                if index:  # the first warms the worker up
                    imports.append(elapsed)
        print(f"  import: {', '.join(f'{1000 * s:.0f} ms' for s in imports)}")
        results += [
            pyxform_only,
            Result(
                label="POST /surveys/import, 200 questions (median)",
                value=1000 * statistics.median(imports),
                unit="ms",
                baseline=pyxform_only,
                note=f"max {1000 * max(imports):.0f} ms of {len(imports)}; goal < 2,000 ms",
            ),
        ]

        # (c) delivery latency with a healthy receiver.
        receiver = _Receiver()
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                registered = await client.post(
                    "/api/v1/webhooks",
                    json={"url": receiver.url},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if registered.status_code != 201:
                    raise RuntimeError(f"webhook: {registered.status_code} {registered.text}")
                collector = await server.login(PHONE, PASSWORD)
                sent = 0
                deadline = time.perf_counter() + ctx.seconds(10, 3)
                while time.perf_counter() < deadline:
                    items = [submission(next(fresh), rng) for _ in range(10)]
                    answer = await client.post(
                        "/api/v1/sync/push",
                        json={"submissions": items},
                        headers={"Authorization": f"Bearer {collector}"},
                    )
                    sent += sum(r["status"] == "accepted" for r in answer.json()["results"])
                    await asyncio.sleep(0.2)
                # The receiver is in another thread: look at what it got until it has all.
                for _ in range(600):
                    if len(receiver.arrivals) >= sent:
                        break
                    await asyncio.sleep(0.05)
        finally:
            receiver.close()
        latencies = sorted(
            arrived - datetime.fromisoformat(occurred).timestamp()
            for arrived, occurred in receiver.arrivals.values()
        )
        if len(receiver.arrivals) < sent:
            print(f"  warning: {sent - len(receiver.arrivals)} events not delivered in 30 s")

        def percentile(fraction: float) -> float:
            return 1000 * latencies[min(len(latencies) - 1, int(fraction * len(latencies)))]

        print(f"  delivery: {len(latencies)} events, p50 {percentile(0.5):.0f} ms")
        results += [
            Result(
                label="webhook delivery latency, p50",
                value=percentile(0.50),
                unit="ms",
                note=f"{len(latencies):,} events of {sent:,}; 50 events/s in pushes of 10",
            ),
            Result(label="webhook delivery latency, p99", value=percentile(0.99), unit="ms"),
        ]
    return results
