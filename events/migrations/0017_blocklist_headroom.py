"""The blocklist state keeps the last evaluation's headroom and month spend (events.budgeting.budget_headroom)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('events', '0016_usage_day_has_revenue'),
    ]

    operations = [
        migrations.AddField(
            model_name='blockliststate',
            name='headroom_microdollars',
            field=models.DecimalField(blank=True, decimal_places=0, max_digits=39, null=True),
        ),
        migrations.AddField(
            model_name='blockliststate',
            name='month_spend_microdollars',
            field=models.DecimalField(blank=True, decimal_places=0, max_digits=39, null=True),
        ),
    ]
