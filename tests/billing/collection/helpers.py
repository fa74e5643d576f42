"""Helpers of the collection tests: a frozen clock, a customer with a contract and a finalized invoice,
Stripe's invoice webhooks signed as Stripe signs them."""

import time
from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from billing import invoicing, services
from billing.collection.services import billing_config_set
from billing.credits.services import stripe_account_set
from tests.billing.conftest import ingest
from tests.billing.credits.helpers import STRIPE_KEY, WEBHOOK_SECRET, signed
from tests.factories import CustomerFactory

# 00:30 UTC on the 2nd: February's period ended 24.5 hours ago, past the finalization grace.
NOW = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)
FEBRUARY = datetime(2026, 2, 1, tzinfo=UTC)
LAST_SECOND_OF_FEBRUARY = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=True) as traveller:
        yield traveller


@pytest.fixture
def stripe_billing(organization, localstripe, settings):
    """The organization's Stripe account (localstripe) with the signing secret of its webhook endpoint."""
    settings.STRIPE_MAX_NETWORK_RETRIES = 0  # our task retries; the library's own sleeps would only slow tests
    stripe_account_set(organization=organization, secret_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET)
    return organization


def tokens(count: int, user: str = "alice", at: datetime = LAST_SECOND_OF_FEBRUARY) -> dict:
    return {"event_type": "langModel4", "occurred_at": at, "properties": {"tokens": count, "user_id": user}}


def billed_customer(organization, seed_pricing, *, external_id="acme-ops", currency="USD", usage=(), **config):
    """A customer billed through Stripe, on seed 001's rate card since February, with `usage` ingested."""
    customer = CustomerFactory(organization=organization, external_id=external_id, name="Acme Ops",
                               email="billing@acme.test")
    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=FEBRUARY
    )
    billing_config_set(customer=customer, bill_through_stripe=True, currency=currency, **config)
    if usage:
        ingest(organization, customer, list(usage))
    return customer


def finalize_february(customer, capture):
    """Finalize the customer's February invoice; the push queued on commit runs (eager Celery) when
    ``capture`` (pytest-django's django_capture_on_commit_callbacks) plays the commit callbacks."""
    with capture(execute=True):
        invoicing.invoices_finalize_due()
    return customer.__class__.objects.get(pk=customer.pk), invoice_of(customer)


def invoice_of(customer):
    from billing.models import Invoice

    return Invoice.objects.select_related("external_invoice").get(customer=customer, period_start=FEBRUARY)


def invoice_event(stripe_invoice: dict, event_type: str, *, event_id: str = "", created: int | None = None) -> dict:
    return {
        "id": event_id or f"evt_{stripe_invoice['id']}_{event_type}",
        "object": "event",
        "type": event_type,
        "created": created or int(time.time()),
        "data": {"object": stripe_invoice},
    }


def post_event(client, organization, event: dict):
    body, signature = signed(event)
    url = reverse("billing:stripe-organization-billing-webhook", args=[str(organization.pk)])
    return client.post(url, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature)
