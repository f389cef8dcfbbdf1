"""Each province's sums of its wards' perturbed counts, kept by the folder.

A province's published figure is the sum of its wards' perturbed counts (api/stats/sums.py).
Computing it on read meant perturbing every ward of the province at every point of a card:
a province card built after a change ran at a seventh of the speed of one that read its own
counters. The folder now keeps the sums as it folds the log (the same transaction, so the
sums always match the folded counters), and readers add only the wards with unfolded log
rows:

- ``stat_parent_now``: today's sums, one row per province and measure;
- ``stat_parent_month``: the sums as of the end of each month in which one of the
  province's wards changed (a month without a row has the sums of the last month before it
  that has one).

``congdongso migrate`` fills them from the counters (and a rebuild refills them).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

from api.migrate import execute_script

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    CREATE TABLE stat_parent_now (
        province_id integer NOT NULL REFERENCES area (id),
        measure     text NOT NULL,
        numerator   bigint NOT NULL,
        denominator bigint NOT NULL,
        PRIMARY KEY (province_id, measure)
    );
    CREATE TABLE stat_parent_month (
        province_id integer NOT NULL REFERENCES area (id),
        measure     text NOT NULL,
        month       date NOT NULL,
        numerator   bigint NOT NULL,
        denominator bigint NOT NULL,
        PRIMARY KEY (province_id, measure, month)
    );
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE stat_parent_month;
    DROP TABLE stat_parent_now;
    """)
