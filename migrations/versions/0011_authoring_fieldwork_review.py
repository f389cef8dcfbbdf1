"""Surveys authored by provinces, closed surveys, and one submission chain per survey.

``survey.province_id``: NULL for a national survey (authored by admins), else the province
whose officials author it; its wards see it in pull, other provinces never do.
``survey.closed_at``/``closed_by``: a closed survey takes no new submissions; its data stays.
``survey.household_state``: the survey whose answers are a household's state (the built-in
``household_digital``): its submissions move ``household.current_submission_id`` and the
statistics. Any other survey (a province's campaign) keeps its own chain of submissions per
household in ``survey_head``, so a campaign visit never replaces the household's state.

``team_assignment``: a ward official gives a team member a hamlet or a single household.
``submission_review``: a ward official's decision on a submission (``approved`` or
``needs_fix`` with a comment); a submission without one is pending review.
``period_close``: a ward's closed month, with its counters as of the month's end (measure →
[numerator, denominator, numerator key, denominator key]); the ward's cards for that month
read these instead of the live counters.
``outbox``: events written in the same transaction as what they report; ``webhook``: where
they go (an administrator's: national, or one province; a province official's: their
province), with its position in the outbox and its retry state; ``webhook_delivery``: every
attempt (the delivery log).

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

    CREATE TABLE team_assignment (
        team_id      uuid NOT NULL REFERENCES team (id) ON DELETE CASCADE,
        member_id    uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
        ward_id      integer NOT NULL REFERENCES area (id),
        hamlet_id    uuid REFERENCES hamlet (id) ON DELETE CASCADE,
        household_id uuid REFERENCES household (id) ON DELETE CASCADE,
        assigned_by  uuid REFERENCES app_user (id) ON DELETE SET NULL,
        assigned_at  timestamptz NOT NULL DEFAULT now(),
        CHECK ((hamlet_id IS NULL) <> (household_id IS NULL))
    );
    -- Within a team, a hamlet or a household has one member.
    CREATE UNIQUE INDEX team_assignment_hamlet ON team_assignment (team_id, hamlet_id)
        WHERE hamlet_id IS NOT NULL;
    CREATE UNIQUE INDEX team_assignment_household ON team_assignment (team_id, household_id)
        WHERE household_id IS NOT NULL;
    CREATE INDEX team_assignment_by_member ON team_assignment (member_id);

    CREATE TABLE submission_review (
        submission_id uuid PRIMARY KEY REFERENCES submission (id) ON DELETE CASCADE,
        ward_id       integer NOT NULL,
        status        text NOT NULL CHECK (status IN ('approved', 'needs_fix')),
        comment       text,
        reviewed_by   uuid REFERENCES app_user (id) ON DELETE SET NULL,
        reviewed_at   timestamptz NOT NULL DEFAULT now()
    );

    CREATE INDEX submission_review_to_fix ON submission_review (ward_id)
        WHERE status = 'needs_fix';

    CREATE TABLE period_close (
        ward_id     integer NOT NULL REFERENCES area (id),
        province_id integer NOT NULL REFERENCES area (id),
        month       date NOT NULL,              -- its first day
        cells       jsonb NOT NULL,
        closed_by   uuid REFERENCES app_user (id) ON DELETE SET NULL,
        closed_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (ward_id, month)
    );

    CREATE TABLE outbox (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id     uuid NOT NULL UNIQUE,
        type         text NOT NULL,
        province_id  integer,               -- NULL: national (a national target)
        household_id uuid,
        occurred_at  timestamptz NOT NULL DEFAULT now(),
        body         jsonb NOT NULL,        -- never answers
        -- A submission event's submission: its answers are read from it when sent to a
        -- webhook registered for answers (submissions never change).
        submission_id uuid,
        change_xid   xid8 NOT NULL DEFAULT pg_current_xact_id()
    );
    CREATE INDEX outbox_order ON outbox (change_xid, id);

    CREATE TABLE webhook (
        id              uuid PRIMARY KEY,
        url             text NOT NULL,
        secret          text NOT NULL,      -- signs the bodies (HMAC-SHA256)
        province_id     integer REFERENCES area (id),  -- NULL: every province's events
        include_answers boolean NOT NULL DEFAULT false,
        created_by      uuid REFERENCES app_user (id) ON DELETE SET NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        -- Delivered up to here, in (change_xid, id) order.
        after_xid       xid8 NOT NULL DEFAULT '0',
        after_id        bigint NOT NULL DEFAULT 0,
        attempts        integer NOT NULL DEFAULT 0,   -- of the next event, so far
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        failing_since   timestamptz,
        paused_at       timestamptz
    );

    CREATE TABLE webhook_delivery (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        webhook_id   uuid NOT NULL REFERENCES webhook (id) ON DELETE CASCADE,
        outbox_id    bigint NOT NULL,
        event_id     uuid NOT NULL,
        attempt      integer NOT NULL,
        manual       boolean NOT NULL DEFAULT false,
        status_code  integer,
        error        text,
        delivered    boolean NOT NULL,
        duration_ms  integer NOT NULL,
        attempted_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX webhook_delivery_log ON webhook_delivery (webhook_id, id);

    -- A team's progress reads its ward's submissions of a month.
    CREATE INDEX submission_by_ward_time ON submission (ward_id, collected_at);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE webhook_delivery;
    DROP TABLE webhook;
    DROP TABLE outbox;
    DROP TABLE period_close;
    DROP INDEX submission_by_ward_time;
    DROP TABLE submission_review;
    DROP TABLE team_assignment;
    DROP TABLE survey_head;
    DROP INDEX survey_by_province;
    ALTER TABLE survey
        DROP COLUMN closed_by,
        DROP COLUMN closed_at,
        DROP COLUMN household_state,
        DROP COLUMN province_id;
    """)
