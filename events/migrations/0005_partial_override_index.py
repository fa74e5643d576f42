"""Index vendor responses by price override only where one is set: nearly every call is priced from
the catalog, and each of them added a null entry to that index on the hot insert path."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0001_initial'),
        ('costcalc', '0004_catalog_version'),
        ('events', '0004_drop_fk_indexes_covered_by_composites'),
    ]

    operations = [
        migrations.AlterField(
            model_name='vendorresponse',
            name='price_override',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='costcalc.organizationpriceoverride'),
        ),
        migrations.AddIndex(
            model_name='vendorresponse',
            index=models.Index(condition=models.Q(('price_override__isnull', False)), fields=['price_override'], name='vendor_response_override'),
        ),
    ]
