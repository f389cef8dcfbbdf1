"""Rendered statistics cards, kept per process until the counters under them change.

A card is read far more often than its numbers change (officials open dashboards all day;
a ward's counters change when its team pushes), and building one costs more Python than the
queries behind it. So each process keeps the cards it rendered, as JSON bytes, in groups:
the cards of a province and its wards under the province, the nation's under
``NATION_GROUP``. A province's change drops its group and the nation's.

Changes arrive on the ``stats_changed`` channel with the provinces they touched (empty
payload: everything). Writes to the targets, the published modules, the learning counters
and a rebuild notify from triggers (migration 0007). Submissions do not: a trigger on their
commit cost more than the rest of a single submission's work. The process that stored them
drops its own cards of the provinces at once, before answering (so a caller always sees
their own change), and announces them after the commit, one coalesced notification per
``ANNOUNCE_SECONDS``. A process that dies between its commit and its announcement leaves
other processes' cards stale: no card is kept longer than ``max_age`` (a second).

Each process listens on a connection of its own. Cards are kept only while that connection
is up: if it drops, the cache is emptied and bypassed until it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.stats.counters import touched

log = logging.getLogger(__name__)

CHANNEL: Final = "stats_changed"
LISTENER: Final = "congdongso-cards"  # the listening connection's application_name
NATION_GROUP: Final = 0  # the nation's cards: they depend on every province
PING_SECONDS: Final = 5.0  # how soon a silently dead listener is noticed
RETRY_SECONDS: Final = 1.0
ANNOUNCE_SECONDS: Final = 0.1  # a writing process's changes go out together, this often
READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
Building = asyncio.Future[bytes | None]  # a card being built; None if the build failed


class CardCache:
    def __init__(
        self,
        capacity: int = 4096,
        max_age: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._clock = clock
        # group → key → (card, when its data started to be read)
        self._groups: dict[int, dict[Hashable, tuple[bytes, float]]] = {}
        # A rendering may be stored only if nothing changed since it started to read.
        self._epoch = 0  # bumped when everything changes, and when listening starts or stops
        self._generations: dict[int, int] = {}
        self._building: dict[tuple[int, Hashable], tuple[tuple[int, int], Building]] = {}
        self.listening = False
        self._conn: asyncpg.Connection | None = None  # the listening connection, while up
        self._querying = asyncio.Lock()  # one query at a time on it
        self._announcing: set[int] = set()  # provinces this process changed, not yet told
        self._announcement: asyncio.TimerHandle | None = None
        self._announcers: set[asyncio.Task[None]] = set()
        self.hits = 0
        self.builds = 0

    @property
    def size(self) -> int:
        return sum(len(cards) for cards in self._groups.values())  # a few dozen groups

    # Reading and storing ---------------------------------------------------------------------

    def generation(self, group: int) -> tuple[int, int]:
        return self._epoch, self._generations.get(group, 0)

    def get(self, group: int, key: Hashable) -> bytes | None:
        found = self._groups.get(group, {}).get(key) if self.listening else None
        if found is None:
            return None
        body, born = found
        if self._clock() - born > self.max_age:
            return None
        self.hits += 1
        return body

    def put(
        self,
        group: int,
        key: Hashable,
        seen: tuple[int, int],
        body: bytes,
        born: float | None = None,
    ) -> None:
        """Keep ``body`` unless its group changed after ``seen`` (read before the query, at
        ``born`` on this cache's clock: now if not given)."""
        if not self.listening or self.generation(group) != seen:
            return
        if self.size >= self.capacity:
            self.clear()  # rare (a few thousand cards fit); simpler than LRU bookkeeping
        self._groups.setdefault(group, {})[key] = (
            body,
            self._clock() if born is None else born,
        )

    async def card(self, group: int, key: Hashable, build: Callable[[], Awaitable[bytes]]) -> bytes:
        """The kept card, or one built now. Requests that miss while the same card is being
        built from data no older than theirs wait for that build instead of repeating it:
        after a push drops a card, 64 dashboards asking for it cost one build, not 64."""
        found = self.get(group, key)
        if found is not None:
            return found
        seen, born = self.generation(group), self._clock()
        building = self._building.get((group, key))
        if self.listening and building is not None and building[0] == seen:
            shared = await asyncio.shield(building[1])
            if shared is not None:
                return shared
        done: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()
        self._building[(group, key)] = (seen, done)
        self.builds += 1
        try:
            body = await build()
        except BaseException:
            done.set_result(None)  # those waiting build it themselves
            raise
        finally:
            if self._building.get((group, key), (None, None))[1] is done:
                del self._building[(group, key)]
        done.set_result(body)
        self.put(group, key, seen, body, born)
        return body

    # Forgetting -------------------------------------------------------------------------------

    def changed(self, provinces: list[int] | None) -> None:
        """Drop the cards of these provinces and of the nation (``None``: all cards)."""
        if provinces is None:
            self.clear()
            return
        for group in (*provinces, NATION_GROUP):
            self._generations[group] = self._generations.get(group, 0) + 1
            self._groups.pop(group, None)

    def clear(self) -> None:
        self._epoch += 1
        self._groups.clear()

    def announce(self, provinces: set[int]) -> None:
        """Tell the other processes, soon, that these provinces changed (after the commit)."""
        if not provinces:
            return
        self._announcing |= provinces
        if self._announcement is None:
            loop = asyncio.get_running_loop()
            self._announcement = loop.call_later(ANNOUNCE_SECONDS, self._announce_later)

    def _announce_later(self) -> None:
        self._announcement = None
        task = asyncio.create_task(self.flush())
        self._announcers.add(task)
        task.add_done_callback(self._announcers.discard)

    async def flush(self) -> None:
        """Send the pending announcement now, on the listening connection (without it,
        other processes' cards expire by age)."""
        if self._announcement is not None:
            self._announcement.cancel()
            self._announcement = None
        provinces, self._announcing = self._announcing, set()
        conn = self._conn
        if not provinces or conn is None:
            return
        payload = ",".join(str(p) for p in sorted(provinces))
        try:
            async with self._querying:
                await conn.execute(
                    "SELECT pg_notify($1, $2)", CHANNEL, payload, timeout=PING_SECONDS
                )
        except Exception as error:  # the listener is lost: cards expire by age
            log.warning("card cache: could not announce a change (%r)", error)

    def notified(self, payload: str) -> None:
        try:
            provinces = [int(part) for part in payload.split(",")] if payload else None
        except ValueError:
            provinces = None  # not ours to interpret: forget everything, to be safe
        self.changed(provinces)

    # Listening --------------------------------------------------------------------------------

    async def listen(self, dsn: str) -> None:
        """Listen for changes for as long as the task runs, reconnecting when needed."""
        while True:
            try:
                await self._listen_once(dsn)
            except Exception as error:  # whatever failed, listen again
                log.warning("card cache: listener lost (%r); cards are not cached", error)
            await asyncio.sleep(RETRY_SECONDS)

    async def _listen_once(self, dsn: str) -> None:
        conn = await asyncpg.connect(dsn, server_settings={"application_name": LISTENER})
        try:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, lambda *args: self.notified(args[3]))
            self.clear()  # begins a new epoch: nothing read before now is kept
            self._conn = conn
            self.listening = True
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), PING_SECONDS)
                except TimeoutError:
                    async with self._querying:
                        await conn.fetchval("SELECT 1", timeout=PING_SECONDS)
        finally:
            self._conn = None
            self._stop()
            if not conn.is_closed():
                await conn.close(timeout=PING_SECONDS)

    async def caught_up(self) -> None:
        """Return once every change committed before this call has dropped its cards.

        PostgreSQL sends a listening session the notifications queued before a query ahead
        of that query's answer, so one round trip on the listening connection is enough;
        asyncpg then runs the callbacks on the next turns of the loop. This process's own
        pending announcement goes first. Without a listener nothing is kept, so there is
        nothing to wait for."""
        await self.flush()
        conn = self._conn
        if conn is None:
            return
        async with self._querying:
            await conn.fetchval("SELECT 1", timeout=PING_SECONDS)
        for _ in range(2):
            await asyncio.sleep(0)

    def _stop(self) -> None:
        self.listening = False
        self.clear()

    # Wiring -----------------------------------------------------------------------------------

    def lifespan(self, dsn: str) -> Any:
        @asynccontextmanager
        async def listening(_: Litestar) -> AsyncGenerator[None, None]:
            task = asyncio.create_task(self.listen(dsn))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return listening

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """After a caller's successful write, drop this process's cards of the caller's
        province (all, for a national caller) and of the provinces whose counters the write
        changed, before the answer leaves; then announce those to the other processes."""

        async def forgetting(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP or scope.get("method") in READS:
                await app(scope, receive, send)
                return

            changed: set[int] = set()  # provinces whose counters this request changed

            async def send_wrapper(message: Message) -> None:
                if message["type"] == "http.response.start" and message["status"] < 400:
                    caller = scope.get("user")  # set by authentication, on this same scope
                    if caller is not None:
                        province = getattr(caller, "province_id", None)
                        self.changed(None if province is None else [province, *changed])
                    elif changed:
                        self.changed(list(changed))
                    # The handler has committed: the other processes may be told.
                    self.announce(changed)
                await send(message)

            token = touched.set(changed)
            try:
                await app(scope, receive, send_wrapper)
            finally:
                touched.reset(token)

        return forgetting
