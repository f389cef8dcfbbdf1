"""``python -m bench [NAME ...] [--quick]``: run benchmarks, print a summary, write
bench/results/latest.md."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import cast

from bench import Benchmark, Result, print_results
from bench.env import ROOT, Context, setup

# Register a benchmark by adding its module (bench/<module>.py) here; they run in this order.
MODULES = [
    "server_choice",
    "login_cost",
    "sync",
    "write_path",
    "decode",
    "copy_batch",
    "write_profile",
    "cards_under_push",
    "stats",
    "modules",
    "privacy",
    "parent_sums",
    "push_keys",
    "report",
    "visits",
    "events",
]

RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"


def _cpuinfo() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    return "unknown"


def _commit() -> str:
    def git(*args: str) -> str:
        argv = ["git", *args]
        return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: S603

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "api", "schemas", "migrations")
    return f"{commit} + uncommitted changes" if dirty else commit


def machine(ctx: Context, load_before: float) -> dict[str, str]:
    return {
        "Date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "Code": _commit(),
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": _cpuinfo(),
        "RAM": _ram(),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "PostgreSQL": ctx.postgres,
        "Servers": f"granian {version('granian')}, uvicorn {version('uvicorn')}, "
        f"{ctx.settings.workers} worker(s) each",
        "Load average": f"{load_before:.2f} before the run (1 min)",
        "Run": "quick (smoke run, short durations)" if ctx.quick else "full",
    }


def markdown(info: dict[str, str], ran: list[tuple[Benchmark, list[Result]]], took: float) -> str:
    lines = ["# Benchmark results", "", "| Machine | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in info.items()]
    lines += [f"| Total time | {took:.0f} s |"]
    for bench, results in ran:
        lines += ["", f"## {bench.TITLE} (`{bench.NAME}`)", ""]
        lines += ["| Figure | Value | Ratio | Note |", "|---|--:|---|---|"]
        lines += [f"| {r.label} | {r.formatted()} | {r.ratio_text()} | {r.note} |" for r in results]
    return "\n".join(lines) + "\n"


async def run_all(benchmarks: list[Benchmark], quick: bool) -> None:
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        print(f"warning: the machine is busy (load average {load_before:.2f}): figures are noisy")
    print("setting up the bench database …")
    ctx = await setup(quick)
    ran: list[tuple[Benchmark, list[Result]]] = []
    for bench in benchmarks:
        print(f"\n== {bench.NAME}: {bench.TITLE}")
        bench_started = time.perf_counter()
        results = await bench.run(ctx)
        print(f"  ({time.perf_counter() - bench_started:.0f} s)")
        ran.append((bench, results))
    took = time.perf_counter() - started

    info = machine(ctx, load_before)
    print("\n== Summary")
    for key, value in info.items():
        print(f"  {key + ':':<14}{value}")
    for bench, results in ran:
        print(f"\n{bench.TITLE}")
        print_results(results)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(markdown(info, ran, took))
    print(f"\ntotal {took:.0f} s; written to {RESULTS}")


def main(argv: Sequence[str] | None = None) -> int:
    benchmarks = [cast(Benchmark, importlib.import_module(f"bench.{m}")) for m in MODULES]
    names = [b.NAME for b in benchmarks]
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="short durations (smoke run)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    selected = [b for b in benchmarks if not args.names or b.NAME in args.names]
    try:
        import uvloop
    except ImportError:  # Windows: the plain loop is fine, only slower
        asyncio.run(run_all(selected, args.quick))
    else:
        uvloop.run(run_all(selected, args.quick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
