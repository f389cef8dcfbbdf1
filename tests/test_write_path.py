"""The write path without shared rows: writers append to the counters' log, one folder per
database adds it up, readers add the unfolded rest; submissions announce their provinces to
the other processes after their commit instead of from a trigger."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.config import Settings
from api.stats.cardcache import CardCache
from api.stats.catalog import load_catalog
from api.stats.counters import fold, rebuild
from api.stats.folder import FOLDER
from api.stats.keys import record_keys
from tests.conftest import HAC_THANH, HAM_RONG, THANH_HOA, Accounts, member, submission
from tests.test_cardcache import caught_up, listening
from tests.test_stats import (
    card,
    cells,
    counters,
    folds_here,  # noqa: F401 - a fixture
    log_folded,
    new_household,
    push,
    ward_team,
)

pytestmark = pytest.mark.anyio

Client = AsyncTestClient[Litestar]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Cards are dropped here by announcements only (their age is tested on its own).
    return msgspec.structs.replace(settings, card_max_age=3600.0)


@pytest.fixture
async def other(dsn: str, settings: Settings) -> AsyncIterator[tuple[Litestar, Client]]:
    """A second API process on the same database."""
    app = create_app(dsn, settings)
    async with AsyncTestClient(app=app) as client:
        yield app, client


async def until(check: Any, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("did not happen in time")


@pytest.mark.usefixtures("folds_here")  # set up before the app, which then never folds
async def test_a_push_shows_at_once_and_a_fold_changes_no_figure(
    client: Client, accounts: Accounts, db: asyncpg.Connection
) -> None:
    team = await ward_team(accounts, HAC_THANH)
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    province = await accounts.headers(await accounts.create("province_official", THANH_HOA))
    household = await new_household(client, team, HAC_THANH)
    await push(client, team, [submission(household, [member(1990), member(1985)])])
    assert await db.fetchval("SELECT count(*) FROM stat_log") > 0
    assert await db.fetchval("SELECT count(*) FROM stat_current") == 0
    # Read at once, from the log: the ward, its series and its province.
    assert cells(await card(client, official, HAC_THANH))["ADULT_SMARTPHONE"] == (2, 2)
    series = await client.get(
        f"/api/v1/stats/areas/{HAC_THANH}/series",
        params={"indicator": "ADULT_SMARTPHONE"},
        headers=official,
    )
    assert series.status_code == 200, series.text
    assert series.json()["points"][-1]["numerator"] == 2
    seen = await card(client, province, THANH_HOA)
    before = await counters(db)

    assert await fold(db) > 0
    assert await db.fetchval("SELECT count(*) FROM stat_log") == 0
    assert await counters(db) == before
    again = await client.get(
        f"/api/v1/stats/areas/{THANH_HOA}", params={"period": "current"}, headers=province
    )
    assert again.json() == seen
    assert await fold(db) == 0


# The folders' connections holding an advisory lock: the leader(s).
LEADER_PIDS = """SELECT pid FROM pg_locks l JOIN pg_stat_activity a USING (pid)
                 WHERE l.locktype = 'advisory' AND l.granted
                   AND a.application_name = $1 AND a.datname = current_database()"""
LEADERS = f"SELECT count(*) FROM ({LEADER_PIDS}) leader"


async def test_two_servers_fold_once(
    client: Client,
    other: tuple[Litestar, Client],
    accounts: Accounts,
    db: asyncpg.Connection,
    settings: Settings,
) -> None:
    _, second_client = other

    async def one_leader() -> bool:
        return bool(await db.fetchval(LEADERS, FOLDER) == 1)

    await until(one_leader)
    teams = [await ward_team(accounts, HAC_THANH), await ward_team(accounts, HAM_RONG)]
    households = [
        [await new_household(client, team, ward) for _ in range(6)]
        for team, ward in zip(teams, (HAC_THANH, HAM_RONG), strict=True)
    ]

    async def writer(via: Client, team: dict[str, str], own: list[str]) -> None:
        for household in own:
            await push(via, team, [submission(household, [member(1980), member(2001)])])

    await asyncio.gather(
        writer(client, teams[0], households[0][:3]),
        writer(second_client, teams[0], households[0][3:]),
        writer(client, teams[1], households[1][:3]),
        writer(second_client, teams[1], households[1][3:]),
    )
    await log_folded(db)
    assert await one_leader()
    catalog = await load_catalog(db, record_keys(settings))
    incremental = await counters(db)
    await rebuild(db, catalog)
    assert await counters(db) == incremental

    # The leader's connection dies (as with its process): a folder takes over and folds.
    killed = await db.fetchval(
        f"SELECT count(pg_terminate_backend(pid, 5000)) FROM ({LEADER_PIDS}) leader", FOLDER
    )
    assert killed == 1
    await until(one_leader)
    await push(
        second_client,
        teams[0],
        [submission(await new_household(second_client, teams[0], HAC_THANH), [member(1970)])],
    )
    await log_folded(db)
    incremental = await counters(db)
    await rebuild(db, catalog)
    assert await counters(db) == incremental


async def test_another_server_sees_a_push_once_announced(
    app: Litestar,
    client: Client,
    other: tuple[Litestar, Client],
    accounts: Accounts,
) -> None:
    second, second_client = other
    here: CardCache = app.state.cards
    there: CardCache = second.state.cards
    await until(lambda: listening(here))
    await until(lambda: listening(there))
    team = await ward_team(accounts, HAC_THANH)
    official = await accounts.headers(await accounts.create("ward_official", HAC_THANH))
    household = await new_household(client, team, HAC_THANH)
    await caught_up(client, here)
    await caught_up(second_client, there)
    assert cells(await card(second_client, official, HAC_THANH))["ADULT_SMARTPHONE"] == (0, 0)
    hits = there.hits
    await card(second_client, official, HAC_THANH)
    assert there.hits == hits + 1  # kept

    await push(client, team, [submission(household, [member(1990)])])
    # Shown at once where it was written; elsewhere once the announcement arrived.
    assert cells(await card(client, official, HAC_THANH))["ADULT_SMARTPHONE"] == (1, 1)
    await caught_up(client, here)  # sends this process's announcement now
    await caught_up(second_client, there)
    assert cells(await card(second_client, official, HAC_THANH))["ADULT_SMARTPHONE"] == (1, 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_a_kept_card_lives_at_most_its_maximum_age() -> None:
    clock = Clock()
    cards = CardCache(max_age=1.0, clock=clock)
    cards.listening = True
    builds = 0

    async def build() -> bytes:
        nonlocal builds
        builds += 1
        return f"card {builds}".encode()

    assert await cards.card(38, "key", build) == b"card 1"
    clock.now += 1.0
    assert await cards.card(38, "key", build) == b"card 1"
    clock.now += 0.01
    assert await cards.card(38, "key", build) == b"card 2"
    # The age counts from when the card's data was read, not from when it was kept.
    seen = cards.generation(38)
    cards.put(38, "other", seen, b"old", born=clock.now - 0.9)
    assert cards.get(38, "other") == b"old"
    clock.now += 0.2
    assert cards.get(38, "other") is None
