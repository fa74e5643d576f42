"""The ledger lock keyed by 64 bits of the organization's UUID instead of a 32-bit hash of it.

`hashtext` gave two organizations the same lock about once in 2^32 pairs (tens of thousands of
organizations make a shared pair likely), so one organization's customer deletion, finalization or
contract creation could wait for another's ingests. The key is now the high half of the UUID XOR its
low half (every one of the 64 bits random for a version-4 UUID), a `bigint` for the one-key form
of `pg_advisory_xact_lock`; `events_ledger_lock_key` computes it in SQL for ingest and the customer
delete guard alike, and `events.locks.ledger_lock_key` in Python."""

from django.db import migrations

KEY_FUNCTION = """
CREATE FUNCTION events_ledger_lock_key(organization uuid) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || substr(h, 1, 16))::bit(64)::bigint # ('x' || substr(h, 17, 16))::bit(64)::bigint
    FROM (SELECT replace(organization::text, '-', '') AS h) AS t
$$;
"""

GUARD_BODY = """
CREATE OR REPLACE FUNCTION events_customer_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Waits for the organization's open ingests (they hold the ledger lock shared); the check
    -- below runs with a snapshot taken after that, so it sees what they stored.
    PERFORM {lock};
    IF EXISTS (SELECT 1 FROM events_usageevent WHERE customer_id = OLD.id) THEN
        RAISE EXCEPTION 'customer % still has usage events', OLD.id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'events_usageevent';
    END IF;
    RETURN OLD;
END
$$;
"""
NEW_GUARD = GUARD_BODY.format(lock="pg_advisory_xact_lock(events_ledger_lock_key(OLD.organization_id))")
OLD_GUARD = GUARD_BODY.format(lock="pg_advisory_xact_lock(1279543122, hashtext(OLD.organization_id::text))")


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0010_backfill_usage_rollups"),
    ]

    operations = [
        migrations.RunSQL(KEY_FUNCTION, "DROP FUNCTION events_ledger_lock_key(uuid);"),
        migrations.RunSQL(NEW_GUARD, OLD_GUARD),
    ]
