"""Learning modules: the size of each starter module's ``GET /modules/{id}`` bundle, and that
endpoint's throughput and latency at 64 clients with and without ``If-None-Match``.

The bundle is the JSON body (uncompressed; no Accept-Encoding) in each language. A
revalidation (matching ETag) still reads the module's latest version number from the
database, so a new version is seen at once; the 304 skips rendering and sending the body.
"""

from __future__ import annotations

import statistics
import uuid

import msgspec

from api.routes.modules import module_etag
from bench import Result
from bench.env import Context, serve
from bench.loadgen import LoadResult, Target, fetch, load

NAME = "modules"
TITLE = "Learning modules: bundle sizes, GET /modules/{id} with and without If-None-Match"

CONNECTIONS = 64
LIMIT = 50_000  # bytes: a bundle must stay below this on a slow mobile connection
MEASURED = "vneid_level2"


async def run(ctx: Context) -> list[Result]:
    warmup, rounds, duration = ctx.seconds(2, 0.5), ctx.count(3, 1), ctx.seconds(10, 2)
    results: list[Result] = []
    async with serve(ctx, "granian") as server:
        token = await server.login()
        auth = {"Authorization": f"Bearer {token}"}
        status, body = await fetch(server.target("GET", "/api/v1/modules", token=token))
        assert status == 200, body[:300]
        modules = msgspec.json.decode(body)["items"]

        for module in modules:
            for language in ("vi", "en"):
                path = f"/api/v1/modules/{module['id']}"
                status, bundle = await fetch(
                    Target(server.port, "GET", path, auth | {"Accept-Language": language})
                )
                assert status == 200, bundle[:300]
                size = len(bundle)
                verdict = "under 50 KB" if size < LIMIT else "OVER 50 KB"
                print(f"  {module['code']} ({language}): {size:,} bytes, {verdict}")
                results.append(
                    Result(
                        label=f"bundle {module['code']} ({language})",
                        value=size,
                        unit="bytes",
                        note=verdict,
                    )
                )

        module = next(m for m in modules if m["code"] == MEASURED)
        path = f"/api/v1/modules/{module['id']}"
        plain = Target(server.port, "GET", path, auth | {"Accept-Language": "vi"})
        etag = module_etag(uuid.UUID(module["id"]), module["version"], "vi")
        cached = Target(
            server.port, "GET", path, auth | {"Accept-Language": "vi", "If-None-Match": etag}
        )
        status, _ = await fetch(cached)
        assert status == 304, f"If-None-Match answered {status}"

        baseline: Result | None = None
        for label, target in (
            ("200 (full body)", plain),
            ("304 (If-None-Match)", cached),
        ):
            await load(target, connections=CONNECTIONS, duration=warmup, label="warm-up")
            runs: list[LoadResult] = []
            for round_no in range(1, rounds + 1):
                measured = await load(
                    target, connections=CONNECTIONS, duration=duration, label=f"{label} #{round_no}"
                )
                print(f"  GET /modules/{{id}} {label} #{round_no}: {measured.summary()}")
                runs.append(measured)
            errors = sum(r.errors for r in runs)
            rps = Result(
                label=f"GET /modules/{{id}} {label}, {CONNECTIONS} clients",
                value=statistics.median(r.rps for r in runs),
                unit="req/s",
                baseline=baseline,
                note=f"rounds {'/'.join(f'{r.rps:,.0f}' for r in runs)}"
                + (f"; {errors} errors" if errors else ""),
            )
            results += [
                rps,
                Result(
                    label=f"GET /modules/{{id}} {label}, p50",
                    value=statistics.median(r.p50_ms for r in runs),
                    unit="ms",
                ),
                Result(
                    label=f"GET /modules/{{id}} {label}, p99",
                    value=statistics.median(r.p99_ms for r in runs),
                    unit="ms",
                ),
            ]
            baseline = baseline or rps
    return results
