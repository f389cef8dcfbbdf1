"""COPY or not for a pushed batch (issue 15, part 4): storing 100 submissions in PostgreSQL,
timed in the bench process over one connection, three ways in alternating order, each in its
own durable transaction (commit included):

- **unnest**: the rows as arrays in one ``INSERT … SELECT FROM unnest(…) ON CONFLICT (id) DO
  NOTHING`` (what the store statement does);
- **COPY**: binary ``COPY`` straight into ``submission`` (no ``ON CONFLICT``: a raced id would
  fail the batch, to be retried);
- **COPY + INSERT**: ``COPY`` into a temporary table, then ``INSERT … SELECT … ON CONFLICT``
  from it (what keeping the one-statement store with COPY would take).

Every row is a realistic household_digital submission (answers and a roster of 3–5 members
as jsonb), and every batch has new ids; a batch's households are new too.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from typing import Any

import asyncpg
import msgspec

from api.db import connect
from bench import Result
from bench.env import Context, setup
from bench.sync import (
    PUSH_WARD,
    SUBMISSION_COLUMNS,
    _collector,
    _households,
    record,
    submission,
)

NAME = "copy_batch"
TITLE = "Storing a batch of 100 submissions: unnest vs COPY vs COPY + INSERT"
DATABASE = "cds_bench_copy"
PHONE = "+84910000021"
BATCH = 100
COLUMNS = SUBMISSION_COLUMNS

UNNEST = """
    INSERT INTO submission (id, household_id, survey_id, survey_version, province_id, ward_id,
                            collected_at, submitted_by, notice_version, supersedes, answers,
                            members, content_hash, counted_at)
    SELECT id, household_id, survey_id, survey_version, province_id, ward_id, collected_at,
           submitted_by, notice_version, supersedes, answers, members::jsonb, content_hash,
           counted_at
    FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::int[], $5::int[], $6::int[],
                $7::timestamptz[], $8::uuid[], $9::text[], $10::uuid[], $11::jsonb[],
                $12::text[], $13::bytea[], $14::timestamptz[])
         AS r(id, household_id, survey_id, survey_version, province_id, ward_id, collected_at,
              submitted_by, notice_version, supersedes, answers, members, content_hash,
              counted_at)
    ON CONFLICT (id) DO NOTHING"""
STAGE = """CREATE TEMP TABLE IF NOT EXISTS incoming
           (LIKE submission INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"""
FROM_STAGE = f"""
    INSERT INTO submission ({", ".join(COLUMNS)})
    SELECT {", ".join(COLUMNS)} FROM incoming ON CONFLICT (id) DO NOTHING"""


def rows(
    households: list[uuid.UUID], area: asyncpg.Record, user: uuid.UUID
) -> list[tuple[Any, ...]]:
    rng = random.Random(len(households))
    return [record(submission(household, rng), area, user) for household in households]


async def unnest(conn: asyncpg.Connection, batch: list[tuple[Any, ...]]) -> None:
    columns = [list(column) for column in zip(*batch, strict=True)]
    columns[11] = [msgspec.json.encode(members).decode() for members in columns[11]]
    async with conn.transaction():
        await conn.execute(UNNEST, *columns)


async def copy(conn: asyncpg.Connection, batch: list[tuple[Any, ...]]) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table("submission", records=batch, columns=COLUMNS)


async def copy_insert(conn: asyncpg.Connection, batch: list[tuple[Any, ...]]) -> None:
    async with conn.transaction():
        await conn.copy_records_to_table("incoming", records=batch, columns=COLUMNS)
        await conn.execute(FROM_STAGE)


async def run(shared: Context) -> list[Result]:
    ctx = await setup(shared.quick, DATABASE)
    rounds, per_round = ctx.count(7, 2), ctx.count(40, 5)
    conn = await connect(ctx.dsn)
    variants = {"unnest": unnest, "COPY": copy, "COPY + INSERT": copy_insert}
    timed: dict[str, list[float]] = {name: [] for name in variants}
    try:
        area = await conn.fetchrow("SELECT id, province_id FROM area WHERE code = $1", PUSH_WARD)
        user = await conn.fetchval("SELECT id FROM app_user WHERE phone = $1", PHONE)
        user = user or await _collector(conn, area, PHONE)
        await conn.execute(STAGE)
        order = list(variants)
        for number in range(rounds):
            for name in order[number % 3 :] + order[: number % 3]:
                batches = [
                    rows(await _households(conn, area, BATCH), area, user) for _ in range(per_round)
                ]
                started = time.perf_counter()
                for batch in batches:
                    await variants[name](conn, batch)
                timed[name].append(1e6 * (time.perf_counter() - started) / (per_round * BATCH))
            print(
                f"  round {number + 1}: "
                + ", ".join(f"{name} {timed[name][-1]:.1f} µs/row" for name in variants)
            )
    finally:
        await conn.close()
    baseline = Result(
        label="unnest, per stored row",
        value=statistics.median(timed["unnest"]),
        unit="µs",
        note=f"range {min(timed['unnest']):.1f}–{max(timed['unnest']):.1f}",
    )
    results = [baseline]
    for name in ("COPY", "COPY + INSERT"):
        ratios = [a / b for a, b in zip(timed[name], timed["unnest"], strict=True)]
        results.append(
            Result(
                label=f"{name}, per stored row",
                value=statistics.median(timed[name]),
                unit="µs",
                baseline=baseline,
                note=f"×{min(ratios):.2f}–{max(ratios):.2f} of unnest by round",
            )
        )
    return results
