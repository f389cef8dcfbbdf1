"""Decode, validation and content hash of a pushed batch (issue 15, part 3): what the API does
per item before the database, for this tree and for ``main`` (extracted from git as in bench
write), in alternating rounds, each in its own process with no server.

A 100-item batch of household_digital submissions (3–5 members) goes through the stages as
the tree's push does them; every figure is per item, the median over the rounds, with a
baseline measured in the same process: decoding the whole body into Python objects once.

Run as a script (``python bench/decode.py``) from a tree's root, it measures that tree and
prints its figures as JSON: how the bench reaches main's code.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import Result
from bench.env import ROOT, Context

NAME = "decode"
TITLE = "Decode + validation + content hash of a 100-item push, per item: this tree vs main"

STAGES = ("baseline", "decode", "validate", "hash", "all")
LABELS = {
    "baseline": "JSON → Python objects (whole body)",
    "decode": "decode (body and items)",
    "validate": "validate (survey rules)",
    "hash": "content hash",
    "all": "decode + validate + hash",
}


def _measure(batches: int, repeat: int) -> dict[str, float]:
    """This process's tree: µs per item of each stage, the best of ``repeat`` timings."""
    import random
    import uuid
    from datetime import UTC, datetime

    import msgspec

    import api.ingest as ingest
    import schemas.households as households
    from api.answers import validate
    from api.queries.surveys import HOUSEHOLD_DIGITAL, VersionRecord
    from bench.sync import submission
    from schemas.surveys import SurveyDefinition

    text = (Path.cwd() / "migrations/data/household_digital_v1.json").read_text("utf-8")
    definition = msgspec.convert(json.loads(text), SurveyDefinition)
    rng = random.Random(15)
    body = msgspec.json.encode({"submissions": [submission(uuid.uuid4(), rng) for _ in range(100)]})

    decode: Callable[[], list[Any]]
    if hasattr(households, "PushItems"):  # one decode, keys checked against the version's
        version = VersionRecord(
            survey_id=HOUSEHOLD_DIGITAL,
            code="household_digital",
            version=1,
            published_at=datetime.now(UTC),
            definition=definition,
        )
        envelope = msgspec.json.Decoder(households.PushItems)
        as_sent = ingest._AS_SENT  # the decoder ingest uses

        def decode() -> list[Any]:
            items = [as_sent.decode(raw) for raw in envelope.decode(body).submissions]
            if not all(ingest._keys_known(item, version) for item in items):
                raise AssertionError("an unknown key in the bench's items")
            return items

    else:  # main before: Litestar decodes to objects and converts, then each item again

        def decode() -> list[Any]:
            push = msgspec.convert(msgspec.json.decode(body), households.SyncPush, strict=False)
            return [msgspec.convert(raw, households.NewSubmission) for raw in push.submissions]

    items = decode()

    def checked() -> None:
        for item in items:
            if validate(definition, item):
                raise AssertionError("the bench's items are valid")

    def hashed() -> None:
        for item in items:
            ingest.content_hash(item)

    def everything() -> None:
        for item in decode():
            if validate(definition, item):
                raise AssertionError("the bench's items are valid")
            ingest.content_hash(item)

    stages: dict[str, Callable[[], object]] = {
        "baseline": lambda: msgspec.json.decode(body),
        "decode": decode,
        "validate": checked,
        "hash": hashed,
        "all": everything,
    }
    figures = {}
    for stage, work in stages.items():
        timings = []
        for _ in range(repeat):
            started = time.perf_counter()
            for _ in range(batches):
                work()
            timings.append((time.perf_counter() - started) / batches / 100 * 1e6)
        figures[stage] = min(timings)
    return figures


def _in_tree(tree: Path, batches: int, repeat: int) -> dict[str, float]:
    """The figures of ``tree``'s code, measured in a process of its own."""
    found = subprocess.run(  # noqa: S603 - this interpreter, this file
        [sys.executable, str(Path(__file__).resolve()), str(batches), str(repeat)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(found.stdout.splitlines()[-1])
    return figures


async def run(ctx: Context) -> list[Result]:
    from bench.write_path import main_tree

    rounds, batches = ctx.count(5, 1), ctx.count(50, 5)
    trees = {"main": main_tree(), "this tree": ROOT}
    figures: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for number in range(1, rounds + 1):
        order = list(trees) if number % 2 else list(reversed(trees))
        for name in order:
            figures[name].append(_in_tree(trees[name], batches, repeat=5))
        this, before = figures["this tree"][-1], figures["main"][-1]
        print(
            f"  round {number}: µs per item, main → this tree: decode {before['decode']:.1f} → "
            f"{this['decode']:.1f}, validate {before['validate']:.1f} → {this['validate']:.1f}, "
            f"all {before['all']:.1f} → {this['all']:.1f}"
        )
    results: list[Result] = []
    for name in trees:
        baseline = Result(
            label=f"{name}: {LABELS['baseline']}",
            value=statistics.median(f["baseline"] for f in figures[name]),
            unit="µs",
        )
        results.append(baseline)
        for stage in STAGES[1:]:
            values = [f[stage] for f in figures[name]]
            results.append(
                Result(
                    label=f"{name}: {LABELS[stage]}",
                    value=statistics.median(values),
                    unit="µs",
                    baseline=baseline,
                    note=f"range {min(values):.1f}–{max(values):.1f} per item",
                )
            )
    gains = [
        b["all"] / a["all"] for a, b in zip(figures["this tree"], figures["main"], strict=True)
    ]
    results.append(
        Result(
            label="main / this tree, decode + validate + hash",
            value=statistics.median(gains),
            unit="×",
            note=f"×{min(gains):.2f}–{max(gains):.2f} by round",
        )
    )
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    print(json.dumps(_measure(int(sys.argv[1]), int(sys.argv[2]))))
