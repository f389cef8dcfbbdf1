"""Cards while pushes run (issue 15, part 5): the own-ward card, read by its ward official,
with no writes and while open-loop pushers send its province 2,000 (and 1,000) submissions/s.

A durable database of its own: Thanh Hóa's 166 wards with a few households each (their
counters rebuilt, so the card has numbers), a team member in each pushing ward and the card
ward's official. Two granian servers (default workers) take turns, one at a time, round after
round, their order rotating: ``main`` (bench/write_path.py's ``main_tree``: the main branch,
or ``BENCH_BASELINE=<rev>``) and this tree. Each runs one round of phases:

- **baseline**: ``READERS`` closed-loop clients read the card, nothing else runs;
- **loaded**: the same readers while pushers send batches of ``BATCH`` new, valid
  submissions (fresh households, made in SQL before the phase) on a fixed schedule (open
  loop: a batch leaves on time whether or not earlier ones were answered, on a connection of
  its own if every other is busy), into ``PUSH_WARDS`` other wards of the province, or into
  those and the card's own ward.

Every push drops the province's kept cards in the worker that took it and, within 0.1 s, in
the other, so under load many card reads wait for a build. Each loaded figure is compared
with its server's baseline in the same round, and with main's. With ``CDS_BENCH_LOOP_WATCH``
(any value), the servers run under bench/loop_watch.py's watch: the bench then also prints,
per phase, how late each worker's loop was and which of the API's stacks held it (slightly
slower: a heartbeat and a sampler run in every worker).
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import shutil
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import msgspec

from api.db import connect
from api.stats.keys import record_keys
from bench import Result
from bench.env import DATA_DIR, Context, Server, serve, setup
from bench.loadgen import LoadResult, load, read_response
from bench.loop_watch import LAG_BUCKETS, WATCH_ENV, Figures
from bench.stats import Dataset, load_households, rebuild_counters
from bench.sync import BATCH, PASSWORD, _collector, _households, _push_check, submission
from bench.write_path import main_tree

NAME = "cards_under_push"
TITLE = "Own-ward card while its province takes pushed submissions (granian)"

DATABASE = "cds_bench_cards"  # its own: the card's numbers do not depend on other benches
PROVINCE = "38"  # Thanh Hóa
CARD_WARD = "14812"  # Phường Bỉm Sơn
PUSH_WARDS = 4  # other wards of the province taking pushes
OFFICIAL = "+84930000001"
# A few officials with a dashboard open, not a crowd: with 4 clients on 2 workers a card
# request rarely queues behind another card, so its p99 shows waiting for the loop and the
# pool behind the pushes rather than queueing the readers cause themselves.
READERS = 4
PER_WARD = 60  # background households per ward (10,000 in the province)
WARM = 1.5  # seconds of pushing before the readers start
MAX_IN_FLIGHT = 64  # batches: beyond this a saturated server gets no more (counted as skipped)


@dataclass(frozen=True)
class Phase:
    label: str
    rate: int  # submissions/s sent (0: baseline)
    own_ward: bool = False  # push into the card's ward too


# A round of one server: its baseline first, then the loads.
ROUND = [
    Phase("baseline", 0),
    Phase("other wards, 1,000/s", 1_000),
    Phase("other wards, 2,000/s", 2_000),
    Phase("other wards + own ward, 2,000/s", 2_000, own_ward=True),
    # More than the server stores on this machine: pushes queue, readers must not.
    Phase("other wards, 4,000/s (overload)", 4_000),
]


@dataclass
class Pushed:
    """An open-loop push run: every batch's answer, when it came and what it stored."""

    sent: int = 0
    skipped: int = 0  # batches not sent: MAX_IN_FLIGHT were waiting for their answers
    errors: int = 0
    answers: list[tuple[float, float, int]] = field(default_factory=list)  # at, latency, stored

    def rate(self, start: float, end: float) -> float:
        """Submissions stored per second, by answers that came between start and end."""
        return sum(n for at, _, n in self.answers if start <= at <= end) / (end - start)

    def p99_ms(self) -> float:
        latencies = sorted(latency for _, latency, _ in self.answers)
        return 1000 * latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)] if latencies else 0


async def push_open_loop(
    server: Server, requests: Iterator[bytes], batches_per_s: float, until: float
) -> Pushed:
    """Send the prepared requests, one every 1/batches_per_s seconds, until ``until``; each
    batch's latency counts from when it was due (a late sender counts against the run)."""
    run = Pushed()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    opened: list[asyncio.StreamWriter] = []
    in_flight: set[asyncio.Task[None]] = set()

    async def send(payload: bytes, due: float) -> None:
        try:
            if idle:
                reader, writer = idle.pop()
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                opened.append(writer)
            writer.write(payload)
            status, answer, _ = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            run.errors += 1  # the connection is lost: not reused
            return
        done = time.perf_counter()
        stored = _push_check(status, answer)
        run.errors += stored == 0
        run.answers.append((done, done - due, stored))
        idle.append((reader, writer))

    started = time.perf_counter()
    try:
        for number in range(math.ceil((until - started) * batches_per_s)):
            due = started + number / batches_per_s
            if (delay := due - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= MAX_IN_FLIGHT:
                run.skipped += 1
                continue
            payload = next(requests, None)
            if payload is None:
                break
            run.sent += 1
            task = asyncio.create_task(send(payload, due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=60)
    finally:
        for task in in_flight:
            task.cancel()
        for writer in opened:
            writer.close()
    return run


class LoopLag:
    """How late this (the bench's) loop runs a 5 ms timer: the clients' own share of a p99."""

    def __init__(self) -> None:
        self.late: list[float] = []

    async def watch(self, until: float) -> None:
        while (now := time.perf_counter()) < until:
            await asyncio.sleep(0.005)
            self.late.append(time.perf_counter() - now - 0.005)

    def p99_ms(self) -> float:
        late = sorted(self.late)
        return 1000 * late[max(0, math.ceil(0.99 * len(late)) - 1)] if late else 0.0


@dataclass(frozen=True)
class Measured:
    phase: Phase
    cards: LoadResult
    pushed: Pushed | None
    push_rate: float  # submissions stored per second while the cards were read
    client_lag_p99: float  # ms
    load: float
    watch: Figures | None  # the server's loop watch over the phase (difference)


@dataclass
class Setup:
    card_ward: asyncpg.Record
    push_wards: list[asyncpg.Record]
    phones: dict[str, str]  # ward code → its team member's phone


async def prepare(ctx: Context, rng: random.Random) -> Setup:
    conn = await connect(ctx.dsn)
    try:
        wards = await conn.fetch(
            """SELECT id, province_id, code FROM area
               WHERE parent_id = (SELECT id FROM area WHERE code = $1) ORDER BY code""",
            PROVINCE,
        )
        by_code = {w["code"]: w for w in wards}
        card_ward = by_code[CARD_WARD]
        push_wards = [w for w in wards if w["code"] != CARD_WARD][:: len(wards) // PUSH_WARDS]
        push_wards = push_wards[:PUSH_WARDS]
        phones: dict[str, str] = {}
        for number, ward in enumerate([card_ward, *push_wards], start=2):
            phones[ward["code"]] = f"+8493{number:07d}"
            collector = await _collector(conn, ward, phones[ward["code"]])
        await conn.execute(
            """INSERT INTO app_user (id, phone, password_hash, role, area_id, province_id)
               SELECT $1, $2, password_hash, 'ward_official', $3, $4
               FROM app_user WHERE id = $5""",
            uuid.uuid4(),
            OFFICIAL,
            card_ward["id"],
            card_ward["province_id"],
            collector,
        )
        per_ward = ctx.count(PER_WARD, 10)
        await load_households(
            conn,
            Dataset(list(wards), by_code, collector),
            per_ward,
            rng,
            f"  {per_ward * len(wards):,} households",
        )
        await rebuild_counters(conn, record_keys(ctx.settings))
    finally:
        await conn.close()
    return Setup(card_ward, push_wards, phones)


async def push_requests(
    ctx: Context,
    server: Server,
    setup: Setup,
    tokens: dict[str, str],
    phase: Phase,
    duration: float,
    rng: random.Random,
) -> list[bytes]:
    """The phase's push requests, ready to send: fresh households made in SQL, the batches
    taking the wards in turn, each with its ward's team member's token."""
    wards = setup.push_wards + ([setup.card_ward] if phase.own_ward else [])
    batches = math.ceil(phase.rate / BATCH * (WARM + duration)) + 1
    per_ward = math.ceil(batches / len(wards)) * BATCH
    conn = await connect(ctx.dsn)
    try:
        fresh = {w["code"]: iter(await _households(conn, w, per_ward)) for w in wards}
    finally:
        await conn.close()
    requests = []
    for number in range(batches):
        code = wards[number % len(wards)]["code"]
        items = [submission(next(fresh[code]), rng) for _ in range(BATCH)]
        body = msgspec.json.encode({"submissions": items})
        target = server.target("POST", "/api/v1/sync/push", token=tokens[code], body=body)
        requests.append(target.request_bytes())
    return requests


def read_watch(directory: Path | None) -> dict[str, Figures]:
    if directory is None:
        return {}
    return {
        p.stem: msgspec.json.decode(p.read_bytes(), type=Figures) for p in directory.glob("*.json")
    }


def watch_difference(before: dict[str, Figures], after: dict[str, Figures]) -> Figures:
    """The loop watch's figures over a phase, added up over the workers."""
    total = Figures(workers=len(after))
    held = Counter[str]()
    for pid, now in after.items():
        then = before.get(pid, Figures())
        total.beats += now.beats - then.beats
        total.late_ms += now.late_ms - then.late_ms
        total.lags = [t + a - b for t, a, b in zip(total.lags, now.lags, then.lags, strict=True)]
        held.update(now.held)
        held.subtract(then.held)
    total.held = dict(+held)
    return total


# What held the loops, by the first of these found on a sampled stack (in this order).
STAGES = [
    ("decoding pushed items", ("ingest.py:decode_item", "ingest.py:_decode_error")),
    ("validating them", ("ingest.py:_precheck", "ingest.py:_keys_known")),
    ("hashing them", ("ingest.py:content_hash",)),
    ("folding the counters' log", ("stats/folder.py",)),
    ("building a card", ("stats/routes.py:build",)),
    ("counter deltas of a push (Python)", ("stats/counters.py", "stats/catalog.py")),
    ("storing a push (rows, SQL arguments)", ("ingest.py:_store_batch",)),
    ("rest of a push (envelope, results)", ("routes/sync.py:push",)),
    ("sending responses", ("send_wrapper",)),
    ("other API code", (" > ", "py:")),
]


def stages(held: dict[str, int]) -> Counter[str]:
    """Samples by stage (STAGES; stacks with no API frame: the loop, I/O and the server)."""
    found = Counter[str]()
    for key, count in held.items():
        chain = key.partition(" | ")[0]
        stage = next(
            (name for name, marks in STAGES if any(mark in chain for mark in marks)),
            "no API frame (the loop itself, I/O, the server)",
        )
        found[stage] += count
    return found


def describe_watch(watch: Figures, seconds: float, top: int = 8) -> list[str]:
    """Lines saying how late the loops were and what held them (by function, lines merged)."""
    bounds = [f"≤{b}" for b in LAG_BUCKETS] + [f">{LAG_BUCKETS[-1]}"]
    histogram = ", ".join(f"{b} ms: {n}" for b, n in zip(bounds, watch.lags, strict=True) if n)
    share = watch.late_ms / (1000 * seconds * max(watch.workers, 1))
    lines = [
        f"    server loops: {watch.beats:,} beats late by {histogram}; "
        f"stalls > 10 ms held the loops {share:.1%} of the time"
    ]
    by_stage = stages(watch.held)
    total = sum(by_stage.values())
    lines.append(
        "    held by: "
        + ", ".join(f"{name} {count / total:.0%}" for name, count in by_stage.most_common())
    )
    by_function = Counter[str]()
    for key, count in watch.held.items():
        by_function[_without_lines(key)] += count
    total = sum(by_function.values())
    for key, count in by_function.most_common(top):
        lines.append(f"      {count / total:6.1%}  {count:>6,} ms  {key}")
    return lines


def _without_lines(key: str) -> str:
    def strip(part: str) -> str:
        return part.rsplit(":", 1)[0] if part.rsplit(":", 1)[-1].isdigit() else part

    chain, _, inner = key.partition(" | ")
    merged = " > ".join(strip(p) for p in chain.split(" > "))
    return f"{merged} | {strip(inner)}" if inner else merged


async def measure(
    ctx: Context,
    server: Server,
    setup: Setup,
    tokens: dict[str, str],
    phase: Phase,
    duration: float,
    rng: random.Random,
    watch_dir: Path | None,
) -> Measured:
    card = server.target("GET", f"/api/v1/stats/areas/{CARD_WARD}", token=tokens["official"])
    requests = (
        await push_requests(ctx, server, setup, tokens, phase, duration, rng) if phase.rate else []
    )
    load_before = os.getloadavg()[0]
    await load(card, connections=READERS, duration=0.5, label="warm-up")
    pusher: asyncio.Task[Pushed] | None = None
    if phase.rate:
        until = time.perf_counter() + WARM + duration
        pusher = asyncio.create_task(
            push_open_loop(server, iter(requests), phase.rate / BATCH, until)
        )
        await asyncio.sleep(WARM)
    lag = LoopLag()
    lag_task = asyncio.create_task(lag.watch(time.perf_counter() + duration))
    watched = read_watch(watch_dir)
    start = time.perf_counter()
    cards = await load(card, connections=READERS, duration=duration, label=phase.label)
    end = time.perf_counter()
    watch = watch_difference(watched, read_watch(watch_dir)) if watch_dir else None
    await lag_task
    pushed = await pusher if pusher else None
    if cards.errors:
        raise RuntimeError(f"{phase.label}: {cards.errors} card requests failed")
    return Measured(
        phase=phase,
        cards=cards,
        pushed=pushed,
        push_rate=pushed.rate(start, end) if pushed else 0.0,
        client_lag_p99=lag.p99_ms(),
        load=load_before,
        watch=watch,
    )


def _line(number: int, variant: str, got: Measured, baseline: Measured | None) -> str:
    cards = got.cards
    text = (
        f"  round {number}, {variant}, {got.phase.label}: cards {cards.rps:>6,.0f}/s, "
        f"p50 {cards.p50_ms:5.1f} ms, p99 {cards.p99_ms:6.1f} ms, "
        f"max {1000 * cards.latencies[-1]:6.1f} ms"
    )
    if baseline is not None:
        text += f" (p99 ×{cards.p99_ms / baseline.cards.p99_ms:.1f} of the baseline)"
    if got.pushed is not None:
        text += (
            f"; pushes stored {got.push_rate:,.0f}/s of {got.phase.rate:,}/s sent on schedule, "
            f"batch p99 {got.pushed.p99_ms():,.0f} ms"
        )
        if got.pushed.skipped or got.pushed.errors:
            text += f", {got.pushed.skipped} skipped, {got.pushed.errors} failed"
    return (
        text + f"; bench loop lag p99 {got.client_lag_p99:.1f} ms, client CPU "
        f"{cards.client_cpu:.0%}; load {got.load:.1f}"
    )


def spread(values: list[float], digits: int = 0) -> str:
    return f"{min(values):,.{digits}f}–{max(values):,.{digits}f}"


# The code to compare with (bench/write_path.py: BENCH_BASELINE, the main branch by
# default), and this tree. With both the same code, the two show this machine's noise.
VARIANTS = ("main", "this tree")


async def run(shared: Context) -> list[Result]:
    ctx = await setup(shared.quick, DATABASE)
    rng = random.Random(1505)
    rounds = ctx.count(3, 1)
    duration = ctx.seconds(8, 2)
    prepared = await prepare(ctx, rng)
    tree = main_tree()
    watch_dir: Path | None = None
    if os.environ.get(WATCH_ENV):
        watch_dir = DATA_DIR / "loop-watch"
        watch_dir.mkdir(parents=True, exist_ok=True)
        for module in ("loop_watch.py", "watched_app.py"):  # main's tree has no watch
            shutil.copy(Path(__file__).parent / module, tree / "bench" / module)
    names = list(VARIANTS)
    measured: dict[str, list[list[Measured]]] = {name: [] for name in names}
    for number in range(1, rounds + 1):
        shift = (number - 1) % len(names)  # each variant in every position in turn
        for name in names[shift:] + names[:shift]:
            settings: dict[str, str] = {}
            if watch_dir is not None:
                for old in watch_dir.glob("*.json"):
                    old.unlink()
                settings[WATCH_ENV] = str(watch_dir)
            app = "bench.watched_app:app" if watch_dir else "api.asgi:app"
            label = "cards-under-push-" + name.replace(" ", "-").replace(",", "")
            if name == "main":
                settings["PYTHONPATH"] = str(tree)
                server_cm = serve(ctx, "granian", settings, app=app, label=label, cwd=tree)
            else:
                server_cm = serve(ctx, "granian", settings, app=app, label=label)
            async with server_cm as server:
                tokens = {"official": await server.login(OFFICIAL, PASSWORD)}
                for code, phone in prepared.phones.items():
                    tokens[code] = await server.login(phone, PASSWORD)
                measured[name].append([])
                baseline: Measured | None = None
                for phase in ROUND:
                    got = await measure(
                        ctx, server, prepared, tokens, phase, duration, rng, watch_dir
                    )
                    measured[name][-1].append(got)
                    print(_line(number, name, got, baseline if phase.rate else None))
                    if got.watch is not None:
                        print("\n".join(describe_watch(got.watch, got.cards.seconds)))
                    if not phase.rate:
                        baseline = got
    return summarize(measured)


def summarize(measured: dict[str, list[list[Measured]]]) -> list[Result]:
    """Per variant and phase: the median over the rounds, its range, the ratio to the
    baseline before it in the same round, and to main's in the same round."""
    results: list[Result] = []
    for name, rounds in measured.items():
        baselines = [one[0] for one in rounds]
        p99s = [m.cards.p99_ms for m in baselines]
        base = Result(
            label=f"{name}: card p99, no pushes",
            value=statistics.median(p99s),
            unit="ms",
            note=f"range {spread(p99s, 1)} ms; {READERS} readers; "
            f"{statistics.median(m.cards.rps for m in baselines):,.0f} cards/s, "
            f"p50 {statistics.median(m.cards.p50_ms for m in baselines):.1f} ms",
        )
        results.append(base)
        for index, phase in enumerate(ROUND):
            if not phase.rate:
                continue
            got = [one[index] for one in rounds]
            p99 = [m.cards.p99_ms for m in got]
            within = [m.cards.p99_ms / r[0].cards.p99_ms for m, r in zip(got, rounds, strict=True)]
            note = (
                f"range {spread(p99, 1)} ms; ×{min(within):.1f}–{max(within):.1f} of its "
                f"baseline by round; p50 {statistics.median(m.cards.p50_ms for m in got):.1f} ms"
                f"; {statistics.median(m.cards.rps for m in got):,.0f} cards/s"
            )
            if name != "main":
                of_main = [
                    m.cards.p99_ms / one[index].cards.p99_ms
                    for m, one in zip(got, measured["main"], strict=True)
                ]
                note += f"; ×{min(of_main):.2f}–{max(of_main):.2f} of main's p99 by round"
            rates = [m.push_rate for m in got]
            note += (
                f"; stored {statistics.median(rates):,.0f} subs/s ({spread(rates)}) of "
                f"{phase.rate:,}/s sent; ≤ 100 ms in every round: "
                + ("met" if max(p99) <= 100 else "NOT met")
            )
            results.append(
                Result(
                    label=f"{name}: card p99, {phase.label}",
                    value=statistics.median(p99),
                    unit="ms",
                    note=note,
                )
            )
    return results
