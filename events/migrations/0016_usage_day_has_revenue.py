"""The partial index of usage-day rows with revenue filters on a stored generated flag instead of the
amount, so that ingest's updates of those rows can be HOT (events.models.UsageDay.has_revenue).

Adding a stored generated column rewrites events_usageday under an exclusive lock: a rollup table
(a row per customer, day and event type), not the ledger, but ingest waits for it meanwhile.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_api_key_scopes'),
        ('events', '0015_organization_usage_day_shards'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='usageday',
            name='usage_day_org_day_revenue',
        ),
        migrations.AddField(
            model_name='usageday',
            name='has_revenue',
            field=models.GeneratedField(db_persist=True, expression=models.Q(('revenue_microdollars__gt', 0)), output_field=models.BooleanField()),
        ),
        migrations.AddIndex(
            model_name='usageday',
            index=models.Index(condition=models.Q(('has_revenue', True)), fields=['organization', 'day'], name='usage_day_org_day_revenue'),
        ),
    ]
