"""Benchmarks: ``python -m bench [NAME ...] [--quick]`` (see bench/__main__.py).

A benchmark is a module with ``NAME``, a one-line ``TITLE`` and ``async def run(ctx)``
returning a list of :class:`Result`; register it in ``BENCHMARKS`` in bench/__main__.py.
Every figure that has a baseline (measured in the same run) carries it, so the report
shows the ratio next to the figure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bench.env import Context


@dataclass(frozen=True, kw_only=True)
class Result:
    label: str  # what was measured, e.g. "granian GET /healthz"
    value: float
    unit: str  # "req/s", "ms", "logins/s", "×"
    baseline: Result | None = None  # the figure this one is compared with
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or not self.baseline.value:
            return None
        return self.value / self.baseline.value

    def formatted(self) -> str:
        if self.unit == "×":
            return f"×{self.value:.2f}"
        digits = 0 if self.value >= 100 else 1 if self.value >= 10 else 2
        return f"{self.value:,.{digits}f} {self.unit}"

    def ratio_text(self) -> str:
        ratio = self.ratio
        if ratio is None or self.baseline is None:
            return ""
        return f"×{ratio:.2f} vs {self.baseline.label}"


class Benchmark(Protocol):
    NAME: str
    TITLE: str
    run: Callable[[Context], Awaitable[list[Result]]]


def print_results(results: list[Result]) -> None:
    width = max((len(r.label) for r in results), default=0)
    for r in results:
        line = f"  {r.label:<{width}}  {r.formatted():>14}"
        if r.ratio_text():
            line += f"  {r.ratio_text()}"
        if r.note:
            line += f"  ({r.note})"
        print(line)
