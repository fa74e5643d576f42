"""Fill the usage rollups of 0009 from the ledger (data only; ingest keeps them from now on).

The SQL is written out here rather than imported, so this migration keeps doing what it did when
the rollup code changes. Reversing empties the rollups."""

from django.db import migrations

BACKFILL = """
INSERT INTO events_usageday (organization_id, customer_id, day, event_type, event_count, cost_microdollars,
    revenue_microdollars)
SELECT organization_id, customer_id, (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*),
    sum(cost_microdollars), sum(revenue_microdollars)
FROM events_usageevent GROUP BY 1, 2, 3, 4;

INSERT INTO events_modelusageday (organization_id, customer_id, day, model, request_count, cost_microdollars,
    input_tokens, output_tokens, cached_input_tokens)
SELECT e.organization_id, e.customer_id, (e.occurred_at AT TIME ZONE 'UTC')::date, c.model, count(*),
    coalesce(sum(c.cost_microdollars), 0), sum(c.input_tokens), sum(c.output_tokens), sum(c.cached_input_tokens)
FROM events_usageevent e JOIN events_vendorresponse c ON c.event_id = e.id
GROUP BY 1, 2, 3, 4;

INSERT INTO events_organizationusageday (organization_id, day, event_type, event_count, cost_microdollars,
    revenue_microdollars)
SELECT organization_id, day, event_type, sum(event_count), sum(cost_microdollars), sum(revenue_microdollars)
FROM events_usageday GROUP BY 1, 2, 3;
"""
EMPTY = """
DELETE FROM events_organizationusageday;
DELETE FROM events_modelusageday;
DELETE FROM events_usageday;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0009_usage_rollups"),
    ]

    operations = [migrations.RunSQL(BACKFILL, EMPTY)]
