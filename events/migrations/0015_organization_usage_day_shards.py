"""The organization's daily rollup rows get a shard: each ingest connection adds to its own.

With one row per (organization, day, event type), two concurrent batches of an organization waited
for each other from their write statement to their commit (the row lock of the upsert). Existing
rows become shard 0; reads already sum."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0002_api_key_scopes'),
        ('events', '0014_ledger_organization_id_index'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='organizationusageday',
            name='organization_usage_day_key',
        ),
        migrations.AddField(
            model_name='organizationusageday',
            name='shard',
            field=models.SmallIntegerField(db_default=0),
        ),
        migrations.AddConstraint(
            model_name='organizationusageday',
            constraint=models.UniqueConstraint(fields=('organization', 'day', 'event_type', 'shard'), name='organization_usage_day_shard_key'),
        ),
    ]
