"""Indicator units say what the number is: ``fraction`` (0.756 = 75.6 %), not ``percent``.

Values were always fractions; only the unit's name changes (API ``unit``, exports, reports).

Revision ID: 0014
Revises: 0012
Create Date: 2026-11-27
"""

from api.migrate import execute_script

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE indicator DROP CONSTRAINT indicator_unit_check;
    UPDATE indicator SET unit = 'fraction' WHERE unit = 'percent';
    ALTER TABLE indicator ADD CONSTRAINT indicator_unit_check
        CHECK (unit IN ('fraction', 'ratio'));
    """)


def downgrade() -> None:
    execute_script("""
    ALTER TABLE indicator DROP CONSTRAINT indicator_unit_check;
    UPDATE indicator SET unit = 'percent' WHERE unit = 'fraction';
    ALTER TABLE indicator ADD CONSTRAINT indicator_unit_check
        CHECK (unit IN ('percent', 'ratio'));
    """)
