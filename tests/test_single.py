"""A single submission is decided and stored by one statement (``ingest_one``): it must give
what a one-item push gives (``ingest``), keep the counters equal to a rebuild, hold under
concurrent writers of one household, and take one round trip for a first visit."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.auth import Principal
from api.config import Settings
from api.db import connect, create_pool
from api.ingest import SurveyCache, ingest, ingest_one
from api.stats.catalog import Catalog, load_catalog
from api.stats.counters import rebuild
from api.stats.keys import record_keys
from schemas.households import ItemResult
from tests.conftest import HAC_THANH, HAM_RONG, Accounts, member, submission
from tests.test_stats import counters, new_household, ward_team

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


class Setup(msgspec.Struct):
    catalog: Catalog
    principal: Principal
    team: dict[str, str]


@pytest.fixture
async def setup(accounts: Accounts, db: asyncpg.Connection, settings: Settings) -> Setup:
    team = await ward_team(accounts, HAC_THANH)
    user = await db.fetchrow(
        "SELECT id, role, area_id, province_id, team_id FROM app_user ORDER BY created_at DESC"
    )
    assert user is not None
    principal = Principal(
        user_id=user["id"],
        role=user["role"],
        area_id=user["area_id"],
        province_id=user["province_id"],
        team_id=user["team_id"],
    )
    return Setup(await load_catalog(db, record_keys(settings)), principal, team)


def raw(item: dict[str, Any]) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(item))


def shape(result: ItemResult, ids: dict[str, str]) -> tuple[Any, ...]:
    """A result with the ids of its own household replaced by their place in the script."""
    current = str(result.current_submission_id) if result.current_submission_id else None
    return (
        result.status,
        [(e.field, e.code, e.message) for e in result.errors or []],
        ids.get(current, current) if current else None,
    )


def labelled(household: str, ids: dict[str, str]) -> Callable[..., dict[str, Any]]:
    """New submissions of one household, their ids kept under a label."""

    def new(label: str, **extra: Any) -> dict[str, Any]:
        item = submission(household, **extra)
        ids[str(item["id"])] = label
        return item

    return new


async def test_a_single_submission_decides_as_a_one_item_push(
    client: Client, db: asyncpg.Connection, accounts: Accounts, setup: Setup
) -> None:
    """The same script on two households of one ward: one through the single statement, one
    through a batch of one; every answer the same, then the counters equal a rebuild."""
    elsewhere = await new_household(client, await ward_team(accounts, HAM_RONG), HAM_RONG)
    cache = SurveyCache()

    async def single(item: dict[str, Any]) -> ItemResult:
        return await ingest_one(db, cache, setup.catalog, setup.principal, raw(item), "en")

    async def one_item_push(item: dict[str, Any]) -> ItemResult:
        (result,) = await ingest(db, cache, setup.catalog, setup.principal, [raw(item)], "en")
        return result

    answers: dict[str, list[tuple[Any, ...]]] = {}
    for name, store in (("single", single), ("push", one_item_push)):
        household = await new_household(client, setup.team, HAC_THANH)
        ids: dict[str, str] = {}
        new = labelled(household, ids)
        first = new("first", collected_at="2025-07-01T09:30:00+07:00")
        edit = new(
            "edit",
            supersedes=first["id"],
            # Collected before the state it replaces: counted from that state's time.
            collected_at="2025-03-01T09:30:00+07:00",
            members=[member(1950, smartphone=False), member(2010)],
            hh_broadband="none",
        )
        late = new("late", supersedes=edit["id"], collected_at="2025-11-20T23:30:00+07:00")
        script = [
            first,
            first,  # a retry: duplicate
            {**first, "answers": {**first["answers"], "hh_smart_devices": 1}},  # same id
            new("not_head"),  # no supersedes, but the household has a state
            edit,
            new("stale", supersedes=first["id"]),
            new("unknown", supersedes=str(uuid.uuid4())),
            submission(elsewhere),  # another ward's household
            submission(str(uuid.uuid4())),  # no such household
            submission(str(uuid.uuid4()), supersedes=first["id"]),  # an edit of none
            late,
            edit,  # a retry of an edit that is no longer the head: still a duplicate
        ]
        answers[name] = [shape(await store(item), ids) for item in script]

    assert answers["single"] == answers["push"]
    statuses = [status for status, _, _ in answers["single"]]
    assert statuses == [
        "accepted", "duplicate", "conflict", "conflict", "accepted", "conflict", "conflict",
        "rejected", "rejected", "rejected", "accepted", "duplicate",
    ]  # fmt: skip
    before = await counters(db)
    await rebuild(db, setup.catalog)
    assert await counters(db) == before


async def test_a_first_visit_is_one_round_trip_and_an_edit_two(
    client: Client, db: asyncpg.Connection, setup: Setup
) -> None:
    cache = SurveyCache()
    household = await new_household(client, setup.team, HAC_THANH)
    warm = submission(await new_household(client, setup.team, HAC_THANH))
    await ingest_one(db, cache, setup.catalog, setup.principal, raw(warm), "en")  # caches
    sent: list[str] = []

    def logged(record: Any) -> None:
        sent.append(record.query)

    db.add_query_logger(logged)
    try:
        first = submission(household)
        result = await ingest_one(db, cache, setup.catalog, setup.principal, raw(first), "en")
        assert result.status == "accepted"
        await asyncio.sleep(0.05)  # loggers are called soon after, not at once
        assert len(sent) == 1, sent
        sent.clear()
        edit = submission(household, supersedes=first["id"], hh_smart_devices=0)
        result = await ingest_one(db, cache, setup.catalog, setup.principal, raw(edit), "en")
        assert result.status == "accepted"
        await asyncio.sleep(0.05)
        assert len(sent) == 2, sent  # the replaced state's answers, then the statement
    finally:
        db.remove_query_logger(logged)


async def test_concurrent_writers_of_one_household_agree(
    client: Client, db: asyncpg.Connection, dsn: str, setup: Setup
) -> None:
    """Twelve edits of the same head at once: one is accepted, the others are told the head
    moved. Six sends of one new submission at once: one accepted, five duplicates. Twelve
    edits each naming the previous one, sent together: the chain is kept in whatever order
    they land. The counters equal a rebuild after each."""
    pool = await create_pool(dsn, 12, 12)
    cache = SurveyCache()

    async def send(item: dict[str, Any]) -> ItemResult:
        async with pool.acquire() as conn:
            return await ingest_one(conn, cache, setup.catalog, setup.principal, raw(item), "en")

    async def together(items: list[dict[str, Any]]) -> list[ItemResult]:
        return list(await asyncio.gather(*(send(item) for item in items)))

    async def exact() -> None:
        before = await counters(db)
        await rebuild(db, setup.catalog)
        assert await counters(db) == before

    try:
        household = await new_household(client, setup.team, HAC_THANH)
        first = submission(household)
        assert (await send(first)).status == "accepted"
        edits = [
            submission(household, supersedes=first["id"], hh_smart_devices=n) for n in range(12)
        ]
        results = await together(edits)
        assert sorted(r.status for r in results) == ["accepted"] + ["conflict"] * 11
        winner = next(r.id for r in results if r.status == "accepted")
        assert {r.current_submission_id for r in results if r.status == "conflict"} == {winner}
        await exact()

        fresh = submission(await new_household(client, setup.team, HAC_THANH))
        results = await together([fresh] * 6)
        assert sorted(r.status for r in results) == ["accepted"] + ["duplicate"] * 5
        await exact()

        chained = await new_household(client, setup.team, HAC_THANH)
        chain = [submission(chained)]
        for n in range(11):
            chain.append(submission(chained, supersedes=chain[-1]["id"], hh_smart_devices=n))
        pending: list[dict[str, Any]] = chain
        for _ in range(len(chain)):  # each round lands at least the next link
            results = await together(pending)
            pending = [
                item
                for item, result in zip(pending, results, strict=True)
                if result.status == "conflict"
            ]
            if not pending:
                break
        assert not pending
        head = await db.fetchval(
            "SELECT current_submission_id FROM household WHERE id = $1", uuid.UUID(chained)
        )
        assert str(head) == chain[-1]["id"]
        await exact()
    finally:
        await pool.close()


async def test_the_single_endpoint_answers_as_before(
    client: Client, db: asyncpg.Connection, setup: Setup
) -> None:
    """Through HTTP: created, retried, conflicting, edited, and someone else's household."""
    household = await new_household(client, setup.team, HAC_THANH)
    item = submission(household)
    post: Callable[[dict[str, Any]], Awaitable[Any]] = lambda body: client.post(  # noqa: E731
        "/api/v1/submissions", json=body, headers={**setup.team, "Accept-Language": "en"}
    )
    assert (await post(item)).status_code == 201
    assert (await post(item)).status_code == 200
    conflict = await post({**item, "answers": {**item["answers"], "hh_smart_devices": 0}})
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "content_differs"
    stale = await post(submission(household, supersedes=str(uuid.uuid4())))
    assert (stale.status_code, stale.json()["code"]) == (409, "stale_supersedes")
    edit = await post(submission(household, supersedes=item["id"]))
    assert edit.status_code == 201
    assert edit.json()["currentSubmissionId"] == edit.json()["id"]
    missing = await post(submission(str(uuid.uuid4())))
    assert (missing.status_code, missing.json()["code"]) == (404, "household_not_found")


async def test_concurrent_batches_of_the_same_items_store_each_once(
    client: Client, db: asyncpg.Connection, dsn: str, setup: Setup
) -> None:
    """Four pushes of the same new items at once (a phone retrying over flaky networks):
    each item is accepted by exactly one of them and a duplicate for the others, and the
    counters equal a rebuild."""
    size = 40
    households = [await new_household(client, setup.team, HAC_THANH) for _ in range(size)]
    items = [submission(household) for household in households]
    pool = await create_pool(dsn, 4, 4)
    cache = SurveyCache()

    async def push() -> list[ItemResult]:
        async with pool.acquire() as conn:
            return await ingest(
                conn, cache, setup.catalog, setup.principal, [raw(i) for i in items], "en"
            )

    try:
        results = await asyncio.gather(*(push() for _ in range(4)))
    finally:
        await pool.close()
    for position in range(size):
        statuses = sorted(batch[position].status for batch in results)
        assert statuses == ["accepted", "duplicate", "duplicate", "duplicate"], statuses
    stored = await db.fetchval(
        "SELECT count(*) FROM submission WHERE id = ANY($1::uuid[])",
        [uuid.UUID(i["id"]) for i in items],
    )
    assert stored == size
    before = await counters(db)
    await rebuild(db, setup.catalog)
    assert await counters(db) == before


async def test_a_batch_that_races_an_id_is_stored_again(
    client: Client, db: asyncpg.Connection, dsn: str, setup: Setup
) -> None:
    """Another transaction stores one of the batch's ids (for another household) after the
    batch looked and before it stored: the batch is rolled back and stored again, that item
    now a conflict, the others accepted once."""
    size = 40
    households = [await new_household(client, setup.team, HAC_THANH) for _ in range(size)]
    items = [submission(household) for household in households]
    taken = uuid.UUID(items[-1]["id"])
    other = await new_household(client, setup.team, HAC_THANH)
    rival = await connect(dsn)
    batch = await connect(dsn)
    try:
        await rival.execute("BEGIN")
        await rival.execute(
            """INSERT INTO submission (id, household_id, survey_id, survey_version,
                                       province_id, ward_id, collected_at, notice_version,
                                       answers, members, content_hash, counted_at)
               SELECT $1, h.id, s.survey_id, 1, h.province_id, h.ward_id, now(), '2025-1',
                      '{}', '[]', '\\x00', now()
               FROM household h, survey_version s WHERE h.id = $2 LIMIT 1""",
            taken,
            uuid.UUID(other),
        )
        pushed = asyncio.create_task(
            ingest(batch, SurveyCache(), setup.catalog, setup.principal,
                   [raw(i) for i in items], "en")
        )  # fmt: skip
        await asyncio.sleep(0.5)  # the batch now waits for the rival's id
        assert not pushed.done()
        await rival.execute("COMMIT")
        results = await pushed
    finally:
        await rival.close()
        await batch.close()
    assert [r.status for r in results] == ["accepted"] * (size - 1) + ["conflict"]
    assert [e.code for e in results[-1].errors or []] == ["content_differs"]


async def test_an_edit_of_a_state_the_rules_cannot_read_is_refused_not_a_500(
    client: Client, db: asyncpg.Connection, setup: Setup
) -> None:
    """A stored state with a non-number where an indicator reads a number (validation lets
    none in; here written past it): an edit of it is rejected as a storage error, through
    the single statement's path and a push alike, and nothing is stored."""
    cache = SurveyCache()
    for send in ("single", "push"):
        household = await new_household(client, setup.team, HAC_THANH)
        first = submission(household)
        assert (
            await ingest_one(db, cache, setup.catalog, setup.principal, raw(first), "en")
        ).status == "accepted"
        await db.execute(
            """UPDATE submission SET answers = answers || '{"hh_smart_devices": "many"}'
               WHERE id = $1""",
            uuid.UUID(str(first["id"])),
        )
        edit = submission(household, supersedes=first["id"])
        if send == "single":
            result = await ingest_one(db, cache, setup.catalog, setup.principal, raw(edit), "en")
        else:
            (result,) = await ingest(db, cache, setup.catalog, setup.principal, [raw(edit)], "en")
        assert result.status == "rejected", (send, result)
        assert [e.code for e in result.errors or []] == ["storage_error"]
        assert not await db.fetchval(
            "SELECT count(*) FROM submission WHERE id = $1", uuid.UUID(str(edit["id"]))
        )
