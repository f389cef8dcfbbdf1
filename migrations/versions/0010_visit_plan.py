"""The visit plan: ward settings for field work, and what each survey says about the
lagging indicators.

``ward_setting``: one row per ward that changed a default; a ward without a row uses the
defaults (a survey older than 6 months is stale). Set by the ward's officials through
``PUT /areas/{wardCode}/settings`` (audited).

``visit_fact``: per submission, counts derived from its answers (per indicator: members of
the indicator's age not counted in its numerator, members of its age, and those of them
who asked for help with it), so that a plan reads a few numbers per household instead of
every member's answers. Submissions never change, so neither do their facts; they are
computed by the first plan that needs them (api/fieldwork/visit_plan.py) and carry the key
of the indicator rules they were computed with: facts of other rules are recomputed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from api.migrate import execute_script

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE TABLE ward_setting (
        ward_id            integer PRIMARY KEY REFERENCES area (id),
        province_id        integer NOT NULL REFERENCES area (id),
        stale_after_months smallint NOT NULL DEFAULT 6 CHECK (stale_after_months BETWEEN 1 AND 60),
        updated_by         uuid REFERENCES app_user (id) ON DELETE SET NULL,
        updated_at         timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE visit_fact (
        submission_id uuid PRIMARY KEY REFERENCES submission (id) ON DELETE CASCADE,
        ward_id       integer NOT NULL,      -- the household's: a plan reads one ward's facts
        catalog_key   bigint NOT NULL,      -- the indicator rules the counts follow
        collected_at  timestamptz NOT NULL,  -- the submission's, to tell stale visits
        submitted_by  uuid,                  -- the submission's, for a member's hamlets
        counts        smallint[] NOT NULL,   -- per indicator: missing, of age, asking for help
        missing       bigint NOT NULL,       -- bit i - 1: indicator i has members missing
        asking        bigint NOT NULL        -- bit i - 1: members asking for help with it
    );
    CREATE INDEX visit_fact_by_ward ON visit_fact (ward_id);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE visit_fact;
    DROP TABLE ward_setting;
    """)
