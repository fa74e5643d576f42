"""Usage rollups: kept by ingest in its write statement, equal to the ledger's sums at every day
edge, rebuilt by the command and the data migration, read exactly for windows that start mid-day."""

import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction

from events.drafts import CallDraft, CustomerRef, EventDraft
from events.models import Customer, ModelUsageDay, OrganizationUsageDay, UsageDay, UsageEvent
from events.selectors import revenue_in_window
from events.services import ingest_events
from tests.events.conftest import run_together
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 1, 31, tzinfo=UTC)  # the last day of a month


def draft(customer: str, key: str, at: datetime, *, cost=0, revenue=0, models=(), event_type="chat") -> EventDraft:
    return EventDraft(
        customer=CustomerRef("id", customer, "customer_id"),
        event_type=event_type,
        occurred_at=at,
        idempotency_key=key,
        calls=[CallDraft(model=model, input_tokens=10, output_tokens=5) for model in models],
        cost_microdollars=cost,
        revenue_microdollars=revenue,
    )


def ledger_sums(organization) -> dict:
    """What the rollups must hold, summed straight from the ledger."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*), sum(cost_microdollars), "
            "sum(revenue_microdollars) FROM events_usageevent WHERE organization_id = %s GROUP BY 1, 2, 3",
            [organization.pk],
        )
        return {(c, d, t): (n, int(cost), int(rev)) for c, d, t, n, cost, rev in cursor.fetchall()}


def rollup_rows(organization) -> dict:
    return {
        (row.customer_id, row.day, row.event_type): (row.event_count, int(row.cost_microdollars),
                                                      int(row.revenue_microdollars))
        for row in UsageDay.objects.filter(organization=organization)
    }


def organization_rows(organization) -> dict:
    """Per (day, event type), the sums over the shards (what every read sees)."""
    sums: dict = {}
    for row in OrganizationUsageDay.objects.filter(organization=organization):
        count, cost, revenue = sums.get((row.day, row.event_type), (0, 0, 0))
        sums[(row.day, row.event_type)] = (
            count + row.event_count, cost + int(row.cost_microdollars), revenue + int(row.revenue_microdollars)
        )
    return sums


def model_rows(organization) -> dict:
    return {
        (row.customer_id, row.day, row.model): (row.request_count, int(row.input_tokens), int(row.output_tokens))
        for row in ModelUsageDay.objects.filter(organization=organization)
    }


def edge_batch(prefix: str = "k") -> list[EventDraft]:
    """Events on both sides of midnights (23:59:59.999999 / 00:00 / 00:30) and a month's end."""
    return [
        draft("acme", f"{prefix}1", DAY.replace(hour=23, minute=59, second=59, microsecond=999999), cost=5, revenue=7,
              models=["m-a", "m-b"]),
        draft("acme", f"{prefix}2", DAY + timedelta(days=1), cost=11, models=["m-a"]),
        draft("acme", f"{prefix}3", DAY + timedelta(days=1, minutes=30), cost=13, revenue=2, event_type="embed"),
        draft("globex", f"{prefix}4", DAY - timedelta(minutes=30), cost=17, revenue=19, models=["m-a"]),
        draft("globex", f"{prefix}5", DAY, cost=23),
    ]


def test_ingest_keeps_the_rollups_equal_to_the_ledger_at_day_edges(organization):
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch("second-"))

    expected = ledger_sums(organization)
    assert rollup_rows(organization) == expected
    acme = Customer.objects.get(organization=organization, external_id="acme").pk
    assert expected[(acme, date(2026, 1, 31), "chat")] == (2, 10, 14)  # 23:59:59.999999 stays on the 31st
    assert expected[(acme, date(2026, 2, 1), "chat")] == (2, 22, 0)
    assert organization_rows(organization) == {
        (date(2026, 1, 30), "chat"): (2, 34, 38),
        (date(2026, 1, 31), "chat"): (4, 56, 14),
        (date(2026, 2, 1), "chat"): (2, 22, 0),
        (date(2026, 2, 1), "embed"): (2, 26, 4),
    }
    assert model_rows(organization)[(acme, date(2026, 1, 31), "m-a")] == (2, 20, 10)
    assert model_rows(organization)[(acme, date(2026, 2, 1), "m-a")] == (2, 20, 10)


def test_a_replayed_batch_adds_nothing(organization):
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    before = (rollup_rows(organization), organization_rows(organization), model_rows(organization))

    result = ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())

    assert result.duplicates == 5
    assert (rollup_rows(organization), organization_rows(organization), model_rows(organization)) == before


def test_rollups_are_per_organization(organization, other_client):
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    ingest_events(organization=other_client.organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())

    assert rollup_rows(organization) == ledger_sums(organization)
    assert sum(n for n, _, _ in organization_rows(other_client.organization).values()) == 5


def test_the_rebuild_command_recomputes_lost_rollups_and_is_idempotent(organization):
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    expected = (rollup_rows(organization), organization_rows(organization), model_rows(organization))
    UsageDay.objects.all().delete()
    ModelUsageDay.objects.all().delete()
    OrganizationUsageDay.objects.filter(organization=organization).update(cost_microdollars=0)

    call_command("rebuild_usage_rollups", "--organization", str(organization.pk))
    call_command("rebuild_usage_rollups")

    assert (rollup_rows(organization), organization_rows(organization), model_rows(organization)) == expected


def test_the_rebuild_command_refuses_an_unknown_organization(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not an organization id"):
        call_command("rebuild_usage_rollups", "--organization", "nope")
    with pytest.raises(CommandError, match="no organization"):
        call_command("rebuild_usage_rollups", "--organization", "00000000-0000-4000-8000-000000000000")


def test_the_backfill_migration_fills_the_rollups_from_the_ledger(organization):
    from importlib import import_module

    backfill = import_module("events.migrations.0010_backfill_usage_rollups")
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    expected = (rollup_rows(organization), organization_rows(organization), model_rows(organization))
    with connection.cursor() as cursor:
        cursor.execute(backfill.EMPTY)
    assert not UsageDay.objects.exists()

    with connection.cursor() as cursor:
        cursor.execute(backfill.BACKFILL)

    assert (rollup_rows(organization), organization_rows(organization), model_rows(organization)) == expected


def test_deleting_a_customer_takes_its_usage_out_of_the_organization_rollups(organization):
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())

    Customer.objects.get(organization=organization, external_id="globex").delete()

    assert rollup_rows(organization) == ledger_sums(organization)
    assert organization_rows(organization)[(date(2026, 1, 30), "chat")] == (0, 0, 0)
    assert organization_rows(organization)[(date(2026, 1, 31), "chat")] == (1, 5, 7)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        # whole days only
        (DAY - timedelta(days=1), DAY + timedelta(days=2), 7 + 19 + 2),
        # starts and ends mid-day: the edge days come from the ledger, exactly
        (DAY - timedelta(minutes=29), DAY + timedelta(days=1, minutes=30), 7),
        (DAY - timedelta(minutes=30), DAY + timedelta(days=1, minutes=30, microseconds=1), 19 + 7 + 2),
        # inside one day, and across one midnight without a whole day
        (DAY.replace(hour=23), DAY + timedelta(days=1, hours=1), 7 + 2),
        (DAY.replace(hour=23, minute=59, second=59, microsecond=999999), DAY + timedelta(days=1), 7),
        (DAY + timedelta(days=1), DAY + timedelta(days=1), 0),
    ],
)
def test_revenue_in_a_window_is_exact_at_any_instant(organization, start, end, expected):
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    customers = list(Customer.objects.filter(organization=organization).values_list("pk", flat=True))

    spent = revenue_in_window(organization_id=organization.pk, customer_ids=customers, start=start, end=end)

    assert sum(spent.values()) == expected


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_on_the_same_rows_neither_deadlock_nor_lose_a_sum(organization):
    """Ten threads, each a batch over the same customers and days in a different order."""

    def batch(number: int) -> None:
        items = edge_batch(f"t{number}-")
        items = items[number % 5:] + items[: number % 5]
        ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=items)

    errors = run_together(10, batch)

    assert errors == []
    assert rollup_rows(organization) == ledger_sums(organization)
    assert sum(n for n, _, _ in organization_rows(organization).values()) == 50


def test_the_http_ingest_path_feeds_the_rollups(api_client, organization, price_catalog):
    from tests.events.conftest import md_event

    response = api_client.post("/api/v1/events", {"events": [md_event("acme", key="a"), md_event("acme", key="b")]},
                               format="json")

    assert response.status_code == 200
    (row,) = ModelUsageDay.objects.filter(organization=organization)
    assert (row.model, row.request_count, int(row.cost_microdollars)) == ("openai/gpt-4o", 2, 12_800)
    assert rollup_rows(organization) == ledger_sums(organization)




def test_usage_by_day_and_model_usage_for_the_pages(organization):
    from events.selectors import DayUsage, model_usage, usage_by_day

    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    acme = Customer.objects.get(organization=organization, external_id="acme").pk
    january = (date(2026, 1, 1), date(2026, 2, 1))

    assert usage_by_day(organization_id=organization.pk, start=date(2026, 1, 31), end=date(2026, 2, 2)) == [
        DayUsage(date(2026, 1, 31), 2, 28, 7),
        DayUsage(date(2026, 2, 1), 2, 24, 2),
    ]
    acme_days = usage_by_day(organization_id=organization.pk, start=date(2026, 1, 1), end=date(2026, 3, 1),
                             customer_id=acme)
    assert acme_days == [DayUsage(date(2026, 1, 31), 1, 5, 7), DayUsage(date(2026, 2, 1), 2, 24, 2)]
    by_model = model_usage(organization_id=organization.pk, start=january[0], end=january[1])
    assert [(row.model, row.requests, row.input_tokens, row.output_tokens) for row in by_model] == [
        ("m-a", 2, 20, 10), ("m-b", 1, 10, 5),
    ]
    only_acme = model_usage(organization_id=organization.pk, start=january[0], end=january[1], external_id="acme")
    assert [(row.model, row.requests) for row in only_acme] == [("m-a", 1), ("m-b", 1)]
    assert model_usage(organization_id=organization.pk, start=january[0], end=january[1], external_id="nobody") == []


def test_usage_by_customer_month_buckets_days_at_the_month_edges_and_names_every_customer(organization):
    from events.selectors import UsageAmounts, usage_by_customer_month

    CustomerFactory(organization=organization, external_id="acme", name="Acme Corp")
    CustomerFactory(organization=organization, external_id="idle", name="Idle Ltd")  # no usage in the window
    batch = [
        draft("acme", "e1", datetime(2026, 1, 1, 0, 30, tzinfo=UTC), cost=1, revenue=10),
        draft("acme", "e2", datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), cost=2),
        draft("acme", "e3", datetime(2026, 2, 1, 0, 0, tzinfo=UTC), cost=4, event_type="embed"),
        draft("acme", "e4", datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC), cost=8),
        draft("acme", "e5", datetime(2026, 4, 1, 0, 0, tzinfo=UTC), cost=16),  # after the window
        draft("beta", "e6", datetime(2026, 2, 28, 12, 0, tzinfo=UTC), cost=32, revenue=64),
    ]
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=batch)

    read = usage_by_customer_month(
        organization_id=organization.pk, start=date(2026, 1, 1), end=date(2026, 4, 1),
        external_ids=["acme", "beta", "idle", "nobody"],
    )
    assert read.names == {"acme": "Acme Corp", "beta": "", "idle": "Idle Ltd"}  # "nobody" does not exist
    assert read.amounts == {
        ("acme", date(2026, 1, 1)): UsageAmounts(events=2, cost=3, revenue=10),
        ("acme", date(2026, 2, 1)): UsageAmounts(events=1, cost=4, revenue=0),  # 00:00 on the 1st: February
        ("acme", date(2026, 3, 1)): UsageAmounts(events=1, cost=8, revenue=0),
        ("beta", date(2026, 2, 1)): UsageAmounts(events=1, cost=32, revenue=64),
    }
    # A window that starts inside a month counts its days from the start, under that month.
    late = usage_by_customer_month(
        organization_id=organization.pk, start=date(2026, 1, 31), end=date(2026, 2, 2), external_ids=["acme"]
    )
    assert late.amounts == {
        ("acme", date(2026, 1, 1)): UsageAmounts(events=1, cost=2, revenue=0),
        ("acme", date(2026, 2, 1)): UsageAmounts(events=1, cost=4, revenue=0),
    }
    nothing = usage_by_customer_month(
        organization_id=organization.pk, start=date(2026, 1, 1), end=date(2026, 4, 1), external_ids=[]
    )
    assert (nothing.names, nothing.amounts) == ({}, {})


@pytest.mark.django_db(transaction=True)
def test_two_open_ingests_of_one_organization_do_not_wait_for_each_other(organization):
    """Each connection adds to its own shard of the organization's daily row: a batch of another
    customer (same day, same event type) commits while the first batch's transaction is still open.
    With one row per (organization, day, event type) it waited for that commit."""
    CustomerFactory(organization=organization, external_id="acme")
    CustomerFactory(organization=organization, external_id="globex")
    at = datetime(2026, 3, 10, 12, tzinfo=UTC)

    def shard() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid() %% %s", [OrganizationUsageDay.ORGANIZATION_SHARDS])
            return cursor.fetchone()[0]

    written, release, second_done = threading.Event(), threading.Event(), threading.Event()
    first_shard: list[int] = []
    errors: list = []

    def first() -> None:
        try:
            with transaction.atomic():
                first_shard.append(shard())
                ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL,
                              items=[draft("acme", "first", at, cost=5)])
                written.set()
                release.wait(timeout=30)
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    def second() -> None:
        try:
            while shard() == first_shard[0]:  # another backend, so another shard (as two workers' are)
                connection.close()
            ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL,
                          items=[draft("globex", "second", at, cost=7)])
            second_done.set()
        except Exception as error:
            errors.append(error)
        finally:
            connections.close_all()

    opener = threading.Thread(target=first)
    opener.start()
    assert written.wait(timeout=30)
    follower = threading.Thread(target=second)
    follower.start()
    try:
        assert second_done.wait(timeout=5), "the second ingest waited for the first one's commit"
    finally:
        release.set()
        opener.join(timeout=30)
        follower.join(timeout=30)
    assert not errors, errors
    assert organization_rows(organization)[(date(2026, 3, 10), "chat")] == (2, 12, 0)


def test_the_organization_reads_sum_every_shard(organization):
    """Rows of two ingest connections (shards 0 and 5) for one day: the day's usage is their sum."""
    from events.selectors import usage_by_day

    day = date(2026, 3, 10)
    for shard, (count, cost) in {0: (2, 12), 5: (3, 30)}.items():
        OrganizationUsageDay.objects.create(
            organization=organization, day=day, event_type="chat", shard=shard, event_count=count,
            cost_microdollars=cost, revenue_microdollars=0,
        )

    (usage,) = usage_by_day(organization_id=organization.pk, start=day, end=day + timedelta(days=1))

    assert (usage.day, usage.events, usage.cost) == (day, 5, 42)


def test_customers_with_revenue_follow_the_flag_as_ingest_adds_revenue(organization):
    """A usage day without revenue is not listed; once a later batch adds revenue to the same row,
    its generated `has_revenue` turns true and the customer is listed (the partial index's rows)."""
    from events.selectors import customers_with_revenue

    day = DAY.date()
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL,
                  items=[draft("acme", "a1", DAY, cost=5), draft("globex", "g1", DAY, cost=5, revenue=3)])
    assert customers_with_revenue(organization_id=organization.pk, start=day, end=day + timedelta(days=1)) == {
        "globex"
    }
    assert not UsageDay.objects.get(organization=organization, customer__external_id="acme").has_revenue

    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL,
                  items=[draft("acme", "a2", DAY + timedelta(hours=1), revenue=1)])

    assert UsageDay.objects.get(organization=organization, customer__external_id="acme").has_revenue
    assert customers_with_revenue(organization_id=organization.pk, start=day, end=day + timedelta(days=1)) == {
        "acme", "globex"
    }
    assert customers_with_revenue(organization_id=organization.pk, start=day + timedelta(days=1),
                                  end=day + timedelta(days=2)) == set()


@pytest.mark.parametrize("model", [UsageDay, ModelUsageDay, OrganizationUsageDay])
def test_no_index_of_a_rollup_names_an_amount_that_ingest_adds_to(model):
    """Ingest updates a rollup row with every batch that touches it. An index (or an index's
    predicate) naming a column that changes makes each such update write an entry in every index of
    the table instead of a HOT update in the row's page: only the keys and flags may be indexed."""
    added = {"event_count", "request_count", "cost_microdollars", "revenue_microdollars", "input_tokens",
             "output_tokens", "cached_input_tokens"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indexrelid::regclass::text, a.attname FROM pg_index i "
            "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0 AND NOT a.attisdropped "
            "AND (a.attnum = ANY(i.indkey) OR pg_get_expr(i.indpred, i.indrelid) ~ ('\\m' || a.attname || '\\M')) "
            "WHERE i.indrelid = %s::regclass",
            [model._meta.db_table],
        )
        indexed = cursor.fetchall()
    assert indexed, "the query found no index columns at all"
    assert [(index, column) for index, column in indexed if column in added] == []


# --- the rebuild's slices ---------------------------------------------------------------------------


def test_rebuild_slices_bound_the_events_of_each_slice():
    from events.services.rollups import RebuildSlice, rebuild_slices

    d1, d2, d3, d4 = (date(2026, 1, 30), date(2026, 1, 31), date(2026, 2, 1), date(2026, 2, 2))
    asked = []

    def per_day(customer):
        asked.append(customer)
        return [(d1, 60), (d2, 60), (d3, 200), (d4, 10)]

    slices = rebuild_slices(
        [1, 2, 3, 4, 5, 6, 7, 8], {1: 10, 2: 10, 3: 330, 4: 5, 6: 95, 7: 1, 8: 1}, per_day,
        max_events=100, max_customers=3,
    )

    assert slices == [
        RebuildSlice((1, 2)),
        # the big customer alone, in ranges of days that tile every day; a 200-event day stays whole
        RebuildSlice((3,), None, d2),
        RebuildSlice((3,), d2, d3),
        RebuildSlice((3,), d3, d4),
        RebuildSlice((3,), d4, None),
        RebuildSlice((4, 5, 6)),  # 100 events: at the bound; customer 5 has none (its rows go)
        RebuildSlice((7, 8)),  # three customers at most
    ]
    assert asked == [3]  # days are counted only for a customer over the bound


def test_a_rebuild_in_ranges_of_days_is_exact_and_lets_ingest_in_between(organization):
    """One customer over the bound: its days are rebuilt range by range, each its own transaction
    under the exclusive lock. Rows on days without events (before, between and after them) go; ingest
    between two slices, on days already rebuilt and days still to come, is counted once."""
    from events.services.rollups import usage_rollups_rebuild

    days = [DAY - timedelta(days=3), DAY - timedelta(days=1), DAY, DAY + timedelta(days=2)]
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=[
        draft("acme", f"a{n}-{i}", day + timedelta(hours=i), cost=10 + n, revenue=i, models=["m-a"])
        for n, day in enumerate(days) for i in range(3)
    ] + [draft("globex", "g1", DAY, cost=7, models=["m-b"])])
    acme = Customer.objects.get(organization=organization, external_id="acme")
    UsageDay.objects.filter(customer=acme).update(cost_microdollars=999_999)
    for stale_day in (DAY - timedelta(days=9), DAY - timedelta(days=2), DAY + timedelta(days=30)):
        UsageDay.objects.create(organization=organization, customer=acme, day=stale_day.date(), event_type="chat",
                                event_count=5, cost_microdollars=5)
        ModelUsageDay.objects.create(organization=organization, customer=acme, day=stale_day.date(), model="m-a",
                                     request_count=5)
    seen = []

    def between(part):
        seen.append(part)
        if len(seen) == 2:  # one range rebuilt, the next ones not yet
            ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=[
                draft("acme", "late-1", days[0] + timedelta(hours=5), cost=100, models=["m-a"]),
                draft("acme", "late-2", days[3] + timedelta(hours=5), cost=100, models=["m-a"]),
            ])

    customers = usage_rollups_rebuild(organization_id=organization.pk, max_events=5, after_slice=between)

    assert customers == 2
    assert [(part.customers, part.day_from, part.day_to) for part in seen] == [
        ((acme.pk,), None, days[1].date()),  # three events a day: one day per range
        ((acme.pk,), days[1].date(), days[2].date()),
        ((acme.pk,), days[2].date(), days[3].date()),
        ((acme.pk,), days[3].date(), None),
        ((Customer.objects.get(external_id="globex").pk,), None, None),
    ]
    assert rollup_rows(organization) == ledger_sums(organization)
    assert organization_rows(organization) == {
        (day, event_type): sums for (_, day, event_type), sums in _by_day(ledger_sums(organization)).items()
    }
    assert model_rows(organization)[(acme.pk, days[0].date(), "m-a")] == (4, 40, 20)
    assert (acme.pk, (DAY - timedelta(days=2)).date(), "m-a") not in model_rows(organization)


def _by_day(sums: dict) -> dict:
    """Ledger sums per (customer, day, type) added up per (day, type), keyed as (None, day, type)."""
    totals: dict = {}
    for (_, day, event_type), (count, cost, revenue) in sums.items():
        before = totals.get((None, day, event_type), (0, 0, 0))
        totals[(None, day, event_type)] = (before[0] + count, before[1] + cost, before[2] + revenue)
    return totals


def test_a_rebuild_refreshes_the_planner_statistics_of_the_rollups(organization):
    from django.test.utils import CaptureQueriesContext

    from events.services.rollups import usage_rollups_rebuild

    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    with CaptureQueriesContext(connection) as captured:
        usage_rollups_rebuild(organization_id=organization.pk)

    assert captured.captured_queries[-1]["sql"] == (
        "ANALYZE events_usageday, events_modelusageday, events_organizationusageday"
    )


def test_the_rebuild_command_refreshes_the_statistics_once_after_every_organization(organization, other_client):
    from django.test.utils import CaptureQueriesContext

    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=edge_batch())
    with CaptureQueriesContext(connection) as captured:
        call_command("rebuild_usage_rollups")

    analyzed = [query["sql"] for query in captured.captured_queries if query["sql"].startswith("ANALYZE")]
    assert analyzed == ["ANALYZE events_usageday, events_modelusageday, events_organizationusageday"]
    assert captured.captured_queries[-1]["sql"] == analyzed[0]
