"""granian or uvicorn: the same app, one worker each, under the same load.

Both servers run side by side (the idle one costs nothing) and are measured in alternating
rounds, so a slow drift or a burst of other work on the machine hits both alike; each
figure is the median of its rounds.
"""

from __future__ import annotations

import statistics
from contextlib import AsyncExitStack

from bench import Result
from bench.env import Context, serve
from bench.loadgen import LoadResult, load

NAME = "server"
TITLE = "Server choice: granian vs uvicorn (1 worker, 64 connections)"

BASELINE = "uvicorn"
SERVERS = ["uvicorn", "granian"]  # the baseline first
CONNECTIONS = 64
# (label, path, needs a token)
ENDPOINTS = [
    ("GET /healthz", "/healthz", False),
    ("GET /api/v1/areas/38", "/api/v1/areas/38", True),
]


async def run(ctx: Context) -> list[Result]:
    warmup, rounds, duration = ctx.seconds(2, 0.5), ctx.count(3, 1), ctx.seconds(5, 2)
    print(f"  {rounds} round(s) of {duration:g} s per server and endpoint, after {warmup:g} s")
    results: list[Result] = []
    geomean = 1.0
    async with AsyncExitStack() as stack:
        servers = [await stack.enter_async_context(serve(ctx, name)) for name in SERVERS]
        tokens = {server.name: await server.login() for server in servers}
        for label, path, auth in ENDPOINTS:
            targets = {
                s.name: s.target("GET", path, token=tokens[s.name] if auth else None)
                for s in servers
            }
            for target in targets.values():
                await load(target, connections=CONNECTIONS, duration=warmup, label="warm-up")
            runs: dict[str, list[LoadResult]] = {name: [] for name in targets}
            for round_no in range(1, rounds + 1):
                for name, target in targets.items():
                    step = f"{name} {label} #{round_no}"
                    measured = await load(
                        target, connections=CONNECTIONS, duration=duration, label=step
                    )
                    print(f"  {step}: {measured.summary()}")
                    runs[name].append(measured)

            base_rps: Result | None = None
            base_p99: Result | None = None
            for name, measured_runs in runs.items():
                rps, p99 = _summarize(f"{name} {label}", measured_runs, base_rps, base_p99)
                results += [rps, p99]
                if name == BASELINE:
                    base_rps, base_p99 = rps, p99
                else:
                    geomean *= (rps.ratio or 0.0) ** (1 / len(ENDPOINTS))

    # One verdict: the geometric mean over the endpoints of granian/uvicorn throughput.
    winner, margin = ("granian", geomean) if geomean >= 1 else ("uvicorn", 1 / geomean)
    verdict = f"{winner} wins by ×{margin:.2f} in throughput (geometric mean over endpoints)"
    print(f"  {verdict}")
    results.append(
        Result(label="granian/uvicorn throughput, geomean", value=geomean, unit="×", note=verdict)
    )
    return results


def _summarize(
    step: str, runs: list[LoadResult], base_rps: Result | None, base_p99: Result | None
) -> tuple[Result, Result]:
    errors = sum(r.errors for r in runs)
    if errors:
        print(f"  warning: {errors} errors for {step}")
    each = "/".join(f"{r.rps:,.0f}" for r in runs)
    rps = Result(
        label=f"{step}, throughput",
        value=statistics.median(r.rps for r in runs),
        unit="req/s",
        baseline=base_rps,
        note=f"rounds {each}; p50 {statistics.median(r.p50_ms for r in runs):.1f} ms; "
        f"client CPU {max(r.client_cpu for r in runs):.0%}"
        + (f"; {errors} errors" if errors else ""),
    )
    p99 = Result(
        label=f"{step}, p99",
        value=statistics.median(r.p99_ms for r in runs),
        unit="ms",
        baseline=base_p99,
        note="rounds " + "/".join(f"{r.p99_ms:.0f}" for r in runs),
    )
    return rps, p99
