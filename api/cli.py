"""The ``congdongso`` command: serve, migrate, create-user, demo."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import uuid
from collections.abc import Sequence

from api import embedded, migrate
from api.config import Settings, settings_from_env
from api.db import connect
from api.logs import configure as configure_logs
from api.logs import server_log_config
from api.metrics import MULTIPROC_ENV, prepare_shared_dir
from api.stats.catalog import CatalogSync


def database_url(settings: Settings) -> str:
    return asyncio.run(embedded.resolve_database_url(settings.database_url, settings.data_dir))


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    dsn = database_url(settings)
    # Workers are separate processes: hand them the resolved database (embedded or not), and
    # a fresh directory where they share their metrics (api/metrics.py).
    os.environ["DATABASE_URL"] = dsn
    shared = os.environ.get(MULTIPROC_ENV) or os.path.join(settings.data_dir, "metrics")
    prepare_shared_dir(shared)
    os.environ[MULTIPROC_ENV] = os.path.abspath(shared)
    logging.getLogger("congdongso").info(
        "serving",
        extra={"url": f"http://{settings.host}:{settings.port}", "docs": "/schema"},
    )
    Granian(
        "api.asgi:app",
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        loop=Loops.uvloop,
        log_access=False,
        log_dictconfig=server_log_config(settings.log_level),
        # A worker that dies (a crash, the OOM killer, a kill -9) is replaced at once; the
        # main process, and with it an embedded PostgreSQL, stays up. Only SIGINT/SIGTERM
        # stop the service (granian gives up on a worker that dies again within seconds).
        respawn_failed_workers=True,
        workers_kill_timeout=10,  # a stop never waits forever on a stuck worker
    ).serve()
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    dsn = database_url(settings)
    if args.down:
        migrate.downgrade(dsn, args.down)
        print(f"database downgraded to {args.down}")
    else:
        before = asyncio.run(_revision_and_data(dsn))
        migrate.upgrade(dsn)
        print(f"database at revision {migrate.head_revision()}")
        synced = asyncio.run(_sync_catalog(dsn))
        print(
            "indicator catalog: "
            + (
                "; ".join(
                    f"{what} {', '.join(codes)}"
                    for what, codes in (
                        ("added", synced.added),
                        ("updated", synced.changed),
                        ("counting changed", synced.recounted),
                        ("no longer in the catalog (kept)", synced.missing),
                    )
                    if codes
                )
                or "up to date"
            )
        )
        counted = before is not None and before[1]  # a database that already held data
        keys_missing = counted and before is not None and before[0] < CELL_KEYS_REVISION
        if keys_missing or (counted and (synced.added or synced.recounted)):
            # Counters kept before 0009 have no key sums, and counters of a changed rule
            # count the old way: recompute them once.
            households, seconds = asyncio.run(_rebuild_stats(dsn, settings))
            print(f"statistics rebuilt: {households:,} households, {seconds:.1f} s")
        elif before is not None and before[0] < PARENT_SUMS_REVISION:
            # Counters kept before 0015 have no provinces' sums of their wards yet.
            seconds = asyncio.run(_refill_parent_sums(dsn))
            print(f"provinces' sums of their wards computed: {seconds:.1f} s")
    return 0


async def _sync_catalog(dsn: str) -> CatalogSync:
    """migrations/data/indicators.json → the indicator table (api/stats/catalog.py)."""
    from api.stats.catalog import read_catalog, sync_catalog

    entries = await asyncio.to_thread(read_catalog)
    conn = await connect(dsn)
    try:
        return await sync_catalog(conn, entries)
    finally:
        await conn.close()


CELL_KEYS_REVISION = "0009"
PARENT_SUMS_REVISION = "0015"


async def _refill_parent_sums(dsn: str) -> float:
    import time

    from api.stats import sums
    from api.stats.counters import LOCK_COUNTERS

    conn = await connect(dsn, work="rebuild")
    try:
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(LOCK_COUNTERS.format("EXCLUSIVE"))  # the folder waits
            await sums.refill(conn)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _revision_and_data(dsn: str) -> tuple[str, bool] | None:
    """The database's revision and whether it holds anything counted (None: not migrated)."""
    from api.db import connect

    conn = await connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
            return None
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        if revision is None or await conn.fetchval("SELECT to_regclass('household')") is None:
            return None
        counted = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM household) OR EXISTS (SELECT FROM learner_module)"
            if await conn.fetchval("SELECT to_regclass('learner_module')") is not None
            else "SELECT EXISTS (SELECT FROM household)"
        )
        return str(revision), bool(counted)
    finally:
        await conn.close()


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise SystemExit("passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


async def _create_user(
    dsn: str,
    settings: Settings,
    phone: str,
    role: str,
    area_code: str | None,
    password: str,
    display_name: str | None,
) -> str:
    from api.passwords import Passwords
    from api.phone import normalize_phone
    from api.queries import accounts, audit
    from api.queries.areas import get_area

    normalized = normalize_phone(phone)
    if normalized is None:
        raise SystemExit(f"not a Vietnamese mobile number: {phone}")
    if len(password) < 8:
        raise SystemExit("the password needs at least 8 characters")
    if role not in ("admin", "province_official", "ward_official"):
        raise SystemExit("create-user makes admins and officials; teams add their own members")
    conn = await connect(dsn)
    try:
        area_id = province_id = None
        if role != "admin":
            if area_code is None:
                raise SystemExit(f"--area is required for {role}")
            area = await get_area(conn, area_code)
            expected = "province" if role == "province_official" else "ward"
            if area is None or area.level != expected:
                raise SystemExit(f"{role} needs the code of a {expected}: {area_code}")
            area_id, province_id = area.id, area.province_id
        hasher = Passwords(
            settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
        )
        user_id = uuid.uuid4()
        async with conn.transaction():
            created = await accounts.insert_user(
                conn,
                user_id=user_id,
                phone=normalized,
                password_hash=await hasher.hash(password),
                role=role,
                area_id=area_id,
                province_id=province_id,
                team_id=None,
                display_name=display_name,
            )
            if not created:
                raise SystemExit(f"{normalized} already has an account")
            await audit.record(
                conn,
                "user_created",
                "user",
                user_id,
                actor_id=None,
                province_id=province_id,
                detail={"role": role, "area": area_code, "via": "cli"},
            )
        return normalized
    finally:
        await conn.close()


def cmd_create_user(settings: Settings, args: argparse.Namespace) -> int:
    dsn = database_url(settings)
    password = _read_password()
    phone = asyncio.run(
        _create_user(dsn, settings, args.phone, args.role, args.area, password, args.name)
    )
    print(f"created {args.role} {phone}")
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    if settings.production:
        print("demo data is refused when CONGDONGSO_ENV=production", file=sys.stderr)
        return 2
    from api.demo import create_demo

    dsn = database_url(settings)
    asyncio.run(create_demo(dsn, settings, args.households))
    return 0


async def _rebuild_stats(dsn: str, settings: Settings) -> tuple[int, float]:
    import time

    from tqdm import tqdm

    from api.db import connect
    from api.stats.catalog import load_catalog
    from api.stats.counters import rebuild
    from api.stats.keys import record_keys

    conn = await connect(dsn, work="rebuild")  # its own statement and lock limits
    try:
        catalog = await load_catalog(conn, record_keys(settings))
        provinces = await conn.fetchval("SELECT count(*) FROM area WHERE level = 'province'")
        started = time.perf_counter()
        with tqdm(total=provinces, desc="rebuilding statistics", unit="province") as progress:

            def advance(name: str) -> None:
                progress.set_postfix_str(name)
                progress.update()

            households = await rebuild(conn, catalog, advance)
        return households, time.perf_counter() - started
    finally:
        await conn.close()


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    households, seconds = asyncio.run(_rebuild_stats(database_url(settings), settings))
    print(f"statistics rebuilt from {households:,} households in {seconds:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="congdongso", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="serve the API (HOST, PORT, DATABASE_URL)")
    p_migrate = sub.add_parser("migrate", help="apply database migrations")
    p_migrate.add_argument("--down", metavar="REVISION", help="downgrade to REVISION instead")
    p_user = sub.add_parser("create-user", help="create an admin or official (password on stdin)")
    p_user.add_argument("--phone", required=True)
    p_user.add_argument(
        "--role", required=True, choices=["admin", "province_official", "ward_official"]
    )
    p_user.add_argument("--area", help="province or ward code (officials)")
    p_user.add_argument("--name", help="display name")
    p_demo = sub.add_parser("demo", help="a demo ward with a team, officials and households")
    p_demo.add_argument("--households", type=int, default=300)
    p_stats = sub.add_parser("stats", help="statistics maintenance")
    p_stats.add_argument(
        "action", choices=["rebuild"], help="rebuild: recompute every counter from submissions"
    )
    args = parser.parse_args(argv)

    settings = settings_from_env()
    configure_logs(settings.log_level)
    commands = {
        "serve": cmd_serve,
        "migrate": cmd_migrate,
        "create-user": cmd_create_user,
        "demo": cmd_demo,
        "stats": cmd_stats,
    }
    return commands[args.command](settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
