"""Ingest → usage_recorded → debounced task on a real Celery worker (Redis) → draft invoice."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from billing import recompute, services
from billing.models import Invoice
from tests.factories import CustomerFactory


def wait_for_total(invoice_id, expected_cents: int, timeout: float = 20.0) -> tuple[Invoice, float]:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        invoice = Invoice.objects.get(pk=invoice_id)
        if invoice.total_cents == expected_cents:
            return invoice, time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"draft total stayed {invoice.total_cents}, expected {expected_cents}")


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_ingested_usage_reaches_the_draft_through_a_real_worker(celery_worker_process, api_client, organization):
    customer = CustomerFactory(organization=organization, external_id="c-e2e", ingest_aliases=["team@example.com"])
    metric = services.billable_metric_create(
        organization=organization,
        name="tokens",
        aggregation_type="SUM",
        aggregation_key="tokens",
        event_type_filter={"in_values": ["langModel4"]},
    )
    product = services.product_create(
        organization=organization,
        name="Language Model 4 Tokens (millions)",
        billable_metric=metric,
        quantity_conversion={"conversion_factor": Decimal(1_000_000), "operation": "DIVIDE"},
    )
    card = services.rate_card_create(organization=organization, name="Standard")
    services.rate_create(
        rate_card=card,
        product=product,
        starting_at=timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=400),
        price=Decimal(50),
    )
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    services.contract_create(organization=organization, customer=customer, rate_card=card, starting_at=start)
    draft = Invoice.objects.get(customer=customer, period_start=start)
    cache.delete(recompute._debounce_key(customer.pk))
    at = max(timezone.now() - timedelta(minutes=1), start).isoformat()

    def post(transaction_id: str, tokens: int):
        body = [
            {
                "transaction_id": transaction_id,
                "customer_id": "team@example.com",
                "event_type": "langModel4",
                "timestamp": at,
                "properties": {"tokens": tokens},
            }
        ]
        response = api_client.post("/api/v1/ingest", body, format="json")
        assert response.status_code == 200, response.content

    # a burst: one recompute is queued, and the draft reflects every event of the burst
    for index in range(5):
        post(f"burst-{index}", 200_000)
    queued = cache.get(recompute._debounce_key(customer.pk)) is not None
    invoice, waited = wait_for_total(draft.pk, 50)
    assert queued
    assert waited < 10

    # usage after that recompute is not lost: it schedules the next one
    post("later", 2_000_000)
    invoice, waited = wait_for_total(draft.pk, 150)
    (line,) = invoice.lines.all()
    assert (line.quantity, line.amount_cents) == (Decimal(3), 150)
    assert waited < 10
