"""Migration 0012 on a populated ledger: rows land in their months' partitions (or DEFAULT), keys are
copied out, ids continue after the old sequence, and the migration reverses to the unpartitioned
table with its unique constraint."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from events.services.partitions import add_months, month_start
from tests.factories import CustomerFactory, OrganizationFactory

BEFORE = ("events", "0011_ledger_lock_64_bit_keys")
AFTER = ("events", "0013_ledger_partitions_schedule")


def _migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def _migrate_to_latest() -> None:
    """Every app's latest migration: the schema the rest of the suite runs on (migrating back to
    AFTER alone would leave later migrations, of events or of apps depending on it, unapplied)."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _rows(sql, params=()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_migration_0012_partitions_an_existing_ledger_and_reverses():
    organization = OrganizationFactory()
    customer = CustomerFactory(organization=organization)
    now = datetime.now(UTC)
    ahead = add_months(month_start(now.date()), 2)
    instants = {
        "now": now,
        "old": datetime(2023, 5, 10, 8, tzinfo=UTC),
        "ancient": datetime(1990, 1, 1, tzinfo=UTC),  # older than 10 years: left to DEFAULT
        "ahead": datetime(ahead.year, ahead.month, 2, tzinfo=UTC),
    }
    try:
        _migrate(BEFORE)
        for key, instant in instants.items():
            _rows(
                "INSERT INTO events_usageevent (organization_id, customer_id, event_type, occurred_at, received_at, "
                "idempotency_key, source, properties, flow_id, feature_key, cost_microdollars, revenue_microdollars, "
                "unpriced, meta) VALUES (%s, %s, 'x', %s, %s, %s, 'internal', '{}', '', '', 5, 0, false, '{}') "
                "RETURNING id",
                [organization.pk, customer.pk, instant, now, key],
            )
        _rows("SELECT nextval(pg_get_serial_sequence('events_usageevent', 'id'))")  # an id handed out, unused
        (issued,) = _rows("SELECT last_value FROM events_usageevent_id_seq")[0]

        _migrate(AFTER)

        placed = dict(_rows("SELECT idempotency_key, tableoid::regclass::text FROM events_usageevent"))
        assert placed == {
            "now": f"events_usageevent_p{now:%Y_%m}",
            "old": "events_usageevent_p2023_05",
            "ancient": "events_usageevent_default",
            "ahead": f"events_usageevent_p{ahead:%Y_%m}",
        }
        keys = _rows(
            "SELECT k.idempotency_key FROM events_usageeventkey k JOIN events_usageevent e "
            "ON e.id = k.event_id AND e.occurred_at = k.occurred_at AND e.idempotency_key = k.idempotency_key"
        )
        assert sorted(key for (key,) in keys) == sorted(instants)
        (next_id,) = _rows("SELECT nextval(pg_get_serial_sequence('events_usageevent', 'id'))")[0]
        assert next_id == issued + 1  # the sequence went on where the old one stopped
        (primary_key,) = _rows(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'events_usageevent'::regclass "
            "AND contype = 'p'"
        )[0]
        assert primary_key == "PRIMARY KEY (id, occurred_at)"
        months_ahead = [
            f"events_usageevent_p{add_months(month_start(now.date()), count):%Y_%m}" for count in range(4)
        ]
        attached = {name for (name,) in _rows(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'events_usageevent'::regclass"
        )}
        assert set(months_ahead) <= attached

        _migrate(BEFORE)

        assert _rows("SELECT relkind FROM pg_class WHERE relname = 'events_usageevent'") == [("r",)]
        assert sorted(key for (key,) in _rows("SELECT idempotency_key FROM events_usageevent")) == sorted(instants)
        assert _rows(
            "SELECT 1 FROM pg_constraint WHERE conname = 'usage_event_unique_idempotency'"
        ) == [(1,)]
        (after_back,) = _rows("SELECT nextval(pg_get_serial_sequence('events_usageevent', 'id'))")[0]
        assert after_back > next_id
    finally:
        _migrate_to_latest()
    assert _rows("SELECT relkind FROM pg_class WHERE relname = 'events_usageevent'") == [("p",)]
