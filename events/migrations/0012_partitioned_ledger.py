"""The ledger range-partitioned by month on `occurred_at`, its dedupe moved to its own table.

PostgreSQL requires every unique constraint of a partitioned table to include the partition key, so
(organization, idempotency_key) moves to `events_usageeventkey` (primary key (organization_id,
idempotency_key), with the event's id and occurred_at), which ingest writes in the statement that
inserts the events. The ledger's primary key becomes (id, occurred_at) in the database; Django's
state keeps `id` as the primary key, and ids still come from one sequence, so they stay unique.

The conversion of a populated ledger, in one transaction holding the table exclusively: a
partitioned copy of the table is created (same columns in the same order, its NOT NULL and CHECK
constraints), swapped in by name, given a partition per month that has data (in [now - 10 years,
now + 3 months]; rows outside go to the DEFAULT partition, which catches anything no month takes),
the current month and the 3 next ones, then filled from the old table; the keys are copied out of
it, the old table dropped, the indexes recreated on the partitioned table (PostgreSQL builds them on
every partition), and the id sequence carried over (never below what the old one had handed out,
so no id is issued twice). No trigger lives on the ledger and no foreign key points at it (the
customer and catalog guards of 0007/0008/0011 read it by name; `VendorResponse.event` has no
constraint since 0006).

`events_ledger_month_ensure(month)` is installed here for events.services.partitions: it creates
one month's partition and moves that month's rows out of the DEFAULT partition first, where
PostgreSQL would otherwise refuse the partition.

Reversible: backwards, an unpartitioned table gets every row still attached (a detached month's
rows are not in the ledger any more and stay in their own table) and the unique constraint back.
"""

from django.db import migrations, models

MONTHS_AHEAD = 3  # settings.LEDGER_PARTITION_MONTHS_AHEAD's default; the beat task keeps it up

ENSURE_FUNCTION = """
CREATE FUNCTION events_ledger_month_ensure(month date) RETURNS bigint LANGUAGE plpgsql AS $$
-- The partition of the ledger for the UTC month holding `month`, created unless a table of its name
-- exists (attached, or detached and kept for archiving: never recreated). Returns how many rows
-- were moved into it from the DEFAULT partition, or NULL when it existed.
DECLARE
    first_day date := date_trunc('month', month)::date;
    lower_bound timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    upper_bound timestamptz := (first_day + interval '1 month')::timestamp AT TIME ZONE 'UTC';
    partition_name text := 'events_usageevent_p' || to_char(first_day, 'YYYY_MM');
    moved bigint;
BEGIN
    -- One ensure at a time (two beat runs, a command): the second then finds the table made.
    PERFORM pg_advisory_xact_lock(hashtext('events_ledger_month_ensure'));
    IF to_regclass(partition_name) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- Held to commit: no ingest adds a row of this month to the DEFAULT partition between the move
    -- and the attach (which would make the attach fail); readers of it wait for this short step.
    LOCK TABLE events_usageevent_default IN ACCESS EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I (LIKE events_usageevent INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
        partition_name);
    -- The bounds as a constraint, so the attach need not scan the table to check them.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
        partition_name, partition_name || '_bounds', lower_bound, upper_bound);
    EXECUTE format('WITH moved AS (DELETE FROM events_usageevent_default WHERE occurred_at >= $1 '
        'AND occurred_at < $2 RETURNING *) INSERT INTO %I SELECT * FROM moved', partition_name)
        USING lower_bound, upper_bound;
    GET DIAGNOSTICS moved = ROW_COUNT;
    -- Builds the partition's indexes (the parent's) and checks the DEFAULT partition holds no row of it.
    EXECUTE format('ALTER TABLE events_usageevent ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
        partition_name, lower_bound, upper_bound);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', partition_name, partition_name || '_bounds');
    RETURN moved;
END
$$;
"""

INDEXES = """
ALTER TABLE events_usageevent ADD CONSTRAINT events_usageevent_pkey PRIMARY KEY (id, occurred_at);
CREATE INDEX usage_event_customer_time ON events_usageevent (organization_id, customer_id, occurred_at);
CREATE INDEX usage_event_org_time ON events_usageevent (organization_id, occurred_at);
CREATE INDEX usage_event_type_time ON events_usageevent (organization_id, event_type, occurred_at);
CREATE INDEX usage_event_customer_id ON events_usageevent (customer_id, id);
"""

PARTITION = f"""
LOCK TABLE events_usageevent IN ACCESS EXCLUSIVE MODE;

-- Ids: a plain sequence owned by the new table, never behind the old identity's.
CREATE SEQUENCE events_usageevent_ledger_id_seq AS bigint;
SELECT setval('events_usageevent_ledger_id_seq', greatest(issued, 1), issued > 0)
FROM (SELECT greatest((SELECT coalesce(max(id), 0) FROM events_usageevent),
                      (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_usageevent_id_seq))
      AS issued) AS t;

CREATE TABLE events_usageevent_partitioned (LIKE events_usageevent INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (occurred_at);
ALTER TABLE events_usageevent_partitioned
    ALTER id SET DEFAULT nextval('events_usageevent_ledger_id_seq');
ALTER TABLE events_usageevent RENAME TO events_usageevent_unpartitioned;
ALTER TABLE events_usageevent_partitioned RENAME TO events_usageevent;
ALTER SEQUENCE events_usageevent_ledger_id_seq OWNED BY events_usageevent.id;
CREATE TABLE events_usageevent_default PARTITION OF events_usageevent DEFAULT;
{ENSURE_FUNCTION}
-- Empty partitions first (the months with data in a sane range, now and the next ones), then the rows.
SELECT events_ledger_month_ensure(month) FROM (
    SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date AS month
    FROM events_usageevent_unpartitioned
    WHERE occurred_at >= now() - interval '10 years' AND occurred_at < now() + interval '{MONTHS_AHEAD + 1} months'
    UNION
    SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') + ahead * interval '1 month')::date
    FROM generate_series(0, {MONTHS_AHEAD}) AS ahead
    ORDER BY 1
) AS months;
INSERT INTO events_usageevent SELECT * FROM events_usageevent_unpartitioned;
INSERT INTO events_usageeventkey (organization_id, idempotency_key, event_id, occurred_at)
SELECT organization_id, idempotency_key, id, occurred_at FROM events_usageevent_unpartitioned;
DROP TABLE events_usageevent_unpartitioned;
ALTER SEQUENCE events_usageevent_ledger_id_seq RENAME TO events_usageevent_id_seq;
-- Indexes last (their names were the old table's; built once over the copied rows).
{INDEXES}ANALYZE events_usageevent;
ANALYZE events_usageeventkey;
"""

UNPARTITION = """
LOCK TABLE events_usageevent IN ACCESS EXCLUSIVE MODE;
DROP FUNCTION events_ledger_month_ensure(date);
CREATE TABLE events_usageevent_unpartitioned (LIKE events_usageevent INCLUDING CONSTRAINTS);
INSERT INTO events_usageevent_unpartitioned SELECT * FROM events_usageevent;
ALTER SEQUENCE events_usageevent_id_seq OWNED BY NONE;
DROP TABLE events_usageevent;
ALTER TABLE events_usageevent_unpartitioned RENAME TO events_usageevent;
ALTER TABLE events_usageevent ALTER id SET DEFAULT nextval('events_usageevent_id_seq');
ALTER SEQUENCE events_usageevent_id_seq OWNED BY events_usageevent.id;
ALTER TABLE events_usageevent ADD CONSTRAINT events_usageevent_pkey PRIMARY KEY (id);
CREATE INDEX usage_event_customer_time ON events_usageevent (organization_id, customer_id, occurred_at);
CREATE INDEX usage_event_org_time ON events_usageevent (organization_id, occurred_at);
CREATE INDEX usage_event_type_time ON events_usageevent (organization_id, event_type, occurred_at);
CREATE INDEX usage_event_customer_id ON events_usageevent (customer_id, id);
ALTER TABLE events_usageevent ADD CONSTRAINT usage_event_unique_idempotency UNIQUE (organization_id, idempotency_key);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("events", "0011_ledger_lock_64_bit_keys"),
    ]

    operations = [
        migrations.CreateModel(
            name="LedgerMonth",
            fields=[
                ("month", models.DateField(help_text="First day of the month (UTC)", primary_key=True, serialize=False)),
                ("table_name", models.CharField(help_text="The detached table, kept for archiving", max_length=63)),
                ("event_count", models.BigIntegerField(default=0)),
                ("detached_at", models.DateTimeField()),
            ],
            options={
                "verbose_name": "detached ledger month",
                "ordering": ["month"],
            },
        ),
        migrations.CreateModel(
            name="UsageEventKey",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "organization_id", "idempotency_key", blank=True, editable=False, primary_key=True,
                        serialize=False,
                    ),
                ),
                ("organization_id", models.UUIDField()),
                ("idempotency_key", models.CharField(max_length=255)),
                ("event_id", models.BigIntegerField()),
                ("occurred_at", models.DateTimeField()),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name="usageevent", name="usage_event_unique_idempotency"),
            ],
            database_operations=[migrations.RunSQL(PARTITION, UNPARTITION)],
        ),
    ]
