"""The folder: moves the counters' log (``stat_log``) into the counters, every second.

Writers append their changes to the log and update no shared row (migration 0012). Every
API process runs a folder task, but only one per database folds: the one holding a session
advisory lock on its own connection. If that process dies or its connection drops, the
lock goes with it and another process takes over within a second. Folding twice at once
would still be right (a log row is deleted by one fold only), but it would be wasted work.

Each fold is one transaction: a folder killed midway folded nothing. Readers add the
unfolded log to the counters, so how far behind the folder runs changes no figure, only
how much a reader adds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import asyncpg
from litestar import Litestar

from api.stats.counters import fold

log = logging.getLogger(__name__)

# The advisory lock's key: "stat_log" as a number, shared by every process of one database.
LEADER_KEY: Final = int.from_bytes(b"statlog\x00", "big")
FOLDER: Final = "congdongso-folder"  # the folder connection's application_name
# Rows in the log (estimated from the table's statistics when it is large: a count of a big
# log would itself take long, and a large log is what the figure is there to show).
LOG_ROWS_SQL: Final = """
    SELECT CASE WHEN reltuples > 100000 THEN reltuples::bigint
                ELSE (SELECT count(*) FROM stat_log) END
    FROM pg_class WHERE oid = 'stat_log'::regclass"""


# Told of each fold: (log rows folded, seconds the fold took, log rows left after it).
FoldWatcher = Callable[[int, float, int], None]


class Folder:
    def __init__(self, dsn: str, interval: float = 0.5, watcher: FoldWatcher | None = None) -> None:
        self.dsn = dsn
        self.interval = interval  # between folds, and between tries to become the leader
        self.watcher = watcher  # the metrics (api/metrics.py)
        self.leading = False
        self.folds = 0
        self.folded = 0  # log rows

    async def run(self) -> None:
        """Fold for as long as the task runs (when leading), reconnecting when needed."""
        while True:
            try:
                await self._run_once()
            except Exception as error:  # whatever failed, try again
                log.warning("folder: %r; trying again", error)
            self.leading = False
            await asyncio.sleep(self.interval)

    async def _run_once(self) -> None:
        conn = await asyncpg.connect(self.dsn, server_settings={"application_name": FOLDER})
        try:
            # Polled: another process's session holds the lock until it ends.
            while True:
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY):
                    break
                await asyncio.sleep(self.interval)
            self.leading = True
            log.info("folder: leading")
            while True:
                started = time.perf_counter()
                rows = await fold(conn)
                seconds = time.perf_counter() - started
                self.folded += rows
                self.folds += 1
                if self.watcher is not None:
                    left: int = await conn.fetchval(LOG_ROWS_SQL)
                    self.watcher(rows, seconds, left)
                await asyncio.sleep(self.interval)
        finally:
            self.leading = False
            # Ending the session ends the advisory lock with it.
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()

    def lifespan(self) -> Any:
        @asynccontextmanager
        async def folding(_: Litestar) -> AsyncGenerator[None, None]:
            task = asyncio.create_task(self.run())
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        return folding
