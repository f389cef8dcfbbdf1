"""Learners' progress in the sync pull: each progress row carries the id of the transaction
that last changed it, like households, so a team's phones get the ward's progress offline.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from api.migrate import execute_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE learner_module ADD COLUMN change_xid xid8 NOT NULL DEFAULT pg_current_xact_id();
    CREATE INDEX learner_module_changes ON learner_module (ward_id, change_xid);

    -- Every change marks the row, whichever statement makes it.
    CREATE FUNCTION learner_module_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.change_xid := pg_current_xact_id();
        RETURN NEW;
    END $$;
    CREATE TRIGGER learner_module_changed BEFORE UPDATE ON learner_module
        FOR EACH ROW EXECUTE FUNCTION learner_module_changed();
    """)


def downgrade() -> None:
    execute_script("""
    DROP TRIGGER learner_module_changed ON learner_module;
    DROP FUNCTION learner_module_changed();
    DROP INDEX learner_module_changes;
    ALTER TABLE learner_module DROP COLUMN change_xid;
    """)
