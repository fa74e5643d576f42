"""The dashboard's usage sums (`usage_summary`: by day, model and customer; `customer_cost`: a
budget's spend on the customer page) read the daily rollups: for whole UTC days they issue no query
on the ledger and answer what the ledger's own sums answered before (the reference below is the
former ledger implementation, kept here as the oracle); a window that starts or ends inside a day is
exact all the same (its edge days from the ledger)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.test.utils import CaptureQueriesContext

from events.drafts import CallDraft, CustomerRef, EventDraft
from events.models import Customer, UsageEvent, VendorResponse
from events.selectors import UsageSummary, UsageTotals, customer_cost, usage_summary
from events.services import ingest_events
from tests.factories import CustomerFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 1, 31, tzinfo=UTC)  # the last day of a month
LEDGER_TABLES = ("events_usageevent", "events_vendorresponse")


def ledger_queries(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if any(t in query["sql"] for t in LEDGER_TABLES)]


def ledger_summary(organization, start: datetime, end: datetime, customer_limit=None) -> UsageSummary:
    """What usage_summary answered when it summed the ledger (its former code; the customer limit
    applied to its list)."""
    events = UsageEvent.objects.filter(organization=organization, occurred_at__gte=start, occurred_at__lt=end)
    sums = {
        "cost": Coalesce(Sum("cost_microdollars"), 0),
        "revenue": Coalesce(Sum("revenue_microdollars"), 0),
        "requests": Count("id"),
    }
    by_day = {
        row["day"]: row
        for row in events.annotate(day=TruncDate("occurred_at", tzinfo=UTC)).values("day").annotate(**sums)
    }
    days = []
    day = start.astimezone(UTC).date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < end:
        row = by_day.get(day, {"cost": 0, "revenue": 0, "requests": 0})
        days.append(UsageTotals(day.isoformat(), row["cost"], row["revenue"], row["requests"]))
        day += timedelta(days=1)
    models = [
        UsageTotals(row["model"], row["cost"], 0, row["requests"], row["input_tokens"], row["output_tokens"])
        for row in VendorResponse.objects.filter(
            organization=organization, event__occurred_at__gte=start, event__occurred_at__lt=end
        )
        .values("model")
        .annotate(
            cost=Coalesce(Sum("cost_microdollars"), 0),
            requests=Count("id"),
            input_tokens=Coalesce(Sum("input_tokens"), 0),
            output_tokens=Coalesce(Sum("output_tokens"), 0),
        )
        .order_by("-cost", "model")
    ]
    customers = [
        UsageTotals(row["customer__external_id"], row["cost"], row["revenue"], row["requests"],
                    name=row["customer__name"])
        for row in events.values("customer__external_id", "customer__name")
        .annotate(**sums)
        .order_by("-cost", "customer__external_id")
    ]
    if customer_limit is None:
        return UsageSummary(days, models, customers)
    return UsageSummary(days, models, customers[:customer_limit], max(0, len(customers) - customer_limit))


def ledger_cost(organization, customer, start: datetime, end: datetime) -> int:
    """What customer_cost answered when it summed the ledger."""
    return UsageEvent.objects.filter(
        organization=organization, customer=customer, occurred_at__gte=start, occurred_at__lt=end
    ).aggregate(total=Sum("cost_microdollars"))["total"] or 0


def event(customer: str, key: str, at: datetime, *, calls=(), cost=None, revenue=0, event_type="chat") -> EventDraft:
    return EventDraft(
        customer=CustomerRef("id", customer, "customer_id"),
        event_type=event_type,
        occurred_at=at,
        idempotency_key=key,
        calls=[CallDraft(model=model, input_tokens=inp, output_tokens=out) for model, inp, out in calls],
        cost_microdollars=cost,
        revenue_microdollars=revenue,
    )


@pytest.fixture
def usage(organization, price_catalog, accept_unpriced):
    """Three customers over four days, with events on both sides of midnights: priced calls, an
    unpriced call (no cost; its event unpriced), an unpriced call on an event whose cost the client
    gave, an event without calls, two event types, and a fourth customer without any usage."""
    CustomerFactory(organization=organization, external_id="acme", name="Acme")
    CustomerFactory(organization=organization, external_id="globex", name="Globex")
    CustomerFactory(organization=organization, external_id="idle", name="Idle")  # no usage
    items = [
        event("acme", "a1", DAY - timedelta(days=1, hours=3), calls=[("openai/gpt-4o", 1200, 340)], revenue=9_000),
        event("acme", "a2", DAY - timedelta(microseconds=1), calls=[("openai/gpt-4o", 100, 10),
                                                                    ("anthropic/claude-3.5-sonnet", 50, 20)]),
        event("acme", "a3", DAY, calls=[("mystery/model-x", 500, 50)]),  # unpriced
        event("acme", "a4", DAY + timedelta(hours=12), calls=[("mystery/model-x", 10, 1)], cost=777, revenue=1_000),
        event("acme", "a5", DAY + timedelta(days=1, minutes=30), cost=4_000, revenue=5_000, event_type="embed"),
        event("globex", "g1", DAY - timedelta(minutes=30), calls=[("anthropic/claude-3.5-sonnet", 2000, 500)],
              revenue=20_000),
        event("globex", "g2", DAY + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
              calls=[("openai/gpt-4o", 300, 30)]),
        event("globex", "g3", DAY + timedelta(days=2), calls=[("openai/gpt-4o", 300, 30)], revenue=3),
        event("initech", "i1", DAY + timedelta(days=1), cost=0, revenue=0),  # created by ingest, zero amounts
    ]
    result = ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=items)
    assert [outcome.status for outcome in result.outcomes] == ["created"] * len(items)
    assert VendorResponse.objects.filter(organization=organization, cost_microdollars__isnull=True).count() == 2
    return organization


WHOLE_DAYS = [
    (DAY - timedelta(days=2), DAY + timedelta(days=3)),  # everything
    (DAY, DAY + timedelta(days=1)),  # one day
    (DAY - timedelta(days=1), DAY + timedelta(days=2)),
    (DAY + timedelta(days=5), DAY + timedelta(days=7)),  # no usage at all
]
PARTIAL = [
    (DAY - timedelta(minutes=30), DAY + timedelta(days=1, minutes=30)),
    (DAY - timedelta(minutes=29), DAY + timedelta(days=1, minutes=31)),
    (DAY + timedelta(hours=1), DAY + timedelta(hours=23)),  # inside one day
    (DAY + timedelta(hours=23), DAY + timedelta(days=1, hours=1)),  # across one midnight, no whole day
    (DAY - timedelta(days=1, hours=4), DAY + timedelta(days=2)),  # partial start, whole end
    (DAY - timedelta(days=1), DAY + timedelta(days=2, microseconds=1)),  # whole start, partial end
    (DAY + timedelta(hours=5), DAY + timedelta(hours=5)),  # empty
]


@pytest.mark.parametrize(("start", "end"), WHOLE_DAYS)
def test_whole_days_are_read_from_the_rollups_and_equal_the_ledger_sums(usage, start, end):
    with CaptureQueriesContext(connection) as captured:
        summary = usage_summary(organization=usage, start=start, end=end)

    assert ledger_queries(captured) == []
    assert len(captured.captured_queries) == 3
    assert summary == ledger_summary(usage, start, end)


def test_the_summary_counts_unpriced_calls_with_zero_cost_and_leaves_out_idle_customers(usage):
    summary = usage_summary(organization=usage, start=DAY - timedelta(days=2), end=DAY + timedelta(days=3))

    assert [(m.key, m.requests) for m in summary.models][-1] == ("mystery/model-x", 2)
    assert summary.models[-1].cost_microdollars == 0
    assert (summary.models[-1].input_tokens, summary.models[-1].output_tokens) == (510, 51)
    assert [(c.key, c.name) for c in summary.customers] == [("globex", "Globex"), ("acme", "Acme"), ("initech", "")]
    assert [d.requests for d in summary.days] == [1, 2, 3, 2, 1]


@pytest.mark.parametrize(("start", "end"), PARTIAL)
def test_a_window_that_starts_or_ends_inside_a_day_is_exact(usage, start, end):
    assert usage_summary(organization=usage, start=start, end=end) == ledger_summary(usage, start, end)


@pytest.mark.parametrize(("start", "end"), WHOLE_DAYS)
def test_a_customers_cost_over_whole_days_reads_the_rollups_only(usage, start, end):
    for customer in Customer.objects.filter(organization=usage):
        with CaptureQueriesContext(connection) as captured:
            cost = customer_cost(organization=usage, customer=customer, start=start, end=end)

        assert ledger_queries(captured) == []
        assert cost == ledger_cost(usage, customer, start, end)


@pytest.mark.parametrize(("start", "end"), PARTIAL)
def test_a_customers_cost_over_a_partial_window_is_exact(usage, start, end):
    for customer in Customer.objects.filter(organization=usage):
        assert customer_cost(organization=usage, customer=customer, start=start, end=end) == ledger_cost(
            usage, customer, start, end
        )


def test_a_customer_without_usage_costs_nothing(usage):
    idle = Customer.objects.get(organization=usage, external_id="idle")

    assert customer_cost(organization=usage, customer=idle, start=DAY - timedelta(days=2), end=DAY) == 0
    assert customer_cost(organization=usage, customer=idle, start=DAY + timedelta(hours=1), end=DAY) == 0


def test_another_organizations_usage_is_not_counted(usage):
    other_organization = OrganizationFactory(name="Other")
    CustomerFactory(organization=other_organization, external_id="acme")
    ingest_events(
        organization=other_organization, source=UsageEvent.Source.INTERNAL,
        items=[event("acme", "x1", DAY, cost=123_456, revenue=1)],
    )

    assert usage_summary(organization=usage, start=DAY, end=DAY + timedelta(days=1)) == ledger_summary(
        usage, DAY, DAY + timedelta(days=1)
    )


@pytest.mark.parametrize(("start", "end"), [*WHOLE_DAYS, *PARTIAL])
def test_a_customer_limit_keeps_the_most_expensive_and_counts_the_rest(usage, start, end):
    everyone = usage_summary(organization=usage, start=start, end=end)
    for limit in (1, 2, 3, 10):
        summary = usage_summary(organization=usage, start=start, end=end, customer_limit=limit)

        assert summary.customers == everyone.customers[:limit]
        assert summary.more_customers == max(0, len(everyone.customers) - limit)
        assert (summary.days, summary.models) == (everyone.days, everyone.models)
    assert everyone.more_customers == 0
    with pytest.raises(ValueError, match="at least 1"):
        usage_summary(organization=usage, start=start, end=end, customer_limit=0)


def test_customers_of_equal_cost_keep_their_order_by_external_id_at_the_limit(usage):
    start, end = DAY - timedelta(days=2), DAY + timedelta(days=3)
    tied = [event(name, f"tie-{name}", DAY, cost=50_000_000, revenue=0) for name in ("tie-c", "tie-a", "tie-b")]
    ingest_events(organization=usage, source=UsageEvent.Source.INTERNAL, items=tied)

    summary = usage_summary(organization=usage, start=start, end=end, customer_limit=2)

    assert [c.key for c in summary.customers] == ["tie-a", "tie-b"]
    assert summary.more_customers == 4  # tie-c, globex, acme, initech
