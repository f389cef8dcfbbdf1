"""Pushes do not starve readers (issue 15, part 5; bench cards_under_push): a large push
gives the event loop turns while its items are decoded and validated, and cards are built
from a pool of their own, so pushes holding every request connection do not hold them."""

from __future__ import annotations

import asyncio
import itertools
import threading
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import ingest
from api.app import create_app
from api.config import Settings
from tests.conftest import HAC_THANH, Accounts, member, submission
from tests.test_stats import card, ward_team

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


@contextmanager
def recorded(monkeypatch: pytest.MonkeyPatch, events: list[str], name: str) -> Iterator[None]:
    """Record a call of ``api.ingest.<name>`` in ``events`` (the function still runs)."""
    original = getattr(ingest, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        events.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(ingest, name, recording)
    yield


async def test_a_large_push_yields_between_items_and_keeps_its_results_in_order(
    client: Client, accounts: Accounts, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    households = [uuid.uuid4() for _ in range(120)]
    await db.executemany(
        """INSERT INTO household (id, ward_id, province_id)
           SELECT $1, id, province_id FROM area WHERE scheme = 'vn2025' AND code = $2""",
        [(h, HAC_THANH) for h in households],
    )
    first = [submission(h, [member(1980), member(2010)]) for h in households[:60]]
    response = await client.post("/api/v1/sync/push", json={"submissions": first}, headers=team)
    assert response.status_code == 200, response.text

    # Every third item is refused, every third a retry of one already stored, the rest new.
    items: list[dict[str, Any]] = []
    expected: list[str] = []
    for number, household in enumerate(households[60:]):
        if number % 3 == 0:
            items.append(submission(household, consent=False))
            expected.append("rejected")
        elif number % 3 == 1:
            items.append(first[number])
            expected.append("duplicate")
        else:
            items.append(submission(household))
            expected.append("accepted")

    # A turn after every item, and a task on the app's loop (the client's portal thread)
    # noting each turn it gets meanwhile.
    monkeypatch.setattr(ingest, "TURN_SECONDS", 0.0)
    events: list[str] = []
    running = True

    async def other_task() -> None:
        while running:
            events.append("turn")
            await asyncio.sleep(0)

    with recorded(monkeypatch, events, "decode_item"), recorded(monkeypatch, events, "_precheck"):
        ticking = client.blocking_portal.start_task_soon(other_task)
        try:
            response = await client.post(
                "/api/v1/sync/push", json={"submissions": items}, headers=team
            )
        finally:
            running = False
            await asyncio.wrap_future(ticking)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["id"] for r in results] == [item["id"] for item in items]
    assert [r["status"] for r in results] == expected

    # Between any two items decoded, or validated, the other task had a turn.
    for name, count in (("decode_item", len(items)), ("_precheck", len(items))):
        places = [i for i, event in enumerate(events) if event == name]
        assert len(places) >= count
        gaps = itertools.pairwise(places[:count])
        assert all("turn" in events[a:b] for a, b in gaps), name


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return msgspec.structs.replace(settings, pool_max=2)


async def test_a_card_is_built_while_every_request_connection_is_taken(
    app: Litestar, client: Client, accounts: Accounts
) -> None:
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    await card(client, official, HAC_THANH)  # the areas are read once, from the request pool
    assert app.state.card_pool is not app.state.pool
    # Every request connection taken, as pushes queued for them would, on the app's loop.
    held, release = threading.Event(), asyncio.Event()  # release: set on the app's loop

    async def hold_all() -> None:
        async with AsyncExitStack() as stack:
            for _ in range(app.state.pool.get_max_size()):
                await stack.enter_async_context(app.state.pool.acquire())
            held.set()
            await release.wait()

    holding = client.blocking_portal.start_task_soon(hold_all)
    try:
        assert await asyncio.to_thread(held.wait, 10)
        async with asyncio.timeout(10):
            built = await card(client, official, HAC_THANH, period="2025-07")  # not kept yet
    finally:
        client.blocking_portal.call(release.set)
        await asyncio.wrap_future(holding)
    assert built["area"]["code"] == HAC_THANH


async def test_without_a_card_pool_cards_use_the_request_pool(dsn: str, settings: Settings) -> None:
    app = create_app(dsn, msgspec.structs.replace(settings, card_pool_max=0))
    async with AsyncTestClient(app=app):
        assert app.state.card_pool is app.state.pool
