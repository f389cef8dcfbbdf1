"""Accounts created by someone else are activated by their holder: the creator gets a
one-time activation code, never a password. A pending account has no password hash; the
code is stored as a SHA-256 digest (like refresh tokens and invites) with its expiry and
the moment it was used.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24
"""

from api.migrate import execute_script

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    ALTER TABLE app_user
        ALTER COLUMN password_hash DROP NOT NULL,
        ADD COLUMN activation_hash       bytea UNIQUE,
        ADD COLUMN activation_expires_at timestamptz,
        ADD COLUMN activation_used_at    timestamptz,
        ADD CONSTRAINT app_user_activation_complete
            CHECK ((activation_hash IS NULL) = (activation_expires_at IS NULL)),
        ADD CONSTRAINT app_user_password_or_code
            CHECK (password_hash IS NOT NULL
                   OR (activation_hash IS NOT NULL AND activation_used_at IS NULL));
    """)


def downgrade() -> None:
    # A pending account has no password to go back to: keep the row (others refer to it),
    # disabled, with a hash no password matches.
    execute_script("""
    UPDATE app_user SET password_hash = '!pending', disabled = true
    WHERE password_hash IS NULL;
    ALTER TABLE app_user
        DROP CONSTRAINT app_user_password_or_code,
        DROP CONSTRAINT app_user_activation_complete,
        DROP COLUMN activation_used_at,
        DROP COLUMN activation_expires_at,
        DROP COLUMN activation_hash,
        ALTER COLUMN password_hash SET NOT NULL;
    """)
