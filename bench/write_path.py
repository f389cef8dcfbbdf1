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

import asyncpg
import msgspec

from api.db import connect
from bench import Result
from bench.env import DATA_DIR, ROOT, Context, Server, serve
from bench.sync import (
    BATCH,
    PASSWORD,
    PUSH_CLIENTS,
    PUSH_WARD,
    SINGLE_CLIENTS,
    _clients,
    _collector,
    _households,
    _push_check,
    _single_check,
    submission,
)

NAME = "write"
TITLE = "Write path: push and single submissions, this tree vs main vs a bare stack (granian)"

VARIANTS = ("main", "this tree", "bare")
# Households made ready per second of measurement: above any variant's rate.
PUSH_CAP = 25_000
SINGLE_CAP = 6_000


def main_tree() -> Path:
    """``main`` as committed, extracted beside the bench data (never the lead's work tree),
    with this tree's migrations so that its readiness check accepts the bench database."""
    tree = DATA_DIR / "main-tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "main"],  # noqa: S607
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


async def measure(
    server: Server, token: str, pool: Pool, rng: random.Random, duration: float
) -> tuple[float, float, str]:
    """Submissions per second pushed, single submissions per second, and a note."""
    fresh = await pool.top_up(int(PUSH_CAP * (duration + 1)))

    def push_body() -> bytes | None:
        items = []
        for household_id in fresh:
            items.append(submission(household_id, rng))
            if len(items) == BATCH:
                return msgspec.json.encode({"submissions": items})
        return None

    path = "/api/v1/sync/push"
    await _clients(server, token, path, push_body, _push_check, connections=2, duration=1)
    pushed, accepted = await _clients(
        server, token, path, push_body, _push_check, connections=PUSH_CLIENTS, duration=duration
    )
    fresh = await pool.top_up(int(SINGLE_CAP * (duration + 1)))

    def single_body() -> bytes | None:
        household_id = next(fresh, None)
        return msgspec.json.encode(submission(household_id, rng)) if household_id else None

    path = "/api/v1/submissions"
    await _clients(server, token, path, single_body, _single_check, connections=8, duration=1)
    single, _ = await _clients(
        server,
        token,
        path,
        single_body,
        _single_check,
        connections=SINGLE_CLIENTS,
        duration=duration,
    )
    if pushed.errors or single.errors:
        raise RuntimeError(f"{server.name}: {pushed.errors} pushes and {single.errors} failed")
    note = (
        f"push p99 {pushed.p99_ms:.0f} ms, single p50 {single.p50_ms:.0f} ms / "
        f"p99 {single.p99_ms:.0f} ms"
    )
    return accepted / pushed.seconds, single.rps, note


def spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}"


async def run(ctx: Context) -> list[Result]:
    rounds = ctx.count(3, 1)
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
    figures: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    token = ""
    for number in range(1, rounds + 1):
        for variant in VARIANTS:
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
                push_rate, single_rate, note = await measure(server, token, pool, rng, duration)
            figures[variant].append((push_rate, single_rate))
            print(
                f"  round {number}, {variant:<9}: push {push_rate:>7,.0f} subs/s, "
                f"single {single_rate:>6,.0f} req/s (load {load:.1f}; {note})"
            )
        bare_push, bare_single = figures["bare"][-1]
        tree_push, tree_single = figures["this tree"][-1]
        main_push, main_single = figures["main"][-1]
        print(
            f"  round {number} ratios: this tree/main push ×{tree_push / main_push:.2f}, "
            f"single ×{tree_single / main_single:.2f}; vs bare push ×{tree_push / bare_push:.2f}"
            f", single ×{tree_single / bare_single:.2f}"
        )

    def ratios(variant: str, of: str, index: int) -> list[float]:
        return [a[index] / b[index] for a, b in zip(figures[variant], figures[of], strict=True)]

    results: list[Result] = []
    for index, (kind, unit) in enumerate((("push", "subs/s"), ("single", "req/s"))):
        bare = Result(
            label=f"bare stack, {kind}",
            value=statistics.median(f[index] for f in figures["bare"]),
            unit=unit,
            note=f"range {spread([f[index] for f in figures['bare']])}",
        )
        results.append(bare)
        for variant in ("main", "this tree"):
            values = [f[index] for f in figures[variant]]
            within = ratios(variant, "bare", index)
            note = f"range {spread(values)}; ×{min(within):.2f}–{max(within):.2f} of bare by round"
            if variant == "this tree":
                gain = ratios("this tree", "main", index)
                note += f"; ×{min(gain):.2f}–{max(gain):.2f} of main by round"
            results.append(
                Result(
                    label=f"{variant}, {kind}",
                    value=statistics.median(values),
                    unit=unit,
                    baseline=bare,
                    note=note,
                )
            )
    return results
