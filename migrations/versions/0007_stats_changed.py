"""Tell the API's processes which provinces' statistics changed, so each can keep rendered
cards until then (api/cardcache.py): every write to the counters, the learning counters,
the targets or the published modules notifies ``stats_changed`` with the ids of the
provinces it touched, comma-separated, or an empty payload for everything.

Statement triggers with transition tables: one notification per statement, not per row.
PostgreSQL delivers notifications at commit, and only of committed transactions, and sends
one notification per distinct payload per transaction.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from api.migrate import execute_script

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTED = {"stat_current": "area_id", "stat_delta": "area_id", "ward_learning": "ward_id"}


def upgrade() -> None:
    script = [
        """
    CREATE FUNCTION stats_changed_everywhere() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('stats_changed', '');
        RETURN NULL;
    END $$;

    -- A target applies to its area and the areas below it.
    CREATE FUNCTION target_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        changed_area int := CASE TG_OP WHEN 'DELETE' THEN OLD.area_id ELSE NEW.area_id END;
    BEGIN
        PERFORM pg_notify('stats_changed', coalesce(
            (SELECT province_id::text FROM area WHERE id = changed_area), ''));
        IF TG_OP = 'UPDATE' AND OLD.area_id IS DISTINCT FROM NEW.area_id THEN
            PERFORM pg_notify('stats_changed', coalesce(
                (SELECT province_id::text FROM area WHERE id = OLD.area_id), ''));
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER target_changed AFTER INSERT OR UPDATE OR DELETE ON target
        FOR EACH ROW EXECUTE FUNCTION target_changed();

    -- Publishing a module adds a row to every card's learning section.
    CREATE TRIGGER learning_module_changed AFTER INSERT OR UPDATE OR DELETE ON learning_module
        FOR EACH STATEMENT EXECUTE FUNCTION stats_changed_everywhere();
    """
    ]
    for table, column in COUNTED.items():
        # Sorted ids: the same provinces give the same payload, sent once per transaction.
        script.append(f"""
        CREATE FUNCTION {table}_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            provinces text;
        BEGIN
            SELECT string_agg(DISTINCT a.province_id::text, ',' ORDER BY a.province_id::text)
            INTO provinces
            FROM changed c JOIN area a ON a.id = c.{column};
            IF provinces IS NOT NULL THEN
                PERFORM pg_notify('stats_changed', provinces);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER {table}_inserted AFTER INSERT ON {table}
            REFERENCING NEW TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {table}_changed();
        CREATE TRIGGER {table}_updated AFTER UPDATE ON {table}
            REFERENCING NEW TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {table}_changed();
        CREATE TRIGGER {table}_deleted AFTER DELETE ON {table}
            REFERENCING OLD TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION {table}_changed();
        CREATE TRIGGER {table}_truncated AFTER TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION stats_changed_everywhere();
        """)
    execute_script("\n".join(script))


def downgrade() -> None:
    script = []
    for table in COUNTED:
        script.append(f"""
        DROP TRIGGER {table}_truncated ON {table};
        DROP TRIGGER {table}_deleted ON {table};
        DROP TRIGGER {table}_updated ON {table};
        DROP TRIGGER {table}_inserted ON {table};
        DROP FUNCTION {table}_changed();
        """)
    script.append("""
    DROP TRIGGER learning_module_changed ON learning_module;
    DROP TRIGGER target_changed ON target;
    DROP FUNCTION target_changed();
    DROP FUNCTION stats_changed_everywhere();
    """)
    execute_script("\n".join(script))
