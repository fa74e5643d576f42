"""Billing test helpers: configuration through the services, usage through the real ingest hook.

Until the events helper's ingest service is merged, usage is written the way it will write it:
ledger rows plus `events.hooks.run_ingest_hooks` inside one transaction.
"""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from billing import services
from events.hooks import RecordedEvent, run_ingest_hooks
from events.models import UsageEvent
from tests.billing.credits.helpers import stripe_api, stripe_organization  # noqa: F401  (credit tests)
from tests.factories import CustomerFactory

_keys = itertools.count(1)


def ingest(organization, customer, events, *, received_at=None):
    """Store ``events`` ([{event_type, occurred_at, properties}]) and run the ingest hooks, like events' ingest."""
    received_at = received_at or timezone.now()
    with transaction.atomic():
        rows = UsageEvent.objects.bulk_create(
            [
                UsageEvent(
                    organization=organization,
                    customer=customer,
                    event_type=event.get("event_type", "completion"),
                    occurred_at=event["occurred_at"],
                    received_at=received_at,
                    idempotency_key=f"test-{next(_keys)}",
                    source=UsageEvent.Source.INTERNAL,
                    properties=event.get("properties", {}),
                )
                for event in events
            ]
        )
        run_ingest_hooks(
            organization=organization,
            events=[
                RecordedEvent(
                    id=row.id,
                    organization_id=organization.pk,
                    customer_id=customer.pk,
                    event_type=row.event_type,
                    occurred_at=row.occurred_at,
                    properties=row.properties,
                    cost_microdollars=0,
                    revenue_microdollars=0,
                )
                for row in rows
            ],
        )
    return rows


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def customer(organization):
    return CustomerFactory(organization=organization, external_id="team@example.com", name="Example Team")


@pytest.fixture
def seed_pricing(organization):
    """Seed 001's example: langModel4 tokens at $0.50 per million (price 50 cents, divide by 1,000,000)."""
    metric = services.billable_metric_create(
        organization=organization,
        name="langModel4 tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        event_type_filter={"in_values": ["langModel4"]},
        group_keys=["user_id"],
    )
    product = services.product_create(
        organization=organization,
        name="Language Model 4 Tokens (millions)",
        billable_metric=metric,
        quantity_conversion={"conversion_factor": Decimal(1_000_000), "operation": "DIVIDE", "name": "million tokens"},
    )
    rate_card = services.rate_card_create(organization=organization, name="Standard")
    rate = services.rate_create(rate_card=rate_card, product=product, starting_at=utc(2020, 1, 1), price=Decimal(50))
    return {"metric": metric, "product": product, "rate_card": rate_card, "rate": rate}
