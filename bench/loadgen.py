"""A small HTTP/1.1 load generator for loopback benchmarks.

Each connection is kept alive and sends the same pre-built request bytes; a response is
read by its status line and Content-Length only. It is a closed loop: every connection
waits for its response before sending the next request, so ``connections`` is also the
concurrency. Bounded by time and, optionally, by a request count.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from tqdm import tqdm


@dataclass(frozen=True)
class Target:
    port: int
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # sent as application/json
    host: str = "127.0.0.1"

    def request_bytes(self) -> bytes:
        lines = [
            f"{self.method} {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "User-Agent: cds-bench",
            "Accept: application/json",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        if self.body is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + (self.body or b"")


@dataclass(frozen=True)
class LoadResult:
    requests: int  # completed (any status)
    errors: int  # non-2xx responses (but 304) and failed connections
    seconds: float
    latencies: list[float]  # seconds, sorted
    client_cpu: float  # this process's CPU time / wall time (1.0 = one core busy)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        rank = max(1, math.ceil(q * len(self.latencies)))  # nearest rank
        return 1000 * self.latencies[rank - 1]

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(0.50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(0.99)

    @property
    def mean_ms(self) -> float:
        return 1000 * sum(self.latencies) / len(self.latencies) if self.latencies else 0.0

    def summary(self) -> str:
        return (
            f"{self.requests} requests in {self.seconds:.1f} s, {self.rps:,.0f}/s, "
            f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, {self.errors} errors, "
            f"client CPU {self.client_cpu:.0%}"
        )


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start >= 0:
        end = lower.index(b"\r\n", start + 2)
        length = int(head[start + 17 : end])
        body = await reader.readexactly(length) if length else b""
    elif b"\r\ntransfer-encoding: chunked" in lower:
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            chunks.append((await reader.readexactly(size + 2))[:-2])
        await reader.readuntil(b"\r\n")  # the blank line after the last chunk
        body = b"".join(chunks)
    else:
        body = b""
    return status, body, b"\r\nconnection: close" in lower


async def fetch(target: Target) -> tuple[int, bytes]:
    """One request on a fresh connection (setup steps, readiness checks)."""
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(target.request_bytes())
        status, body, _ = await read_response(reader)
        return status, body
    finally:
        writer.close()


@dataclass
class _Run:
    deadline: float
    remaining: int  # requests left to send; negative: unbounded
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def _connection(target: Target, payload: bytes, run: _Run) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    clock = time.perf_counter
    try:
        while run.remaining != 0 and clock() < run.deadline:
            if writer is None or reader is None:
                try:
                    reader, writer = await asyncio.open_connection(target.host, target.port)
                except OSError:
                    run.errors += 1
                    await asyncio.sleep(0.05)
                    continue
            run.remaining -= 1
            started = clock()
            try:
                writer.write(payload)
                status, _, close = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                run.errors += 1
                writer.close()
                writer = None
                continue
            run.latencies.append(clock() - started)
            if not (200 <= status < 300 or status == 304):  # 304: a successful revalidation
                run.errors += 1
            if close:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


async def load(
    target: Target,
    *,
    connections: int,
    duration: float,
    max_requests: int | None = None,
    label: str = "load",
) -> LoadResult:
    """Send requests on ``connections`` keep-alive connections for ``duration`` seconds
    (or until ``max_requests`` have been sent), with a progress bar."""
    run = _Run(deadline=time.perf_counter() + duration, remaining=max_requests or -1)
    payload = target.request_bytes()
    by_count = max_requests is not None
    bar = tqdm(
        total=max_requests if by_count else duration,
        desc=label,
        unit="req" if by_count else "s",
        leave=False,
        disable=None,  # no bar when the output is not a terminal
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit}",
    )
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    tasks = [asyncio.create_task(_connection(target, payload, run)) for _ in range(connections)]
    try:
        async with asyncio.timeout(duration + 30):  # a hung server must not hang the bench
            while not all(task.done() for task in tasks):
                await asyncio.wait(tasks, timeout=0.25)
                elapsed = time.perf_counter() - wall_started
                bar.n = len(run.latencies) if by_count else min(elapsed, duration)
                bar.refresh()
        for task in tasks:
            task.result()  # a bug in the generator must not pass for a quiet run
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        bar.close()
    seconds = time.perf_counter() - wall_started
    return LoadResult(
        requests=len(run.latencies),
        errors=run.errors,
        seconds=seconds,
        latencies=sorted(run.latencies),
        client_cpu=(time.process_time() - cpu_started) / seconds,
    )
