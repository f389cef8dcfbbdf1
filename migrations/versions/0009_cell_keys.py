"""Cell keys beside every published count (the cell key method, api/stats/disclosure.py).

Each counted unit (a person, a household, a learner) has a record key in 0..255, derived
with HMAC-SHA256 from the server's cell-key secret (never stored). Every counter that holds
a count also holds the sum of its contributors' record keys, changed in the same statement
as the count; the published value of a cell is its count plus the noise that the
perturbation table gives for (count, sum of keys mod 256). Sums are kept unreduced (keys are
added and subtracted, shards and areas add up); readers take them modulo 256.

A learner's record key is stored on ``learner_module`` so that the trigger that takes a
deleted household's learners out of the counters can take their keys out too.

Existing counters start with zero sums: ``congdongso migrate`` runs the statistics rebuild
after this revision when the database already holds households or learners.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from api.migrate import execute_script

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE stat_current
        ADD COLUMN numerator_key   bigint NOT NULL DEFAULT 0,
        ADD COLUMN denominator_key bigint NOT NULL DEFAULT 0;
    ALTER TABLE stat_delta
        ADD COLUMN numerator_key   bigint NOT NULL DEFAULT 0,
        ADD COLUMN denominator_key bigint NOT NULL DEFAULT 0;
    ALTER TABLE ward_learning
        ADD COLUMN learners_key    bigint NOT NULL DEFAULT 0,
        ADD COLUMN completions_key bigint NOT NULL DEFAULT 0,
        ADD COLUMN passed_key      bigint NOT NULL DEFAULT 0,
        ADD COLUMN attempts_key    bigint NOT NULL DEFAULT 0;  -- keys weighted by attempts
    ALTER TABLE learner_module
        ADD COLUMN record_key smallint NOT NULL DEFAULT 0 CHECK (record_key BETWEEN 0 AND 255);

    CREATE OR REPLACE FUNCTION ward_learning_forget() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE ward_learning
        SET learners = learners - (OLD.attempts > 0)::int,
            completions = completions - OLD.completed::int,
            passed = passed - OLD.passed::int,
            attempts = attempts - OLD.attempts,
            learners_key = learners_key - (OLD.attempts > 0)::int * OLD.record_key,
            completions_key = completions_key - OLD.completed::int * OLD.record_key,
            passed_key = passed_key - OLD.passed::int * OLD.record_key,
            attempts_key = attempts_key - OLD.attempts * OLD.record_key
        WHERE ward_id = OLD.ward_id AND module_id = OLD.module_id;
        RETURN OLD;
    END $$;
    """)


def downgrade() -> None:
    execute_script("""
    CREATE OR REPLACE FUNCTION ward_learning_forget() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE ward_learning
        SET learners = learners - (OLD.attempts > 0)::int,
            completions = completions - OLD.completed::int,
            passed = passed - OLD.passed::int,
            attempts = attempts - OLD.attempts
        WHERE ward_id = OLD.ward_id AND module_id = OLD.module_id;
        RETURN OLD;
    END $$;
    ALTER TABLE learner_module DROP COLUMN record_key;
    ALTER TABLE ward_learning DROP COLUMN learners_key, DROP COLUMN completions_key,
        DROP COLUMN passed_key, DROP COLUMN attempts_key;
    ALTER TABLE stat_delta DROP COLUMN numerator_key, DROP COLUMN denominator_key;
    ALTER TABLE stat_current DROP COLUMN numerator_key, DROP COLUMN denominator_key;
    """)
