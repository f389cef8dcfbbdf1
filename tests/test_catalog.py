"""Changing the indicator catalog reaches an existing database (api/stats/catalog.py, run by
``congdongso migrate``): names and units are updated, new indicators added with their
national default target, changed rules reported for a rebuild, nothing deleted."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from api.stats.catalog import CATALOG_FILE, read_catalog, sync_catalog

pytestmark = pytest.mark.anyio


async def test_the_shipped_catalog_is_what_migrations_leave(db: asyncpg.Connection) -> None:
    synced = await sync_catalog(db, read_catalog())
    assert (synced.added, synced.changed, synced.recounted, synced.missing) == ([], [], [], [])


async def test_a_changed_catalog_reaches_the_database(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    catalog = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    dropped = catalog.pop()  # left out of the file: kept in the database
    first, second = catalog[0], catalog[1]
    first["name"]["en"] = "Adults with a smartphone of their own"
    second["rule"] = {"key": "hh_smart_devices", "op": "gte", "value": 2}
    third = catalog[2]  # a new unit changes how wards add up to their province: recounted
    third["unit"] = "ratio" if third["unit"] == "fraction" else "fraction"
    catalog.reverse()  # a new order
    catalog.append(
        {
            "code": "HH_COMPUTER",
            "name": {"vi": "Hộ gia đình có máy tính", "en": "Households with a computer"},
            "unit": "fraction",
            "subject": "household",
            "minAge": None,
            "rule": {"key": "hh_smart_devices", "op": "gte", "value": 3},
            "target": 0.5,
            "source": None,
        }
    )
    path = tmp_path / "indicators.json"
    path.write_text(json.dumps(catalog, ensure_ascii=False), encoding="utf-8")

    synced = await sync_catalog(db, read_catalog(path))

    assert synced.added == ["HH_COMPUTER"]
    assert sorted(synced.recounted) == sorted([second["code"], third["code"]])
    assert synced.missing == [dropped["code"]]
    assert first["code"] in synced.changed
    rows = {r["code"]: r for r in await db.fetch("SELECT * FROM indicator ORDER BY position")}
    assert list(rows)[: len(catalog)] == [entry["code"] for entry in catalog]
    assert rows[first["code"]]["name"]["en"] == "Adults with a smartphone of their own"
    assert rows[second["code"]]["rule"]["value"] == 2
    assert dropped["code"] in rows
    target = await db.fetchval(
        "SELECT value FROM target WHERE area_id IS NULL AND indicator = 'HH_COMPUTER'"
    )
    assert float(target) == 0.5
    # Idempotent: a second run finds nothing to do.
    again = await sync_catalog(db, read_catalog(path))
    assert (again.added, again.changed, again.recounted) == ([], [], [])


def test_a_rule_that_cannot_compile_is_refused(tmp_path: Path) -> None:
    catalog = json.loads(CATALOG_FILE.read_text(encoding="utf-8"))
    catalog[0]["rule"] = {"key": "smartphone'; DROP TABLE indicator; --", "op": "true"}
    path = tmp_path / "indicators.json"
    path.write_text(json.dumps(catalog), encoding="utf-8")
    with pytest.raises(ValueError, match="matching regex"):
        read_catalog(path)
