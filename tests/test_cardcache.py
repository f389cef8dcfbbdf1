"""Rendered cards are kept per process until the counters under them change: the caller's
own writes show at once, other processes' writes as soon as their notification arrives, and
without a listener nothing is kept."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.config import Settings
from api.stats.cardcache import LISTENER, CardCache
from tests.conftest import BA_DINH, HAC_THANH, SCRAPER, THANH_HOA, Accounts, member, submission
from tests.test_stats import card, cells, new_household, push, ward_team

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Here cards are dropped by notifications only; their maximum age is tested on its own
    (a busy machine may take more than a second between two reads of a test)."""
    return msgspec.structs.replace(settings, card_max_age=3600.0)


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait for ``check`` to hold (a notification or a reconnection takes a moment)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "did not happen in time"
        await asyncio.sleep(0.02)


async def caught_up(client: Client, cards: CardCache) -> None:
    """Wait until every notification committed so far has reached ``cards`` (the app runs
    on the test client's own event loop, where its listening connection lives)."""
    await asyncio.wrap_future(client.blocking_portal.start_task_soon(cards.caught_up))


async def listening(cards: CardCache) -> bool:
    return cards.listening


def smartphone(body: dict[str, Any]) -> tuple[Any, Any]:
    return cells(body)["ADULT_SMARTPHONE"]


def target(body: dict[str, Any]) -> Any:
    return next(i["target"] for i in body["indicators"] if i["code"] == "ADULT_SMARTPHONE")


async def set_smartphone_counter(db: asyncpg.Connection, numerator: int, denominator: int) -> None:
    """Write Hạc Thành's counter from outside the API (its only shard, in a test)."""
    await db.execute(
        """INSERT INTO stat_current (area_id, parent_id, measure, numerator, denominator)
           SELECT id, parent_id, 'ADULT_SMARTPHONE', $2, $3 FROM area WHERE code = $1
           ON CONFLICT (area_id, measure, shard) DO UPDATE
           SET numerator = excluded.numerator, denominator = excluded.denominator""",
        HAC_THANH,
        numerator,
        denominator,
    )


class Ward:
    """Hạc Thành with its team, its official and one household, once cards are kept."""

    def __init__(self, team: dict[str, str], official: dict[str, str], household: str) -> None:
        self.team, self.official, self.household = team, official, household

    @classmethod
    async def ready(cls, cards: CardCache, client: Client, accounts: Accounts) -> Ward:
        await eventually(lambda: listening(cards))
        team = await ward_team(accounts, HAC_THANH)
        official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
        household = await new_household(client, team, HAC_THANH)
        await caught_up(client, cards)  # the new household's notification has dropped what it drops
        return cls(team, official, household)


async def test_a_card_is_kept_until_its_province_changes(
    app: Litestar, client: Client, accounts: Accounts
) -> None:
    cards: CardCache = app.state.cards
    ward = await Ward.ready(cards, client, accounts)
    team, official, household = ward.team, ward.official, ward.household
    admin = await accounts.headers(await accounts.create("admin"))

    first = await card(client, official, HAC_THANH)
    hanoi = await card(client, admin, BA_DINH)
    hits = cards.hits
    assert await card(client, official, HAC_THANH) == first
    assert cards.hits == hits + 1
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    await card(client, province, HAC_THANH)

    # The team's push shows on the very next read, in this process.
    await push(client, team, [submission(household, [member(1990), member(1992)])])
    after = await card(client, official, HAC_THANH)
    assert smartphone(after) == (2, 2)
    assert smartphone(first) == (0, 0)
    # The same ward seen by the province is another card (protected), kept apart.
    seen = await card(client, province, HAC_THANH)
    assert seen["exact"] is False
    assert after["exact"] is True
    # ... and in English, a card of its own.
    english = await card(client, official, HAC_THANH, **{"Accept-Language": "en"})
    assert english["area"] == after["area"]
    assert english["indicators"][0]["name"] != after["indicators"][0]["name"]

    # Every notification of the writes so far has arrived: from here on, which cards are
    # kept depends only on what this test does next, not on when a notification lands.
    await caught_up(client, cards)
    await card(client, official, HAC_THANH)  # kept again, whatever the notification dropped

    # Another province's ward cards were not dropped by Thanh Hóa's change ...
    hits = cards.hits
    assert await card(client, admin, BA_DINH) == hanoi
    assert cards.hits == hits + 1
    # ... and Thanh Hóa's province card is not dropped by Hà Nội's change (every cell is
    # protected on its own), while the nation's is.
    await card(client, province, THANH_HOA)
    await card(client, admin, "VN")
    hanoi_team = await ward_team(accounts, BA_DINH)
    await push(client, hanoi_team, [submission(await new_household(client, hanoi_team, BA_DINH))])
    await caught_up(client, cards)
    hits, builds = cards.hits, cards.builds
    await card(client, province, THANH_HOA)
    await card(client, official, HAC_THANH)
    await card(client, admin, "VN")
    assert (cards.builds, cards.hits) == (builds + 1, hits + 2)


async def test_another_process_change_reaches_the_kept_card(
    app: Litestar, client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    cards: CardCache = app.state.cards
    await eventually(lambda: listening(cards))
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    admin_id = (await accounts.create("admin")).id
    assert target(await card(client, official, HAC_THANH)) == 0.8
    assert target(await card(client, official, HAC_THANH)) == 0.8  # kept

    # `db` is another session, as another API process or a CLI rebuild would be.
    await db.execute(
        """INSERT INTO target (area_id, indicator, year, value, updated_by)
           SELECT id, 'ADULT_SMARTPHONE', extract(year FROM now())::int, 0.55, $1
           FROM area WHERE code = $2""",
        admin_id,
        THANH_HOA,
    )

    async def target_changed() -> bool:
        return bool(target(await card(client, official, HAC_THANH)) == 0.55)

    await eventually(target_changed)

    await set_smartphone_counter(db, 3, 4)

    async def counted() -> bool:
        return smartphone(await card(client, official, HAC_THANH)) == (3, 4)

    await eventually(counted)


async def test_without_its_listener_no_card_is_kept(
    app: Litestar, client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    cards: CardCache = app.state.cards
    await eventually(lambda: listening(cards))
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    await card(client, official, HAC_THANH)

    terminated = await db.fetchval(
        """SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
           WHERE application_name = $1 AND datname = current_database()""",
        LISTENER,
    )
    assert terminated == 1

    async def stopped() -> bool:
        return not cards.listening

    await eventually(stopped)
    # Not listening: every read builds the card, so a change made elsewhere shows at once.
    await set_smartphone_counter(db, 5, 6)
    assert smartphone(await card(client, official, HAC_THANH)) == (5, 6)
    hits = cards.hits
    await card(client, official, HAC_THANH)
    assert cards.hits == hits

    # It reconnects by itself, and keeps cards again.
    await eventually(lambda: listening(cards))
    await card(client, official, HAC_THANH)
    await card(client, official, HAC_THANH)
    assert cards.hits == hits + 1


async def test_one_card_build_for_readers_who_miss_it(
    app: Litestar, client: Client, accounts: Accounts
) -> None:
    cards: CardCache = app.state.cards
    ward = await Ward.ready(cards, client, accounts)
    official = ward.official
    await push(client, ward.team, [submission(ward.household, [member(1990)])])
    await caught_up(client, cards)

    builds = cards.builds
    together = await asyncio.gather(*(card(client, official, HAC_THANH) for _ in range(8)))
    assert cards.builds == builds + 1
    assert all(body == together[0] for body in together)
    assert smartphone(together[0]) == (1, 1)

    metrics = (await client.get("/metrics", headers=SCRAPER)).text
    assert "card_cache_listening 1.0" in metrics
    assert f"card_cache_builds_total {float(cards.builds)}" in metrics


class Builds:
    """A card build that takes a while, so that readers overlap it."""

    def __init__(self) -> None:
        self.count = 0
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self) -> bytes:
        self.count += 1
        number = self.count
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the database went away")
        return f"card {number}".encode()


def listening_cache() -> CardCache:
    cards = CardCache()
    cards.listening = True  # as when its listener is up
    return cards


async def test_readers_missing_together_share_one_build() -> None:
    cards, build = listening_cache(), Builds()
    readers = [asyncio.create_task(cards.card(38, "key", build)) for _ in range(8)]
    await asyncio.sleep(0.01)
    build.release.set()
    assert await asyncio.gather(*readers) == [b"card 1"] * 8
    assert build.count == 1
    assert await cards.card(38, "key", build) == b"card 1"  # kept
    assert build.count == 1


async def test_a_reader_after_a_change_does_not_join_an_older_build() -> None:
    cards, build = listening_cache(), Builds()
    before = asyncio.create_task(cards.card(38, "key", build))
    await asyncio.sleep(0.01)
    cards.changed([38])  # a push committed while the first build was reading
    after = asyncio.create_task(cards.card(38, "key", build))
    await asyncio.sleep(0.01)
    build.release.set()
    assert (await before, await after) == (b"card 1", b"card 2")
    # The older build was not kept; the newer one was.
    assert await cards.card(38, "key", build) == b"card 2"
    # Another province's change leaves it; the nation's cards go with any province's.
    cards.changed([1])
    assert await cards.card(38, "key", build) == b"card 2"
    assert build.count == 2


async def test_when_a_build_fails_its_waiters_build_for_themselves() -> None:
    cards, build = listening_cache(), Builds()
    build.fail = True
    first = asyncio.create_task(cards.card(38, "key", build))
    waiter = asyncio.create_task(cards.card(38, "key", build))
    await asyncio.sleep(0.01)
    build.release.set()
    with pytest.raises(RuntimeError):
        await first
    with pytest.raises(RuntimeError):
        await waiter  # it tried itself, and failed the same way
    assert build.count == 2
    build.fail = False
    assert await cards.card(38, "key", build) == b"card 3"
