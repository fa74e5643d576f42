"""The ledger's price reference (`VendorResponse.price`, no foreign key constraint since 0006),
guarded like the customer reference: ingest holds the catalog reference lock shared while it stores
calls priced from the catalog (events.locks), and deleting a catalog price row takes it
exclusively, then refuses when a stored call was priced with that row (what the constraint did;
Django's PROTECT check alone races an ingest that is storing such a call)."""

from django.db import migrations

from events.locks import CATALOG_REFERENCE_LOCK

NAMESPACE, KEY = CATALOG_REFERENCE_LOCK

GUARD = f"""
CREATE FUNCTION events_model_price_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({NAMESPACE}, {KEY});
    IF EXISTS (SELECT 1 FROM events_vendorresponse WHERE price_id = OLD.id) THEN
        RAISE EXCEPTION 'price % priced recorded usage', OLD.id
            USING ERRCODE = 'foreign_key_violation', TABLE = 'events_vendorresponse';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER events_model_price_delete_guard BEFORE DELETE ON costcalc_modelprice
    FOR EACH ROW EXECUTE FUNCTION events_model_price_delete_guard();
"""
UNGUARD = """
DROP TRIGGER events_model_price_delete_guard ON costcalc_modelprice;
DROP FUNCTION events_model_price_delete_guard();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0007_customer_reference_guarded_by_the_ledger_lock"),
        ("costcalc", "0004_catalog_version"),
    ]

    operations = [migrations.RunSQL(GUARD, UNGUARD)]
