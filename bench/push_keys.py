"""Push with record keys vs without, alone and in many alternating rounds (issue 10).

``bench privacy`` compares pushes in 3 rounds among many other loads, and its push ratio
swung from ×0.64 to ×1.03 between rounds and runs on this shared machine. This isolates it:
two servers on one fresh database, the API ("keys") and ``bench/exact_app.py``'s keyless
variant (the counters' SQL with a constant 0 for every record key), plus a third server
started first that takes no traffic, so the folder (one per database, the first process to
take its lock) never runs inside a measured server. Each round pushes batches of 100 new
``household_digital`` submissions from 8 clients for 6 s into one ward, the two variants
back to back in alternating order; the ratio is quoted per round.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Iterator

from api.db import connect
from api.stats.keys import RecordKeys, sql_key
from bench import Result
from bench.env import Context, Server, serve, setup
from bench.exact_app import VARIANT_ENV
from bench.sync import (
    BATCH,
    PUSH_CLIENTS,
    PUSH_WARD,
    _clients,
    _collector,
    _households,
    _push_check,
    push_bodies,
)

NAME = "push_keys"
TITLE = "Push with record keys vs without (many alternating rounds)"
DATABASE = "cds_bench_push_keys"
EXACT_APP = "bench.exact_app:app"
PHONE = "+84910000011"


# The same statement with and without a record key per unit (a person id as the counters'
# SQL builds it), over UNITS generated ids: the key's own PostgreSQL cost, free of HTTP noise.
UNITS = 200_000
_IDS = f"SELECT gen_random_uuid()::text || ':' || g AS unit FROM generate_series(1, {UNITS}) g"
WITHOUT_KEY = f"SELECT sum(length(unit)) FROM ({_IDS}) s"
WITH_KEY = f"SELECT sum(length(unit) + {sql_key('unit', '$1', '$2')}) FROM ({_IDS}) s"


async def key_cost(dsn: str, repeats: int) -> tuple[float, list[float]]:
    """Microseconds a record key adds per unit: median, and each alternating pair's."""
    keys = RecordKeys(b"bench-push-keys-secret")
    conn = await connect(dsn)
    try:
        added = []
        for index in range(repeats):
            timed = {}
            pair = [("with", WITH_KEY, keys.params), ("without", WITHOUT_KEY, ())]
            for name, sql, args in pair if index % 2 == 0 else reversed(pair):
                started = time.perf_counter()
                await conn.fetchval(sql, *args)
                timed[name] = time.perf_counter() - started
            added.append(1e6 * (timed["with"] - timed["without"]) / UNITS)
    finally:
        await conn.close()
    return statistics.median(added), sorted(added)


async def run(shared: Context) -> list[Result]:
    ctx = await setup(shared.quick, DATABASE)
    rounds, seconds = ctx.count(10, 2), ctx.seconds(6, 1)
    rng = random.Random(10)
    conn = await connect(ctx.dsn)
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", PUSH_WARD)
        await _collector(conn, area, PHONE)
        households = ctx.count(2 * rounds * 8 * 1_500 * seconds, 20_000)  # more than enough
        print(f"  creating {households:,} households …")
        fresh: Iterator[uuid.UUID] = iter(await _households(conn, area, households))
    finally:
        await conn.close()

    push_body = push_bodies(fresh, rng)

    rates: dict[str, list[float]] = {"keys": [], "no keys": []}
    async with (
        serve(ctx, "granian", {}, "api.asgi:app", "push-keys-folder"),  # leads the folder
        serve(ctx, "granian", {}, "api.asgi:app", "push-keys-on") as keyed,
        serve(ctx, "granian", {VARIANT_ENV: "keyless"}, EXACT_APP, "push-keys-off") as keyless,
    ):
        servers: dict[str, Server] = {"keys": keyed, "no keys": keyless}
        tokens = {name: await server.login(PHONE, "bench-password-2") for name, server in
                  servers.items()}  # fmt: skip
        for index in range(rounds):
            order = ["keys", "no keys"] if index % 2 == 0 else ["no keys", "keys"]
            for name in order:
                server, token = servers[name], tokens[name]
                path = "/api/v1/sync/push"
                warm = ctx.seconds(1, 0.3)
                await _clients(
                    server, token, path, push_body, _push_check, connections=2, duration=warm
                )
                load, accepted = await _clients(
                    server, token, path, push_body, _push_check,
                    connections=PUSH_CLIENTS, duration=seconds,
                )  # fmt: skip
                if load.errors:
                    raise RuntimeError(f"push: {load.errors} failed batches")
                rates[name].append(accepted / load.seconds)
                print(f"  round {index + 1}, {name}: {accepted / load.seconds:,.0f} subs/s")
    per_round = sorted(k / n for k, n in zip(rates["keys"], rates["no keys"], strict=True))
    baseline = Result(
        label=f"push, {BATCH}/batch, {PUSH_CLIENTS} clients, no keys",
        value=statistics.median(rates["no keys"]),
        unit="subs/s",
        note=f"rounds {min(rates['no keys']):,.0f}–{max(rates['no keys']):,.0f}",
    )
    keyed_result = Result(
        label=f"push, {BATCH}/batch, {PUSH_CLIENTS} clients, record keys",
        value=statistics.median(rates["keys"]),
        unit="subs/s",
        baseline=baseline,
        note=f"rounds {min(rates['keys']):,.0f}–{max(rates['keys']):,.0f}; ratio per round "
        f"×{per_round[0]:.2f}–×{per_round[-1]:.2f}, median ×{statistics.median(per_round):.2f}",
    )
    # What the keys can cost at most: their PostgreSQL time per submission (a household and
    # its members, 3–5 in these submissions), against the whole machine's time per pushed
    # submission at the keyless rate.
    per_unit, pairs = await key_cost(ctx.dsn, ctx.count(9, 3))
    units = 1 + 4  # one household, four members on average (bench.sync.submission)
    machine_us = 1e6 * ctx.settings.workers / baseline.value  # both cores' µs per submission
    cost = Result(
        label="record key in SQL, per unit (HMAC-SHA256, two sha256 calls)",
        value=per_unit,
        unit="µs",
        note=f"pairs {pairs[0]:.2f}–{pairs[-1]:.2f} µs; × {units} units = "
        f"{per_unit * units:.1f} µs per submission, {100 * per_unit * units / machine_us:.1f} % "
        f"of the {machine_us:,.0f} µs of machine time per pushed submission",
    )
    return [baseline, keyed_result, cost]
