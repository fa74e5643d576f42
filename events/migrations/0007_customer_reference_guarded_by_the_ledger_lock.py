"""The ledger's customer reference without a foreign key constraint, guarded instead.

A foreign key check per ingested event locks the customer's row; instead, ingest holds the
organization's ledger lock shared (events.locks) and a customer's deletion takes it exclusively:
in Django through a pre_delete receiver, and for any DELETE at all through the trigger below,
which then refuses to delete a customer that still has usage events (what the constraint did).
"""

import django.db.models.deletion
from django.db import migrations, models

from events.locks import LEDGER_LOCK_NAMESPACE

GUARD = f"""
CREATE FUNCTION events_customer_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Waits for the organization's open ingests (they hold the ledger lock shared); the check
    -- below runs with a snapshot taken after that, so it sees what they stored.
    PERFORM pg_advisory_xact_lock({LEDGER_LOCK_NAMESPACE}, hashtext(OLD.organization_id::text));
    IF EXISTS (SELECT 1 FROM events_usageevent WHERE customer_id = OLD.id) THEN
        RAISE EXCEPTION 'customer % still has usage events', OLD.id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'events_usageevent';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER events_customer_delete_guard BEFORE DELETE ON events_customer
    FOR EACH ROW EXECUTE FUNCTION events_customer_delete_guard();
"""
UNGUARD = """
DROP TRIGGER events_customer_delete_guard ON events_customer;
DROP FUNCTION events_customer_delete_guard();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0006_ledger_references_without_row_triggers"),
    ]

    operations = [
        migrations.AlterField(
            model_name="usageevent",
            name="customer",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="usage_events",
                to="events.customer",
            ),
        ),
        migrations.RunSQL(GUARD, UNGUARD),
    ]
