"""Invoice.ledger_watermark: the organization's newest event id when the invoice was finalized.

Late usage of an ended contract is then read from that id by the (customer, id) index, instead of
every event of the contract's life filtered on arrival time. Invoices finalized before have none
and keep the arrival-time read (events.selectors.late_event_rows)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0011_stripe_push_requeue_schedule'),
    ]

    operations = [
        migrations.AddField(
            model_name='invoice',
            name='ledger_watermark',
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
    ]
