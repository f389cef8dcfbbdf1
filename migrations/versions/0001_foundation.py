"""Foundation: areas, hamlets, teams, users, refresh tokens, login throttling, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from api.migrate import execute_script

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    execute_script("""
    -- Official administrative areas. Codes were re-used across the 2025 reform, so an area
    -- is identified by (scheme, code) and every fact row refers to the surrogate id.
    CREATE TABLE area (
        id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        scheme        text NOT NULL,
        code          text COLLATE "C" NOT NULL,
        level         text NOT NULL CHECK (level IN ('province', 'ward')),
        division_type text NOT NULL CHECK (division_type IN
                          ('municipality', 'province', 'ward', 'commune', 'special_zone')),
        name          text NOT NULL,
        short_name    text NOT NULL,
        parent_id     integer REFERENCES area (id),
        province_id   integer REFERENCES area (id),  -- itself for a province
        search_key    text NOT NULL,                  -- computed by api.textkeys
        sort_key      text COLLATE "C" NOT NULL,      -- Vietnamese order, bytewise
        UNIQUE (scheme, code),
        CHECK ((level = 'province') = (parent_id IS NULL))
    );
    CREATE INDEX area_children ON area (parent_id, sort_key, code);
    CREATE INDEX area_by_level ON area (level, sort_key, code);

    -- Hamlets / residential groups (thôn, ấp, tổ dân phố), created by ward officials.
    CREATE TABLE hamlet (
        id          uuid PRIMARY KEY,
        ward_id     integer NOT NULL REFERENCES area (id),
        province_id integer NOT NULL REFERENCES area (id),
        name        text NOT NULL,
        search_key  text NOT NULL,
        sort_key    text COLLATE "C" NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (ward_id, search_key)
    );
    CREATE INDEX hamlet_by_ward ON hamlet (ward_id, sort_key, id);

    CREATE TABLE team (
        id          uuid PRIMARY KEY,
        ward_id     integer NOT NULL REFERENCES area (id),
        province_id integer NOT NULL REFERENCES area (id),
        name        text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX team_by_ward ON team (ward_id, created_at, id);

    CREATE TABLE app_user (
        id            uuid PRIMARY KEY,
        phone         text NOT NULL UNIQUE,            -- normalized +84…
        password_hash text NOT NULL,                   -- argon2id
        role          text NOT NULL CHECK (role IN
                          ('admin', 'province_official', 'ward_official', 'team_member', 'resident')),
        area_id       integer REFERENCES area (id),   -- NULL only for admins
        province_id   integer REFERENCES area (id),   -- the area's province, for scope filters
        team_id       uuid REFERENCES team (id),
        household_id  uuid,                           -- residents; FK added with households
        display_name  text,
        disabled      boolean NOT NULL DEFAULT false,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        CHECK ((role = 'admin') = (area_id IS NULL)),
        CHECK (role <> 'team_member' OR team_id IS NOT NULL)
    );
    CREATE INDEX app_user_by_province ON app_user (province_id, created_at, id);
    CREATE INDEX app_user_by_area ON app_user (area_id, created_at, id);
    CREATE INDEX app_user_by_team ON app_user (team_id) WHERE team_id IS NOT NULL;

    -- Refresh tokens are stored as SHA-256 digests; a family is one login's rotation chain.
    CREATE TABLE refresh_token (
        id          uuid PRIMARY KEY,
        family_id   uuid NOT NULL,
        user_id     uuid NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
        token_hash  bytea NOT NULL UNIQUE,
        created_at  timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL,
        used_at     timestamptz,
        revoked_at  timestamptz
    );
    CREATE INDEX refresh_token_family ON refresh_token (family_id);
    CREATE INDEX refresh_token_user ON refresh_token (user_id) WHERE revoked_at IS NULL;

    -- Failed-login counters, per phone and per client address, shared by every API instance.
    CREATE TABLE login_throttle (
        key          text PRIMARY KEY,
        failures     integer NOT NULL,
        window_start timestamptz NOT NULL,
        locked_until timestamptz
    );

    CREATE TABLE audit_log (
        id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at           timestamptz NOT NULL DEFAULT now(),
        actor_id     uuid,
        action       text NOT NULL,
        subject_type text NOT NULL,
        subject_id   text,
        province_id  integer,
        client_addr  text,
        detail       jsonb NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_log_by_subject ON audit_log (subject_type, subject_id, at);
    CREATE INDEX audit_log_by_province ON audit_log (province_id, at);
    """)


def downgrade() -> None:
    execute_script("""
    DROP TABLE audit_log;
    DROP TABLE login_throttle;
    DROP TABLE refresh_token;
    DROP TABLE app_user;
    DROP TABLE team;
    DROP TABLE hamlet;
    DROP TABLE area;
    """)
