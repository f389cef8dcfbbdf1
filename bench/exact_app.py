"""Bench-only ASGI entry: the API with one step of the cell key method taken out, so that a
benchmark can measure what the step costs against a baseline served in the same run.

Never deployed and never a setting of the API: protection has no switch. The bench starts
it like the real app (``bench.env.serve(..., app="bench.exact_app:app")``) with
``CDS_BENCH_VARIANT`` in the server's environment:

- ``exact``: every published count is the true count. ``api.stats.disclosure.perturb``
  (which ``published`` calls for every protected view) and its import in
  ``api.stats.exports`` return the exact cell, and the learning counts are not perturbed
  (``api.stats.cards.perturbed_learning``). A province and the nation read their own
  counters (``api.stats.sums.now`` and ``at`` replaced), as they did before a parent became
  the sum of its wards' perturbed cells. What is left is the exact path of a ward's own
  view, for every view.
- ``keyless``: the counters' SQL computes no record keys. ``api.stats.catalog``'s
  HOUSEHOLD_KEY and PERSON_KEY become a constant 0 before the app builds its Catalog (it is
  built on first use, from these module globals). The statements still take the padded
  secret as $2 and $3 (the callers pass it), so the constant names them at no cost.

The patches are applied when this module is imported, before ``api.asgi`` builds the app.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date

import asyncpg

from api.queries.modules import LearningCounts
from api.stats import cards, catalog, counters, disclosure, exports, sums
from api.stats.cells import Cell

VARIANT_ENV = "CDS_BENCH_VARIANT"
# A record key of 0 that still refers to the statements' $2 and $3 (their types must be
# known); octet_length of a bytea parameter reads its length, nothing else.
NO_KEY = "(0 * octet_length($2::bytea) * octet_length($3::bytea))"


def exact_counts(cell: Cell, unit: str = "fraction", **options: object) -> disclosure.Published:
    return disclosure.exact(cell)  # whatever options perturb takes


def exact_learning(counts: LearningCounts) -> LearningCounts:
    return counts


_provinces: list[int] = []


async def _province_ids(conn: asyncpg.Connection, province_ids: list[int] | None) -> list[int]:
    if province_ids is not None:
        return province_ids
    if not _provinces:
        _provinces.extend(
            r[0] for r in await conn.fetch("SELECT id FROM area WHERE level = 'province'")
        )
    return _provinces


async def exact_now(
    conn: asyncpg.Connection, province_ids: list[int] | None, ratios: object
) -> sums.ByProvince:
    """The provinces' own counters (one row per measure and shard each)."""
    ids = await _province_ids(conn, province_ids)
    cells, _ = await counters.current_with_targets(conn, ids, [], 0)
    return {pid: {m: disclosure.Counts(c[0], c[1]) for m, c in cells[pid].items()} for pid in ids}


async def exact_at(
    conn: asyncpg.Connection,
    province_ids: list[int] | None,
    ends: list[date],
    ratios: object,
    measure: str | None = None,
) -> dict[int, sums.PointSums]:
    ids = await _province_ids(conn, province_ids)
    deltas = await counters.monthly_deltas(conn, ids, ends[-1], measure)
    found: dict[int, sums.PointSums] = {pid: {} for pid in ids}
    for (pid, code), cells in cards.cumulate(deltas, ends).items():
        found[pid][code] = [disclosure.Counts(cell[0], cell[1]) for cell in cells]
    return found


def patch_exact() -> None:
    disclosure.perturb = exact_counts
    exports.perturb = exact_counts  # imported by name
    sums.now = exact_now
    sums.at = exact_at
    cards.perturbed_learning = exact_learning


def patch_keyless() -> None:
    catalog.HOUSEHOLD_KEY = NO_KEY
    catalog.PERSON_KEY = NO_KEY


@contextmanager
def keyless_sql() -> Iterator[None]:
    """SQL built inside the block (``Catalog(...)``, ``history_sql(...)``) has no keys."""
    saved = catalog.HOUSEHOLD_KEY, catalog.PERSON_KEY
    patch_keyless()
    try:
        yield
    finally:
        catalog.HOUSEHOLD_KEY, catalog.PERSON_KEY = saved


PATCHES: dict[str, Callable[[], None]] = {"exact": patch_exact, "keyless": patch_keyless}

if VARIANT_ENV in os.environ:  # a server process; the bench itself only imports the helpers
    PATCHES[os.environ[VARIANT_ENV]]()
    from api.asgi import app  # noqa: F401
