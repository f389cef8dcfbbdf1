"""A watch on each server worker's event loop, to see what holds it (bench cards_under_push).

Never deployed. The bench starts bench/watched_app.py like the real app
(``bench.env.serve(..., app="bench.watched_app:app")``) with ``CDS_BENCH_LOOP_WATCH`` set to
a directory. Each worker then runs, beside the API:

- a heartbeat task that sleeps ``BEAT`` seconds and records how late it woke up (the loop's
  lag: how long any request that became ready meanwhile waited for the loop);
- a sampler thread that, while the heartbeat is more than ``STALL`` late, takes the loop
  thread's Python stack every ``SAMPLE`` seconds and counts it under the chain of the API's
  own frames on it (``routes/sync.py:push > ingest.py:ingest``), with the innermost frame
  outside the API (a library's) after it. A sample stands for ``SAMPLE`` seconds of a stall.

The figures are cumulative; the thread writes them to ``<dir>/<pid>.json`` every half
second, so a bench reads them before and after a measurement and takes the difference.
Cython and C code (asyncpg's protocol, msgspec) have no Python frames: their time counts
under the Python line that called them.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec

WATCH_ENV = "CDS_BENCH_LOOP_WATCH"
BEAT = 0.002  # seconds the heartbeat sleeps
STALL = 0.010  # a heartbeat this late: the loop is held, sample what holds it
SAMPLE = 0.001  # seconds between samples during a stall
LAG_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # ms: upper bounds of the lag histogram
ROOT = str(Path(__file__).resolve().parent.parent) + os.sep
OWN = ("api" + os.sep, "schemas" + os.sep)


class Figures(msgspec.Struct):
    """A worker's cumulative figures (or their difference over a measurement)."""

    beats: int = 0
    lags: list[int] = msgspec.field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    late_ms: float = 0.0  # total lateness of the beats later than STALL
    worst_ms: float = 0.0
    held: dict[str, int] = msgspec.field(default_factory=dict)  # samples during stalls, by stack
    workers: int = 1


class Watch:
    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{os.getpid()}.json"
        self.lock = threading.Lock()
        self.beat = time.perf_counter()
        self.loop_thread = 0
        self.lags = [0] * (len(LAG_BUCKETS) + 1)  # beats by how late they woke up
        self.beats = 0
        self.late_ms = 0.0  # total lateness of the beats over STALL
        self.worst_ms = 0.0
        self.held: Counter[str] = Counter()  # samples during stalls, by stack

    async def heartbeat(self) -> None:
        self.loop_thread = threading.get_ident()
        threading.Thread(target=self.sample, name="loop-watch", daemon=True).start()
        while True:
            self.beat = time.perf_counter()
            await asyncio.sleep(BEAT)
            late_ms = 1000 * (time.perf_counter() - self.beat - BEAT)
            index = next((i for i, b in enumerate(LAG_BUCKETS) if late_ms <= b), len(LAG_BUCKETS))
            with self.lock:
                self.beats += 1
                self.lags[index] += 1
                self.worst_ms = max(self.worst_ms, late_ms)
                if late_ms > 1000 * STALL:
                    self.late_ms += late_ms

    def sample(self) -> None:
        sys.setswitchinterval(SAMPLE)  # else this thread waits up to 5 ms for the GIL
        written = time.perf_counter()
        while True:
            time.sleep(SAMPLE)
            now = time.perf_counter()
            if now - self.beat > BEAT + STALL:
                frame = sys._current_frames().get(self.loop_thread)
                if frame is not None:
                    key = stack_key(frame)
                    with self.lock:
                        self.held[key] += 1
            if now - written > 0.5:
                written = now
                self.write()

    def write(self) -> None:
        with self.lock:
            figures = Figures(
                self.beats, list(self.lags), self.late_ms, self.worst_ms, dict(self.held)
            )
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(msgspec.json.encode(figures))
        temporary.replace(self.path)


def stack_key(frame: FrameType) -> str:
    """The API's frames on the stack, outermost first, then the innermost frame if it is a
    library's: ``routes/sync.py:push > ingest.py:ingest | msgspec/...:func``."""
    own: list[str] = []
    innermost = ""
    current: FrameType | None = frame
    while current is not None:
        filename = current.f_code.co_filename
        relative = filename[len(ROOT) :] if filename.startswith(ROOT) else ""
        name = f"{current.f_code.co_name}:{current.f_lineno}"
        if relative.startswith(OWN):
            own.append(f"{relative.split(os.sep, 1)[1]}:{name}")
        elif not innermost and not own:
            innermost = f"{'/'.join(Path(filename).parts[-2:])}:{name}"
        current = current.f_back
    chain = " > ".join(reversed(own)) or "(no API frame)"
    return f"{chain} | {innermost}" if innermost else chain


def watched(inner: Any) -> Any:
    """``inner`` (an ASGI app) with the watch started on its loop at the first call."""
    directory = os.environ.get(WATCH_ENV)
    if not directory:
        return inner
    watch = Watch(Path(directory))
    started: list[asyncio.Task[None]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if not started:  # the first call (the lifespan's) runs on the worker's loop
            started.append(asyncio.get_running_loop().create_task(watch.heartbeat()))
        await inner(scope, receive, send)

    return app
