"""Statistics: the indicator catalog, plan targets, and per-area counters kept incrementally.

Counters are kept per ward and per province (the nation is the sum of its provinces):
``stat_current`` holds today's numerator and denominator of each measure, and ``stat_delta``
how each month changed them, so "as of the end of month M" is a sum of deltas up to M.
A submission counts from ``counted_at``: its collection time, never earlier than the state it
replaced, so a household's history is ordered even when a phone's clock was wrong.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import json
from pathlib import Path

from api.migrate import execute_script, executemany

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CATALOG = Path(__file__).resolve().parent.parent / "data" / "indicators.json"
DEFAULT_TARGET_YEAR = 2025


def upgrade() -> None:
    execute_script("""
    CREATE TABLE indicator (
        code     text PRIMARY KEY,
        position smallint NOT NULL UNIQUE,
        name     jsonb NOT NULL,              -- {"vi": …, "en": …}
        unit     text NOT NULL CHECK (unit IN ('percent', 'ratio')),
        subject  text NOT NULL CHECK (subject IN ('household', 'member')),
        min_age  smallint CHECK (min_age BETWEEN 0 AND 120),
        rule     jsonb NOT NULL,              -- what counts in the numerator, see api.stats.catalog
        source   text
    );

    -- Plan targets per area and year; NULL area is the national default. The nearest area up
    -- the hierarchy that has a target applies, with its latest year not after the period's.
    CREATE TABLE target (
        area_id    integer REFERENCES area (id),
        indicator  text NOT NULL REFERENCES indicator (code),
        year       smallint NOT NULL CHECK (year BETWEEN 2000 AND 2100),
        value      numeric NOT NULL CHECK (value >= 0),
        updated_by uuid REFERENCES app_user (id) ON DELETE SET NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX target_key ON target (coalesce(area_id, 0), indicator, year);

    ALTER TABLE submission ADD COLUMN counted_at timestamptz;
    UPDATE submission SET counted_at = collected_at;
    ALTER TABLE submission ALTER COLUMN counted_at SET NOT NULL;

    -- Today's counters per ward and province (parent_id: the province of a ward, NULL for a
    -- province). "measure" is an indicator code or COVERAGE (surveyed / registered households).
    -- Each counter is split into a few shards that writers pick at random and readers add up,
    -- so concurrent submissions in one ward do not queue on one row lock until they commit.
    CREATE TABLE stat_current (
        area_id     integer NOT NULL REFERENCES area (id),
        parent_id   integer REFERENCES area (id),
        measure     text NOT NULL,
        shard       smallint NOT NULL DEFAULT 0,
        numerator   bigint NOT NULL,
        denominator bigint NOT NULL,
        PRIMARY KEY (area_id, measure, shard)
    );

    -- How each month changed the counters (months in Vietnam time).
    CREATE TABLE stat_delta (
        area_id     integer NOT NULL REFERENCES area (id),
        measure     text NOT NULL,
        month       date NOT NULL CHECK (extract(day FROM month) = 1),
        shard       smallint NOT NULL DEFAULT 0,
        numerator   bigint NOT NULL,
        denominator bigint NOT NULL,
        PRIMARY KEY (area_id, measure, month, shard)
    );
    """)
    indicators = json.loads(CATALOG.read_text(encoding="utf-8"))
    executemany(
        """INSERT INTO indicator (code, position, name, unit, subject, min_age, rule, source)
           VALUES ($1, $2, $3::text::jsonb, $4, $5, $6, $7::text::jsonb, $8)""",
        [
            (
                item["code"],
                position,
                json.dumps(item["name"], ensure_ascii=False),
                # The catalog speaks today's units; this revision's table, 0004's (0014).
                {"fraction": "percent"}.get(item["unit"], item["unit"]),
                item["subject"],
                item["minAge"],
                json.dumps(item["rule"]),
                item["source"],
            )
            for position, item in enumerate(indicators, start=1)
        ],
    )
    executemany(
        "INSERT INTO target (area_id, indicator, year, value) VALUES (NULL, $1, $2, $3::numeric)",
        [(item["code"], DEFAULT_TARGET_YEAR, str(item["target"])) for item in indicators],
    )


def downgrade() -> None:
    execute_script("""
    DROP TABLE stat_delta;
    DROP TABLE stat_current;
    ALTER TABLE submission DROP COLUMN counted_at;
    DROP TABLE target;
    DROP TABLE indicator;
    """)
