"""Counters without shared rows: writers append to a log, one folder adds it up.

Every submission used to add its changes to the same ward and province rows of
``stat_current`` and ``stat_delta`` and hold their row locks until commit, so concurrent
writers of a province queued behind each other. Now a writer appends its batch's changes
(one row per ward, month and measure) to ``stat_log`` in its own transaction and updates no
shared row; the folder (api/stats/folder.py, one per database) moves the log into the
counters every second, in one transaction. Readers read the counters plus the unfolded log
(the ``*_live`` views), so every figure stays exact and a writer sees its own write at once.

The fold changes no figure, so it notifies nobody: the triggers of migration 0007 stay quiet
while the ``congdongso.folding`` setting is on (set by the folder for its transaction only).
A rebuild and other writes to the counters still notify.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-27
"""

from api.migrate import execute_script

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

FOLDED = {"stat_current": "area_id", "stat_delta": "area_id"}


def _changed(table: str, column: str, quiet_when_folding: bool) -> str:
    quiet = (
        "IF current_setting('congdongso.folding', true) = 'on' THEN RETURN NULL; END IF;"
        if quiet_when_folding
        else ""
    )
    return f"""
    CREATE OR REPLACE FUNCTION {table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        provinces text;
    BEGIN
        {quiet}
        SELECT string_agg(DISTINCT a.province_id::text, ',' ORDER BY a.province_id::text)
        INTO provinces
        FROM changed c JOIN area a ON a.id = c.{column};
        IF provinces IS NOT NULL THEN
            PERFORM pg_notify('stats_changed', provinces);
        END IF;
        RETURN NULL;
    END $$;
    """


def upgrade() -> None:
    execute_script(
        """
    -- Deleted as it is folded, so small: no key, two indexes for the readers of one area.
    CREATE TABLE stat_log (
        ward_id         integer NOT NULL,
        province_id     integer NOT NULL,
        month           date NOT NULL,
        measure         text NOT NULL,
        numerator       bigint NOT NULL,
        denominator     bigint NOT NULL,
        numerator_key   bigint NOT NULL,
        denominator_key bigint NOT NULL
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
            autovacuum_vacuum_insert_scale_factor = 0,
            autovacuum_vacuum_insert_threshold = 5000);
    CREATE INDEX stat_log_ward ON stat_log (ward_id);
    CREATE INDEX stat_log_province ON stat_log (province_id);

    -- Today's counters and the monthly changes, with what is not folded yet: a ward's log
    -- row counts for the ward and for its province.
    CREATE VIEW stat_current_live AS
        SELECT area_id, parent_id, measure, numerator, denominator,
               numerator_key, denominator_key
        FROM stat_current
        UNION ALL
        SELECT ward_id, province_id, measure, numerator, denominator,
               numerator_key, denominator_key
        FROM stat_log
        UNION ALL
        SELECT province_id, NULL::integer, measure, numerator, denominator,
               numerator_key, denominator_key
        FROM stat_log;
    CREATE VIEW stat_delta_live AS
        SELECT area_id, measure, month, numerator, denominator, numerator_key, denominator_key
        FROM stat_delta
        UNION ALL
        SELECT ward_id, measure, month, numerator, denominator, numerator_key, denominator_key
        FROM stat_log
        UNION ALL
        SELECT province_id, measure, month, numerator, denominator,
               numerator_key, denominator_key
        FROM stat_log;
    """
        + "".join(_changed(table, column, True) for table, column in FOLDED.items())
    )


def downgrade() -> None:
    # The log is folded into the counters before it goes: no change is lost.
    execute_script(
        """
    WITH gone AS (DELETE FROM stat_log RETURNING *),
    l AS (
        SELECT ward_id AS area_id, province_id AS parent_id, month, measure, numerator,
               denominator, numerator_key, denominator_key FROM gone
        UNION ALL
        SELECT province_id, NULL, month, measure, numerator, denominator,
               numerator_key, denominator_key FROM gone
    ), c AS (
        INSERT INTO stat_current AS s (area_id, parent_id, measure, numerator, denominator,
                                       numerator_key, denominator_key)
        SELECT area_id, parent_id, measure, sum(numerator), sum(denominator),
               sum(numerator_key), sum(denominator_key)
        FROM l GROUP BY 1, 2, 3
        ON CONFLICT (area_id, measure, shard) DO UPDATE
        SET numerator = s.numerator + excluded.numerator,
            denominator = s.denominator + excluded.denominator,
            numerator_key = s.numerator_key + excluded.numerator_key,
            denominator_key = s.denominator_key + excluded.denominator_key
    )
    INSERT INTO stat_delta AS s (area_id, measure, month, numerator, denominator,
                                 numerator_key, denominator_key)
    SELECT area_id, measure, month, sum(numerator), sum(denominator),
           sum(numerator_key), sum(denominator_key)
    FROM l GROUP BY 1, 2, 3
    ON CONFLICT (area_id, measure, month, shard) DO UPDATE
    SET numerator = s.numerator + excluded.numerator,
        denominator = s.denominator + excluded.denominator,
        numerator_key = s.numerator_key + excluded.numerator_key,
        denominator_key = s.denominator_key + excluded.denominator_key;
    DROP VIEW stat_delta_live;
    DROP VIEW stat_current_live;
    DROP TABLE stat_log;
    """
        + "".join(_changed(table, column, False) for table, column in FOLDED.items())
    )
