"""The write path (issue 15): push and single submissions of this tree, of ``main`` (the
code before the change, from git) and of a bare stack (bench/bare_app.py: Litestar +
msgspec + asyncpg storing the same rows, no domain logic), in the same run.

The machine is shared: the variants alternate, round after round, each on its own granian
server (default workers) over the same durable database, and every figure is given as the
median and range over the rounds; ratios are taken within a round. Every submission is new
and valid, for a fresh household, as in bench sync.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import asyncpg

from api.db import connect
from bench import Result
from bench.env import DATA_DIR, ROOT, Context, Server, cpu_seconds, postmaster_pid, serve
from bench.sync import (
    PASSWORD,
    PUSH_CLIENTS,
    PUSH_WARD,
    SINGLE_CLIENTS,
    _clients,
    _collector,
    _households,
    _push_check,
    _single_check,
    push_bodies,
    single_bodies,
)

NAME = "write"
TITLE = "Write path: push and single submissions, this tree vs main vs a bare stack (granian)"

VARIANTS = ("main", "this tree", "bare")
# Households made ready per second of measurement: above any variant's rate.
PUSH_CAP = 25_000
SINGLE_CAP = 6_000


# The code "main" stands for: the branch by default, or any revision (BENCH_BASELINE=<rev>), to
# measure a change once it is committed.
BASELINE = os.environ.get("BENCH_BASELINE", "main")


def main_tree() -> Path:
    """``main`` (or ``BENCH_BASELINE``) as committed, extracted beside the bench data (never
    the lead's work tree), with this tree's migrations so that its readiness check accepts
    the bench database."""
    tree = DATA_DIR / "main-tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(  # noqa: S603 - a revision the operator names
        ["git", "archive", BASELINE],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)  # noqa: S603, S607
    for migration in (ROOT / "migrations" / "versions").glob("*.py"):
        shutil.copy(migration, tree / "migrations" / "versions" / migration.name)
    for catalog in (ROOT / "i18n").glob("*/LC_MESSAGES/*.mo"):  # build output, not in git
        shutil.copy(catalog, tree / catalog.relative_to(ROOT))
    return tree


class Pool:
    """Fresh households of the bench ward, made in SQL ahead of each measurement."""

    def __init__(self, dsn: str, area: asyncpg.Record) -> None:
        self.dsn, self.area = dsn, area
        self.ids: list[uuid.UUID] = []

    async def top_up(self, count: int) -> Iterator[uuid.UUID]:
        if len(self.ids) < count:
            conn = await connect(self.dsn)
            try:
                self.ids += await _households(conn, self.area, count - len(self.ids))
            finally:
                await conn.close()
        return self._take()

    def _take(self) -> Iterator[uuid.UUID]:
        while self.ids:
            yield self.ids.pop()


class Figures(NamedTuple):
    push: float  # submissions/s
    single: float  # requests/s
    # CPU per stored submission, in microseconds: the API's processes and PostgreSQL's
    push_app: float
    push_db: float
    single_app: float
    single_db: float
    note: str


class Cpu:
    """CPU time of the server's processes and of PostgreSQL over a measurement."""

    def __init__(self, server: Server, postmaster: int | None) -> None:
        self.server, self.postmaster = server, postmaster
        self.app = cpu_seconds(server.pid)
        self.db = cpu_seconds(postmaster) if postmaster else 0.0

    def per_item(self, items: int) -> tuple[float, float]:
        app = cpu_seconds(self.server.pid) - self.app
        db = cpu_seconds(self.postmaster) - self.db if self.postmaster else 0.0
        return 1e6 * app / max(items, 1), 1e6 * db / max(items, 1)


async def measure(
    server: Server,
    token: str,
    pool: Pool,
    rng: random.Random,
    duration: float,
    postmaster: int | None,
) -> Figures:
    fresh = await pool.top_up(int(PUSH_CAP * (duration + 1)))

    push_body = push_bodies(fresh, rng)

    path = "/api/v1/sync/push"
    await _clients(server, token, path, push_body, _push_check, connections=2, duration=1)
    cpu = Cpu(server, postmaster)
    pushed, accepted = await _clients(
        server, token, path, push_body, _push_check, connections=PUSH_CLIENTS, duration=duration
    )
    push_app, push_db = cpu.per_item(accepted)
    fresh = await pool.top_up(int(SINGLE_CAP * (duration + 1)))

    single_body = single_bodies(fresh, rng)

    path = "/api/v1/submissions"
    await _clients(server, token, path, single_body, _single_check, connections=8, duration=1)
    cpu = Cpu(server, postmaster)
    single, stored = await _clients(
        server,
        token,
        path,
        single_body,
        _single_check,
        connections=SINGLE_CLIENTS,
        duration=duration,
    )
    single_app, single_db = cpu.per_item(stored)
    if pushed.errors or single.errors:
        raise RuntimeError(f"{server.name}: {pushed.errors} pushes and {single.errors} failed")
    note = (
        f"push p99 {pushed.p99_ms:.0f} ms, single p50 {single.p50_ms:.0f} ms / "
        f"p99 {single.p99_ms:.0f} ms"
    )
    return Figures(
        accepted / pushed.seconds,
        single.rps,
        push_app,
        push_db,
        single_app,
        single_db,
        note,
    )


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


async def run(ctx: Context) -> list[Result]:
    # More rounds give steadier medians on a noisy machine (BENCH_ROUNDS=6: about 6 minutes).
    rounds = int(os.environ.get("BENCH_ROUNDS", ctx.count(3, 1)))
    duration = ctx.seconds(6, 2)
    rng = random.Random(15)
    conn = await connect(ctx.dsn)
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", PUSH_WARD)
        user_id = await conn.fetchval("SELECT id FROM app_user WHERE phone = '+84910000001'")
        if user_id is None:
            user_id = await _collector(conn, area, "+84910000001")
    finally:
        await conn.close()
    pool = Pool(ctx.dsn, area)
    tree = main_tree()
    postmaster = postmaster_pid(ctx.dsn)
    figures: dict[str, list[Figures]] = {v: [] for v in VARIANTS}
    token = ""
    for number in range(1, rounds + 1):
        # Each variant in every position in turn: whatever the previous one left running
        # (autovacuum, the folder) falls on each alike.
        shift = (number - 1) % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            if variant == "bare":
                server_cm = serve(
                    ctx,
                    "granian",
                    {"BENCH_BARE_USER": str(user_id)},
                    app="bench.bare_app:app",
                    label="write-bare",
                )
            elif variant == "main":
                server_cm = serve(
                    ctx, "granian", {"PYTHONPATH": str(tree)}, label="write-main", cwd=tree
                )
            else:
                server_cm = serve(ctx, "granian", label="write-tree")
            async with server_cm as server:
                if not token:
                    token = await server.login("+84910000001", PASSWORD)
                load = os.getloadavg()[0]
                got = await measure(server, token, pool, rng, duration, postmaster)
            figures[variant].append(got)
            print(
                f"  round {number}, {variant:<9}: push {got.push:>7,.0f} subs/s "
                f"(CPU/sub: API {got.push_app:,.0f} µs, PostgreSQL {got.push_db:,.0f} µs), "
                f"single {got.single:>6,.0f} req/s (API {got.single_app:,.0f} µs, "
                f"PostgreSQL {got.single_db:,.0f} µs); load {load:.1f}; {got.note}"
            )
        bare, this, before = figures["bare"][-1], figures["this tree"][-1], figures["main"][-1]
        print(
            f"  round {number} ratios: this tree/main push ×{this.push / before.push:.2f}, "
            f"single ×{this.single / before.single:.2f}; vs bare push ×{this.push / bare.push:.2f}"
            f", single ×{this.single / bare.single:.2f}"
        )

    def column(variant: str, field: str) -> list[float]:
        return [getattr(f, field) for f in figures[variant]]

    def ratios(variant: str, of: str, field: str) -> list[float]:
        return [a / b for a, b in zip(column(variant, field), column(of, field), strict=True)]

    results: list[Result] = []
    for kind, unit in (("push", "subs/s"), ("single", "req/s")):
        bare_result = Result(
            label=f"bare stack, {kind}",
            value=statistics.median(column("bare", kind)),
            unit=unit,
            note=f"range {spread(column('bare', kind))}",
        )
        results.append(bare_result)
        for variant in ("main", "this tree"):
            within = ratios(variant, "bare", kind)
            note = (
                f"range {spread(column(variant, kind))}; "
                f"×{min(within):.2f}–{max(within):.2f} of bare by round"
            )
            if variant == "this tree":
                gain = ratios("this tree", "main", kind)
                note += f"; ×{min(gain):.2f}–{max(gain):.2f} of main by round"
            results.append(
                Result(
                    label=f"{variant}, {kind}",
                    value=statistics.median(column(variant, kind)),
                    unit=unit,
                    baseline=bare_result,
                    note=note,
                )
            )
        if postmaster is None:
            continue
        for variant in VARIANTS:
            for side, name in (("app", "API"), ("db", "PostgreSQL")):
                values = column(variant, f"{kind}_{side}")
                results.append(
                    Result(
                        label=f"{variant}, {kind}: {name} CPU per submission",
                        value=statistics.median(values),
                        unit="µs",
                        note=f"range {spread(values)}",
                    )
                )
    return results
