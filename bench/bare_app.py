"""The bare stack for ``bench write``: Litestar + msgspec + asyncpg storing the same rows as
the API (a submission row, the household's head moved, in one durable transaction per
request, households locked as the API locks them), with no domain logic: no sign-in, no
validation of answers, no idempotency check, no counters, no cards.

Run by the bench as ``bench.bare_app:app`` under granian, on the bench database.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar, Request, get, post
from litestar.datastructures import State

from api.db import create_pool


class Consent(msgspec.Struct):
    given: bool
    noticeVersion: str


class Item(msgspec.Struct):
    id: uuid.UUID
    surveyId: uuid.UUID
    surveyVersion: int
    householdId: uuid.UUID
    collectedAt: datetime
    consent: Consent
    answers: dict[str, Any]
    members: list[dict[str, Any]]


class Push(msgspec.Struct):
    submissions: list[Item]


PUSH = msgspec.json.Decoder(Push)
ONE = msgspec.json.Decoder(Item)
USER = uuid.UUID(os.environ.get("BENCH_BARE_USER", str(uuid.UUID(int=0))))  # the submitter

STORE = """
    WITH locked AS (
        SELECT id, ward_id, province_id FROM household
        WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE
    ), new AS (
        INSERT INTO submission (id, household_id, survey_id, survey_version, province_id,
                                ward_id, collected_at, submitted_by, notice_version,
                                answers, members, content_hash, counted_at)
        SELECT r.id, r.household_id, r.survey_id, r.survey_version, h.province_id, h.ward_id,
               r.collected_at, $9, r.notice_version, r.answers, r.members::jsonb,
               r.content_hash, r.collected_at
        FROM unnest($2::uuid[], $1::uuid[], $3::uuid[], $4::int[], $5::timestamptz[],
                    $6::text[], $7::jsonb[], $8::text[], $10::bytea[])
             AS r(id, household_id, survey_id, survey_version, collected_at, notice_version,
                  answers, members, content_hash)
        JOIN locked h ON h.id = r.household_id
        RETURNING id, household_id
    )
    UPDATE household h SET current_submission_id = new.id, updated_at = now(),
                           change_xid = pg_current_xact_id()
    FROM new WHERE h.id = new.household_id"""


async def store(conn: asyncpg.Connection, items: list[Item]) -> None:
    await conn.execute(
        STORE,
        [i.householdId for i in items],
        [i.id for i in items],
        [i.surveyId for i in items],
        [i.surveyVersion for i in items],
        [i.collectedAt for i in items],
        [i.consent.noticeVersion for i in items],
        [i.answers for i in items],
        [msgspec.json.encode(i.members).decode() for i in items],
        USER,
        [hashlib.blake2b(i.id.bytes, digest_size=16).digest() for i in items],
    )


@post("/api/v1/sync/push", status_code=200)
async def push(request: Request[Any, Any, State], state: State) -> dict[str, Any]:
    items = PUSH.decode(await request.body()).submissions
    async with state.pool.acquire() as conn:
        await store(conn, items)
    return {"results": [{"id": str(i.id), "status": "accepted"} for i in items]}


@post("/api/v1/submissions", status_code=201)
async def single(request: Request[Any, Any, State], state: State) -> dict[str, Any]:
    item = ONE.decode(await request.body())
    async with state.pool.acquire() as conn:
        await store(conn, [item])
    return {"id": str(item.id), "status": "accepted"}


@get("/readyz")
async def readyz() -> dict[str, str]:
    return {"status": "ready"}


@asynccontextmanager
async def pool(app: Litestar) -> AsyncGenerator[None, None]:
    app.state.pool = await create_pool(os.environ["DATABASE_URL"], 2, 10)
    try:
        yield
    finally:
        await app.state.pool.close()


app = Litestar(route_handlers=[push, single, readyz], lifespan=[pool], debug=False)
