"""granian or uvicorn: the same app, one worker each, under the same load."""

from __future__ import annotations

import math

from bench import Result
from bench.env import Context, serve
from bench.loadgen import load

NAME = "server"
TITLE = "Server choice: granian vs uvicorn (1 worker, 64 connections)"

BASELINE = "uvicorn"
SERVERS = ["uvicorn", "granian"]
CONNECTIONS = 64
# (label, path, needs a token)
ENDPOINTS = [
    ("GET /healthz", "/healthz", False),
    ("GET /api/v1/areas/38", "/api/v1/areas/38", True),
]


async def run(ctx: Context) -> list[Result]:
    warmup, duration = ctx.seconds(2, 0.5), ctx.seconds(10, 2)
    rps: dict[tuple[str, str], Result] = {}
    p99: dict[tuple[str, str], Result] = {}
    for server_name in SERVERS:
        async with serve(ctx, server_name) as server:
            token = await server.login()
            for label, path, auth in ENDPOINTS:
                target = server.target("GET", path, token=token if auth else None)
                step = f"{server_name} {label}"
                await load(target, connections=CONNECTIONS, duration=warmup, label="warm-up")
                measured = await load(
                    target, connections=CONNECTIONS, duration=duration, label=step
                )
                print(f"  {step}: {measured.summary()}")
                if measured.errors:
                    print(f"  warning: {measured.errors} errors for {step}")
                base = None if server_name == BASELINE else (BASELINE, label)
                note = f"{measured.errors} errors" if measured.errors else ""
                rps[server_name, label] = Result(
                    label=f"{step} throughput",
                    value=measured.rps,
                    unit="req/s",
                    baseline=rps[base] if base else None,
                    note=note,
                )
                p99[server_name, label] = Result(
                    label=f"{step} p99",
                    value=measured.p99_ms,
                    unit="ms",
                    baseline=p99[base] if base else None,
                )
    results = [r for key in rps for r in (rps[key], p99[key])]

    # One verdict: the geometric mean of the throughput ratios over the endpoints.
    ratios = [rps["granian", label].ratio or 0.0 for label, _, _ in ENDPOINTS]
    geomean = math.prod(ratios) ** (1 / len(ratios))
    winner = "granian" if geomean > 1 else "uvicorn"
    margin = geomean if geomean > 1 else 1 / geomean
    verdict = f"{winner} wins: ×{margin:.2f} the throughput of the other (geometric mean)"
    print(f"  {verdict}")
    results.append(
        Result(label="granian/uvicorn throughput (geomean)", value=geomean, unit="×", note=verdict)
    )
    return results
