"""A catalog version kept by triggers, so checking a process's price snapshot is one row lookup
(it was counts and maxima over both price tables, planned and run on every ingest batch)."""

from django.db import migrations, models

BUMP = """
CREATE SEQUENCE costcalc_catalog_version_seq;
CREATE FUNCTION costcalc_bump_catalog_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO costcalc_catalogversion (id, version) VALUES (1, nextval('costcalc_catalog_version_seq'))
    ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
    RETURN NULL;
END $$;
CREATE TRIGGER costcalc_modelprice_bumps_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON costcalc_modelprice
    FOR EACH STATEMENT EXECUTE FUNCTION costcalc_bump_catalog_version();
CREATE TRIGGER costcalc_override_bumps_catalog_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON costcalc_organizationpriceoverride
    FOR EACH STATEMENT EXECUTE FUNCTION costcalc_bump_catalog_version();
INSERT INTO costcalc_catalogversion (id, version) VALUES (1, nextval('costcalc_catalog_version_seq'));
"""

DROP = """
DROP TRIGGER costcalc_override_bumps_catalog_version ON costcalc_organizationpriceoverride;
DROP TRIGGER costcalc_modelprice_bumps_catalog_version ON costcalc_modelprice;
DROP FUNCTION costcalc_bump_catalog_version();
DROP SEQUENCE costcalc_catalog_version_seq;
"""


class Migration(migrations.Migration):
    dependencies = [("costcalc", "0003_daily_price_refresh_schedule")]

    operations = [
        migrations.CreateModel(
            name="CatalogVersion",
            fields=[
                ("id", models.SmallIntegerField(default=1, editable=False, primary_key=True, serialize=False)),
                ("version", models.BigIntegerField()),
            ],
        ),
        migrations.RunSQL(BUMP, DROP),
    ]
