"""Spending limits (seed 004): configuration endpoints, and customers over their limit on the SDK blocklist."""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing import services
from billing.credits.hooks import spending_limit_block_source
from billing.credits.models import SpendingLimit
from billing.credits.selectors import customers_over_spending_limit, spending_in_window
from events.models import IngestSettings, UsageEvent
from events.services import blocklist_recompute
from events.services.rollups import usage_rollups_rebuild
from tests.billing.conftest import ingest, utc
from tests.billing.credits.helpers import globex
from tests.factories import CustomerFactory

_keys = itertools.count()


@pytest.fixture
def customer(organization):
    return globex(organization)


def url(customer):
    return f"/api/v1/customers/{customer.external_id}/billing/spending-limit"


def spend(customer, cents, *, at=None):
    """A usage event charged `cents` to the customer (its recorded revenue)."""
    now = timezone.now()
    UsageEvent.objects.create(
        organization=customer.organization, customer=customer, event_type="summarize", occurred_at=at or now,
        received_at=now, idempotency_key=f"spend-{next(_keys)}", source=UsageEvent.Source.INTERNAL,
        revenue_microdollars=cents * 10_000,
    )
    usage_rollups_rebuild(organization_id=customer.organization_id)  # written past ingest


def blocked_customers(api_client):
    response = api_client.get("/api/v1/budgets/blocklist")
    assert response.status_code == 200
    return response.json()["blocked"]["customer_ids"]


@pytest.mark.django_db
def test_without_a_limit_the_seed_shape_has_nulls(api_client, customer):
    assert api_client.get(url(customer)).json() == {
        "config": {"amount": None, "duration": None, "strategy": None}, "enabled": False,
    }


@pytest.mark.django_db
def test_set_get_and_delete_a_limit(api_client, customer):
    body = {"amount": 5000, "duration": "daily", "strategy": "sliding"}
    created = api_client.post(url(customer), body, format="json")

    assert created.status_code == 200
    expected = {"config": {"amount": 5000, "duration": "daily", "strategy": "sliding"}, "enabled": True}
    assert created.json() == expected
    assert api_client.get(url(customer)).json() == expected

    replaced = api_client.post(url(customer), {**body, "amount": 100, "enabled": False}, format="json").json()
    assert replaced == {"config": {"amount": 100, "duration": "daily", "strategy": "sliding"}, "enabled": False}
    assert SpendingLimit.objects.filter(customer=customer).count() == 1

    assert api_client.delete(url(customer)).json() == {}
    assert not SpendingLimit.objects.filter(customer=customer).exists()
    assert api_client.delete(url(customer)).status_code == 200  # deleting nothing is fine


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 99, "duration": "daily", "strategy": "fixed"}, "amount"),
        ({"amount": 0, "duration": "daily", "strategy": "fixed"}, "amount"),
        ({"amount": -500, "duration": "daily", "strategy": "fixed"}, "amount"),
        ({"amount": 10.5, "duration": "daily", "strategy": "fixed"}, "amount"),
        ({"duration": "daily", "strategy": "fixed"}, "amount"),
        ({"amount": 1000, "duration": "day", "strategy": "fixed"}, "duration"),
        ({"amount": 1000, "duration": "yearly", "strategy": "fixed"}, "duration"),
        ({"amount": 1000, "strategy": "fixed"}, "duration"),
        ({"amount": 1000, "duration": "weekly", "strategy": "rolling"}, "strategy"),
        ({"amount": 1000, "duration": "weekly", "strategy": "fixed", "enabled": "sometimes"}, "enabled"),
    ],
)
def test_invalid_limits_are_refused_with_the_field_at_fault(api_client, customer, body, field):
    response = api_client.post(url(customer), body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["field"] == field
    assert not SpendingLimit.objects.exists()


@pytest.mark.django_db
def test_a_customer_that_reaches_its_limit_is_on_the_blocklist(api_client, customer, organization,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(url(customer), {"amount": 1000, "duration": "daily", "strategy": "fixed"}, format="json")
    assert blocked_customers(api_client) == []

    spend(customer, 999)
    blocklist_recompute(organization=organization)
    assert blocked_customers(api_client) == []

    spend(customer, 1)
    blocklist_recompute(organization=organization)
    assert blocked_customers(api_client) == ["cust_123"]

    # Raising the limit lifts the block at once (the set endpoint asks events to recompute).
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(url(customer), {"amount": 5000, "duration": "daily", "strategy": "fixed"}, format="json")
    assert blocked_customers(api_client) == []


@pytest.mark.django_db
def test_disabling_or_deleting_a_limit_unblocks(api_client, customer, organization, django_capture_on_commit_callbacks):
    spend(customer, 2000)
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(url(customer), {"amount": 1000, "duration": "monthly", "strategy": "fixed"}, format="json")
    assert blocked_customers(api_client) == ["cust_123"]

    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(url(customer), {"amount": 1000, "duration": "monthly", "strategy": "fixed", "enabled": False},
                        format="json")
    assert blocked_customers(api_client) == []

    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(url(customer), {"amount": 1000, "duration": "monthly", "strategy": "fixed"}, format="json")
    assert blocked_customers(api_client) == ["cust_123"]
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(url(customer))
    assert blocked_customers(api_client) == []


@pytest.mark.django_db
def test_usage_ingested_through_the_api_blocks_the_customer(api_client, customer, organization,
                                                            django_capture_on_commit_callbacks):
    IngestSettings.objects.create(organization=organization, accept_unpriced_models=True)  # no price catalog here
    with django_capture_on_commit_callbacks(execute=True):
        api_client.post(url(customer), {"amount": 1000, "duration": "weekly", "strategy": "sliding"}, format="json")
    event = {
        "customer_id": "cust_123", "event_type": "summarize", "revenue_amount_in_cents": 600,
        "vendor_responses": [{"model": "openai/gpt-4o", "input_tokens": 1000, "output_tokens": 100}],
    }

    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post("/api/v1/events", {"events": [event]}, format="json").status_code < 300
    assert UsageEvent.objects.get(customer=customer).revenue_microdollars == 6_000_000
    assert blocked_customers(api_client) == []

    second = {**event, "vendor_responses": [{"model": "openai/gpt-4o", "input_tokens": 2000, "output_tokens": 100}]}
    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post("/api/v1/events", {"events": [second]}, format="json").status_code < 300
    assert UsageEvent.objects.filter(customer=customer).count() == 2
    assert blocked_customers(api_client) == ["cust_123"]


@pytest.mark.clock
@pytest.mark.django_db
def test_windows_decide_what_counts(customer, organization):
    now = timezone.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    limit = SpendingLimit.objects.create(
        organization=organization, customer=customer, amount_microdollars=10_000_000, duration="daily",
        strategy="fixed",
    )
    spend(customer, 1500, at=today - timedelta(hours=1))  # yesterday, outside both daily windows
    spend(customer, 600, at=today + (now - today) / 2)  # earlier today, whatever the hour

    assert customers_over_spending_limit(organization=organization, now=now) == []
    spend(customer, 400, at=today + (now - today) * 3 / 4)
    assert [(over.pk, spent) for over, spent in customers_over_spending_limit(organization=organization, now=now)] \
        == [(limit.pk, 10_000_000)]

    limit.duration, limit.strategy, limit.amount_microdollars = "weekly", "sliding", 25_000_001
    limit.save()
    assert customers_over_spending_limit(organization=organization, now=now) == []  # $25.00 in the last 7 days
    spend(customer, 1, at=now - timedelta(seconds=1))
    assert len(customers_over_spending_limit(organization=organization, now=now)) == 1


@pytest.mark.django_db
def test_the_block_source_names_customers_by_external_id_and_stays_in_its_organization(customer, organization):
    other_org_customer = CustomerFactory(external_id="cust_123")
    for target in (customer, other_org_customer):
        SpendingLimit.objects.create(
            organization=target.organization, customer=target, amount_microdollars=1_000_000, duration="monthly",
            strategy="fixed",
        )
    spend(other_org_customer, 500)

    assert spending_limit_block_source(organization=organization).customer_ids == frozenset()
    assert spending_limit_block_source(organization=other_org_customer.organization).customer_ids == {"cust_123"}


# --- Customers billed through rate-card contracts ------------------------------------------------


def tiered_contract(organization, customer):
    """langModel4 tokens per million: the first million at $1.00, every further million at $0.10; plus
    a $50 subscription, which is not usage and never counts towards a spending limit."""
    metric = services.billable_metric_create(
        organization=organization, name="tokens", aggregation_type="SUM", aggregation_key="tokens",
        event_type_filter={"in_values": ["langModel4"]},
    )
    tokens = services.product_create(
        organization=organization, name="Tokens (millions)", billable_metric=metric,
        quantity_conversion={"conversion_factor": Decimal(1_000_000), "operation": "DIVIDE"},
    )
    platform = services.product_create(organization=organization, name="Platform", type="subscription")
    card = services.rate_card_create(organization=organization, name="Tiered")
    services.rate_create(
        rate_card=card, product=tokens, starting_at=utc(2020, 1, 1), rate_type="TIERED",
        tiers=[{"size": Decimal(1), "price": Decimal(100)}, {"price": Decimal(10)}],
    )
    services.rate_create(rate_card=card, product=platform, starting_at=utc(2020, 1, 1), price=Decimal(5000))
    services.contract_create(organization=organization, customer=customer, rate_card=card, starting_at=utc(2026, 1, 1))


def million_tokens(organization, customer, at, millions=1):
    ingest(organization, customer, [{"event_type": "langModel4", "occurred_at": at,
                                     "properties": {"tokens": millions * 1_000_000}}])


@pytest.mark.django_db
def test_a_contract_customer_spends_what_its_rates_charge_for_usage_in_the_window(organization, customer):
    tiered_contract(organization, customer)
    million_tokens(organization, customer, utc(2026, 3, 5, 10))
    million_tokens(organization, customer, utc(2026, 3, 10, 9, 30))
    million_tokens(organization, customer, utc(2026, 4, 1, 5), millions=2)  # April: the tiers start over
    limit = SpendingLimit.objects.create(
        organization=organization, customer=customer, amount_microdollars=1_000_000, duration="daily", strategy="fixed"
    )

    # 10 March: the period's second million, at the second tier's 10 cents (not a fresh first tier)
    assert spending_in_window(limit=limit, now=utc(2026, 3, 10, 12, 15)) == 100_000
    # the ISO week of Monday 30 March crosses into April: $1.00 + $0.10 for April's two million
    limit.duration = "weekly"
    assert spending_in_window(limit=limit, now=utc(2026, 4, 1, 6)) == 1_100_000
    # the month up to now: $1.10 in March and $1.10 in April; the $50 subscriptions never count
    limit.duration, limit.strategy = "monthly", "sliding"
    assert spending_in_window(limit=limit, now=utc(2026, 4, 1, 6)) == 2_200_000
    # a sliding window ending now counts the current hour: the 05:00 usage at 05:20
    limit.duration = "daily"
    assert spending_in_window(limit=limit, now=utc(2026, 4, 1, 5, 20)) == 1_100_000
    assert [over.pk for over, _ in customers_over_spending_limit(organization=organization, now=utc(2026, 4, 1, 6))] \
        == [limit.pk]
    # a day without usage costs nothing, even deep into the period's tiers
    limit.strategy = "fixed"
    assert spending_in_window(limit=limit, now=utc(2026, 3, 20, 12)) == 0


@pytest.mark.django_db
def test_a_contract_customer_whose_rated_usage_exceeds_its_limit_is_on_the_blocklist(
    api_client, organization, customer, seed_pricing, django_capture_on_commit_callbacks
):
    """Seed 001 pricing ($0.50 per million langModel4 tokens) and no revenue on the events: only the
    contract's rates say what the customer spends."""
    with django_capture_on_commit_callbacks(execute=True):
        services.contract_create(
            organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
            starting_at=utc(2026, 1, 1),
        )
        api_client.post(url(customer), {"amount": 100, "duration": "monthly", "strategy": "sliding"}, format="json")

    def metronome(transaction_id):
        event = {"transaction_id": transaction_id, "customer_id": customer.external_id, "event_type": "langModel4",
                 "timestamp": (timezone.now() - timedelta(seconds=1)).isoformat(), "properties": {"tokens": 1_000_000}}
        with django_capture_on_commit_callbacks(execute=True):
            assert api_client.post("/api/v1/ingest", [event], format="json").status_code == 200

    metronome("first")  # $0.50 of the $1.00 limit
    assert blocked_customers(api_client) == []
    metronome("second")  # $1.00: the limit is reached
    assert UsageEvent.objects.filter(customer=customer, revenue_microdollars__gt=0).count() == 0
    assert blocked_customers(api_client) == ["cust_123"]
