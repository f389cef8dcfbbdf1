"""What a sign-in costs: argon2id verification alone, then POST /api/v1/auth/login."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import msgspec
from argon2 import PasswordHasher
from tqdm import tqdm

from bench import Result
from bench.env import ADMIN_PASSWORD, ADMIN_PHONE, Context, serve
from bench.loadgen import load

NAME = "login"
TITLE = "Login cost: argon2id verify in-process vs POST /api/v1/auth/login (granian)"

CLIENTS = 4


def _verify(
    hasher: PasswordHasher, stored: str, count: int, threads: int
) -> tuple[list[float], float]:
    """Run ``count`` verifications on ``threads`` threads: the seconds each took, and the
    wall time of the whole batch."""

    def one(_: int) -> float:
        started = time.perf_counter()
        hasher.verify(stored, ADMIN_PASSWORD)
        return time.perf_counter() - started

    started = time.perf_counter()
    with (
        ThreadPoolExecutor(threads) as pool,
        tqdm(total=count, desc=f"argon2 verify ×{threads}", leave=False, disable=None) as bar,
    ):
        seconds = []
        for took in pool.map(one, range(count)):
            seconds.append(took)
            bar.update()
    return seconds, time.perf_counter() - started


async def run(ctx: Context) -> list[Result]:
    s = ctx.settings
    params = f"t={s.argon2_time_cost}, m={s.argon2_memory_kib} KiB, p={s.argon2_parallelism}"
    print(f"  argon2id {params}")
    hasher = PasswordHasher(
        time_cost=s.argon2_time_cost,
        memory_cost=s.argon2_memory_kib,
        parallelism=s.argon2_parallelism,
    )
    stored = hasher.hash(ADMIN_PASSWORD)
    hasher.verify(stored, ADMIN_PASSWORD)  # warm-up

    sequential, concurrent = ctx.count(20, 5), ctx.count(40, 8)
    each, _ = _verify(hasher, stored, sequential, 1)
    raw_ms = Result(
        label="argon2 verify, in-process (median)",
        value=1000 * statistics.median(each),
        unit="ms",
        note=f"{params}; mean {1000 * statistics.mean(each):.0f} ms, {sequential} verifies",
    )
    _, wall = _verify(hasher, stored, concurrent, CLIENTS)
    raw_rate = Result(
        label=f"argon2 verify, {CLIENTS} threads",
        value=concurrent / wall,
        unit="verifies/s",
        note=f"{concurrent} verifies",
    )
    print(
        f"  in-process: {raw_ms.formatted()} per verify; {raw_rate.label}: {raw_rate.formatted()}"
    )

    body = msgspec.json.encode({"phone": ADMIN_PHONE, "password": ADMIN_PASSWORD})
    async with serve(ctx, "granian") as server:
        target = server.target("POST", "/api/v1/auth/login", body=body)
        await load(target, connections=1, duration=60, max_requests=2, label="warm-up")
        one = await load(
            target, connections=1, duration=300, max_requests=sequential, label="login, sequential"
        )
        print(f"  sequential: {one.summary()}")
        many = await load(
            target,
            connections=CLIENTS,
            duration=ctx.seconds(10, 3),
            label=f"login, {CLIENTS} clients",
        )
        print(f"  {CLIENTS} clients: {many.summary()}")
    for measured in (one, many):
        if measured.errors:
            print(f"  warning: {measured.errors} failed logins")

    return [
        raw_ms,
        Result(
            label="POST /auth/login, sequential (median)",
            value=one.p50_ms,
            unit="ms",
            baseline=raw_ms,
            note=f"mean {one.mean_ms:.0f} ms, {one.requests} logins",
        ),
        raw_rate,
        Result(
            label=f"POST /auth/login, {CLIENTS} clients",
            value=many.rps,
            unit="logins/s",
            baseline=raw_rate,
            note=f"p50 {many.p50_ms:.0f} ms, p99 {many.p99_ms:.0f} ms, {many.requests} logins",
        ),
    ]
