"""An (organization, id) index on the ledger, for the reads keyed by id within one organization: a
billing rollup rebuild's chunks (`metered_event_rows`: id > last ORDER BY id LIMIT n), its watermark
(`latest_event_id`) and its total (`event_count`).

On the partitioned ledger (0012) such a chunk merges one id-ordered scan per month partition, and each
scan must find its first row of the organization before the merge returns anything. Through the
primary key (id, occurred_at) a month with no more rows of the organization is read to its end,
skipping every other organization's rows, once per chunk. With this index each partition's scan
starts and stops within the organization's own rows. It costs ingest one more index entry per event.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("events", "0013_ledger_partitions_schedule")]

    operations = [
        migrations.AddIndex(
            model_name="usageevent",
            index=models.Index(fields=["organization", "id"], name="usage_event_org_id"),
        ),
    ]
