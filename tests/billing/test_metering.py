"""The ingest hook's hourly rollups give exactly what the reference semantics give on raw events."""

import random
import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from billing import metering, rating, selectors, services
from billing.definitions import metric_definition
from billing.models import UniqueValueRollup, UsageRollup
from tests.billing.conftest import ingest, utc

START = utc(2026, 3, 1)
END = utc(2026, 3, 4)


def random_events(seed: int, count: int):
    rng = random.Random(seed)
    events = []
    for _ in range(count):
        properties = {
            "tokens": rng.choice([rng.randint(0, 5000), rng.randint(0, 100) / 8, str(rng.randint(1, 9)), "n/a"]),
            "user_id": rng.choice(["alice", "bob", "carol", 7, None]),
            "region": rng.choice(["eu", "us"]),
        }
        if rng.random() < 0.2:
            del properties["region"]
        events.append(
            {
                "event_type": rng.choice(["chat", "embed", "image"]),
                "occurred_at": START + timedelta(minutes=rng.randint(0, 3 * 24 * 60 - 1), seconds=rng.randint(0, 59)),
                "properties": properties,
            }
        )
    return events


METRICS = [
    {
        "name": "tokens",
        "aggregation_type": "SUM",
        "aggregation_key": "tokens",
        "group_keys": ["user_id", "region"],
        "event_type_filter": {"not_in_values": ["image"]},
    },
    {
        "name": "calls",
        "aggregation_type": "COUNT",
        "property_filters": [{"name": "region", "exists": True}],
        "group_keys": ["region"],
    },
    {
        "name": "peak",
        "aggregation_type": "MAX",
        "aggregation_key": "tokens",
        "property_filters": [{"name": "region", "in_values": ["eu"]}],
    },
    {"name": "last", "aggregation_type": "LATEST", "aggregation_key": "tokens", "group_keys": ["user_id"]},
    {
        "name": "users",
        "aggregation_type": "UNIQUE",
        "aggregation_key": "user_id",
        "group_keys": ["region"],
        "event_type_filter": {"in_values": ["chat", "embed"]},
    },
]


def compare(customer, metric, presentation, raw_rows):
    product = rating.ProductDefinition(
        id="p",
        name="P",
        type=rating.ProductType.USAGE,
        metric=metric_definition(metric),
        presentation_group_key=tuple(presentation),
    )
    flat = rating.Price(rating.RateType.FLAT, price=Decimal(1))
    rates = [
        rating.RateVersion(START, START + timedelta(hours=17), True, flat),
        rating.RateVersion(
            START + timedelta(hours=17),
            START + timedelta(hours=50),
            True,
            rating.Price(rating.RateType.FLAT, price=Decimal(2)),
        ),
        rating.RateVersion(START + timedelta(hours=50), None, True, flat),
    ]
    plan = rating.segment_plan(START, END, rates)
    from_rollups = selectors.usage_cells(customer_id=customer.pk, product=product, plan=plan)
    reference = rating.aggregate_events(product, plan, raw_rows)
    key = lambda cell: (str(cell.group), cell.segment_index)  # noqa: E731
    assert sorted(from_rollups, key=key) == sorted(reference, key=key)
    assert reference  # the comparison is not vacuous


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_match_reference_aggregation_of_raw_events(organization, customer, seed):
    metrics = [services.billable_metric_create(organization=organization, **spec) for spec in METRICS]
    events = random_events(seed, 400)
    stored = []
    for offset in range(0, len(events), 70):  # several ingest batches hit the same rollup rows
        stored += ingest(organization, customer, events[offset : offset + 70])
    raw = [rating.RawEvent(row.id, row.event_type, row.occurred_at, row.properties) for row in stored]

    for metric in metrics:
        compare(customer, metric, metric.group_keys, raw)
        compare(customer, metric, metric.group_keys[:1], raw)
        compare(customer, metric, [], raw)
    assert UsageRollup.objects.count() < len(events) * 4


def test_a_metric_created_later_is_used_at_once_and_backfilled_on_request(organization, customer):
    early = ingest(organization, customer, random_events(3, 150))
    metric = services.billable_metric_create(organization=organization, **METRICS[0])
    assert not UsageRollup.objects.filter(metric=metric).exists()  # created after the events arrived

    late = ingest(organization, customer, random_events(4, 150))  # the in-process cache saw the new metric
    assert UsageRollup.objects.filter(metric=metric).exists()

    call_command("billing_rebuild_rollups", str(metric.pk), verbosity=0)
    raw = [rating.RawEvent(row.id, row.event_type, row.occurred_at, row.properties) for row in early + late]
    compare(customer, metric, metric.group_keys, raw)


def test_rebuild_is_repeatable_and_covers_unique_values(organization, customer):
    metric = services.billable_metric_create(organization=organization, **METRICS[4])
    ingest(organization, customer, random_events(5, 200))
    before = sorted(UniqueValueRollup.objects.values_list("hour", "value", "group_values"), key=str)

    assert metering.metric_rollups_rebuild(metric=metric) > 0
    metering.metric_rollups_rebuild(metric=metric)

    assert sorted(UniqueValueRollup.objects.values_list("hour", "value", "group_values"), key=str) == before


def test_rollups_roll_back_with_the_ingest_transaction(organization, customer):
    services.billable_metric_create(organization=organization, **METRICS[1])

    with pytest.raises(RuntimeError), transaction.atomic():
        ingest(organization, customer, random_events(6, 20))
        raise RuntimeError("ingest failed after the hook ran")

    assert not UsageRollup.objects.exists()


def test_metric_changes_invalidate_the_cache(organization, customer):
    metric = services.billable_metric_create(organization=organization, **METRICS[1])
    ingest(organization, customer, random_events(7, 10))
    assert metering.metric_cache.for_organization(organization.pk)[0].group_keys == ("region",)

    services.billable_metric_update(metric=metric, group_keys=[])

    assert metering.metric_cache.for_organization(organization.pk)[0].group_keys == ()


def test_usage_history_windows(organization, customer):
    metric = services.billable_metric_create(organization=organization, **METRICS[0])
    ingest(
        organization,
        customer,
        [
            {"event_type": "chat", "occurred_at": START + timedelta(hours=1), "properties": {"tokens": 5}},
            {"event_type": "chat", "occurred_at": START + timedelta(hours=2), "properties": {"tokens": 7}},
            {"event_type": "chat", "occurred_at": START + timedelta(days=1), "properties": {"tokens": 11}},
        ],
    )

    daily = selectors.usage_history(customer_id=customer.pk, metric=metric, start=START, end=END, window_size="day")
    hourly = selectors.usage_history(customer_id=customer.pk, metric=metric, start=START, end=END, window_size="hour")

    assert daily == [(START, Decimal(12)), (START + timedelta(days=1), Decimal(11))]
    assert [value for _, value in hourly] == [Decimal(5), Decimal(7), Decimal(11)]


@pytest.mark.django_db(transaction=True)
def test_an_ingest_that_waited_for_the_billing_lock_uses_the_metrics_committed_meanwhile(
    organization, customer, monkeypatch
):
    """The shared lock and the metric fingerprint go in one round trip: the fingerprint must still be
    read after the lock is granted (a rebuild or finalization holding it exclusively has committed)."""
    # No rebuild of the new metric: it would count the 3 earlier events and hide what this checks.
    monkeypatch.setattr(services, "rollup_rebuild_queue", lambda *, metric: None)
    ingest(organization, customer, random_events(8, 3))  # this process now caches "no metrics"
    created = threading.Event()

    def create_a_metric_under_the_exclusive_lock():
        try:
            with transaction.atomic():
                metering.lock_organization_exclusive(organization.pk)
                services.billable_metric_create(organization=organization, name="all", aggregation_type="COUNT")
                created.set()
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:  # commit once the ingest waits on the lock
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                        if cursor.fetchone()[0]:
                            break
                    time.sleep(0.02)
        finally:
            connections.close_all()

    thread = threading.Thread(target=create_a_metric_under_the_exclusive_lock)
    thread.start()
    assert created.wait(timeout=30)
    ingest(organization, customer, random_events(9, 5))
    thread.join(timeout=60)

    assert sum(UsageRollup.objects.values_list("event_count", flat=True)) == 5
