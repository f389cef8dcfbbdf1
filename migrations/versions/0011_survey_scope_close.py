"""Surveys authored by provinces, closed surveys, and one submission chain per survey.

``survey.province_id``: NULL for a national survey (authored by admins), else the province
whose officials author it; its wards see it in pull, other provinces never do.
``survey.closed_at``/``closed_by``: a closed survey takes no new submissions; its data stays.
``survey.household_state``: the survey whose answers are a household's state (the built-in
``household_digital``): its submissions move ``household.current_submission_id`` and the
statistics. Any other survey (a province's campaign) keeps its own chain of submissions per
household in ``survey_head``, so a campaign visit never replaces the household's state.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from api.migrate import execute_script

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE survey
        ADD COLUMN province_id     integer REFERENCES area (id),
        ADD COLUMN household_state boolean NOT NULL DEFAULT false,
        ADD COLUMN closed_at       timestamptz,
        ADD COLUMN closed_by       uuid REFERENCES app_user (id) ON DELETE SET NULL;
    UPDATE survey SET household_state = true WHERE code = 'household_digital';
    CREATE INDEX survey_by_province ON survey (province_id);

    -- The current submission of each (household, campaign survey) pair.
    CREATE TABLE survey_head (
        household_id  uuid NOT NULL REFERENCES household (id) ON DELETE CASCADE,
        survey_id     uuid NOT NULL REFERENCES survey (id),
        submission_id uuid NOT NULL REFERENCES submission (id) DEFERRABLE INITIALLY DEFERRED,
        PRIMARY KEY (household_id, survey_id)
    );
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE survey_head;
    DROP INDEX survey_by_province;
    ALTER TABLE survey
        DROP COLUMN closed_by,
        DROP COLUMN closed_at,
        DROP COLUMN household_state,
        DROP COLUMN province_id;
    """)
