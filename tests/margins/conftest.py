"""Helpers for margins tests: a fake Stripe account on localstripe, driven through the real `stripe` library.

localstripe produces invoices from subscriptions (a customer with a default card, a plan, a
subscription → one paid invoice), stamps every object with the current time, and accepts only
`sk_…` keys. Tests that need an invoice in an earlier month move its timestamps inside localstripe's
in-process store (`backdate`), which is what a real Stripe account with history would return.
"""

from datetime import UTC, datetime

import pytest
from localstripe.resources import store

from accounts.stripe_client import stripe_client
from margins import services
from margins.models import StripeConnection

STRIPE_TEST_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


class FakeStripeAccount:
    def __init__(self, key: str = STRIPE_TEST_KEY):
        self.client = stripe_client(key)
        self._plans: dict[tuple[int, str], str] = {}
        self._product = None

    def customer(self, name: str = "", email: str = "", customer_id: str | None = None) -> str:
        card = self.client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034,
                                             "cvc": "123"}}
        )
        params = {"payment_method": card.id, "invoice_settings": {"default_payment_method": card.id}}
        if name:
            params["name"] = name
        if email:
            params["email"] = email
        if customer_id is not None:
            params["metadata"] = {"customer_id": customer_id}
        return self.client.v1.customers.create(params=params).id

    def set_customer_id(self, stripe_customer_id: str, customer_id: str) -> None:
        self.client.v1.customers.update(stripe_customer_id, params={"metadata": {"customer_id": customer_id}})

    def _plan(self, amount: int, currency: str) -> str:
        if self._product is None:
            self._product = self.client.v1.products.create(params={"name": "AI assistant"}).id
        key = (amount, currency)
        if key not in self._plans:
            self._plans[key] = self.client.v1.plans.create(
                params={"product": self._product, "amount": amount, "currency": currency, "interval": "month"}
            ).id
        return self._plans[key]

    def paid_invoices(self, stripe_customer_id: str, *, count: int = 1, amount: int = 1000,
                      currency: str = "usd") -> list[str]:
        """Create ``count`` subscriptions, each yielding one paid invoice of ``amount`` minor units."""
        plan = self._plan(amount, currency)
        invoice_ids = []
        for _ in range(count):
            subscription = self.client.v1.subscriptions.create(
                params={"customer": stripe_customer_id, "items": [{"plan": plan}]}
            )
            invoice_ids.append(subscription.latest_invoice)
        return invoice_ids

    def open_invoice(self, *, amount: int = 1000) -> tuple[str, str]:
        """A customer whose card is declined, so its first invoice stays open. Returns (customer, invoice)."""
        card = self.client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2034,
                                             "cvc": "123"}}
        )
        customer = self.client.v1.customers.create(
            params={"name": "Late Payer", "payment_method": card.id,
                    "invoice_settings": {"default_payment_method": card.id}}
        ).id
        subscription = self.client.v1.subscriptions.create(
            params={"customer": customer, "items": [{"plan": self._plan(amount, "usd")}]}
        )
        return customer, subscription.latest_invoice

    def pay_with_a_good_card(self, customer: str, invoice_id: str) -> None:
        card = self.client.v1.payment_methods.create(
            params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2034,
                                             "cvc": "123"}}
        )
        self.client.v1.payment_methods.attach(card.id, params={"customer": customer})
        self.client.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": card.id}})
        self.client.v1.invoices.pay(invoice_id)


def backdate(invoice_id: str, when: datetime) -> None:
    """Move an invoice's creation and payment time to ``when`` inside localstripe (same process)."""
    invoice = store["invoice:" + invoice_id]
    timestamp = int(when.replace(tzinfo=when.tzinfo or UTC).timestamp())
    invoice.created = timestamp
    invoice.date = timestamp
    if invoice.status_transitions.get("paid_at"):
        invoice.status_transitions["paid_at"] = timestamp


@pytest.fixture
def stripe_account(localstripe) -> FakeStripeAccount:
    return FakeStripeAccount()


@pytest.fixture
def connected(organization, localstripe) -> StripeConnection:
    """The Pro `organization` connected to localstripe with a test key."""
    return services.stripe_connect(organization=organization, stripe_key=STRIPE_TEST_KEY)


def record_usage(customer, *, when: datetime, cost: int = 0, revenue: int = 0, models=()) -> None:
    """Put one usage event in the ledger (as events' ingest would store it) with its model calls.

    ``models`` is a sequence of (model slug, cost in microdollars or None when unpriced).
    """
    import uuid

    from events.models import UsageEvent, VendorResponse
    from events.services.rollups import usage_rollups_rebuild

    event = UsageEvent.objects.create(
        organization=customer.organization,
        customer=customer,
        event_type="llm.call",
        occurred_at=when,
        received_at=when,
        idempotency_key=str(uuid.uuid4()),
        source=UsageEvent.Source.INTERNAL,
        cost_microdollars=cost,
        revenue_microdollars=revenue,
    )
    for model, model_cost in models:
        VendorResponse.objects.create(
            organization=customer.organization, event=event, model=model, input_tokens=100, output_tokens=50,
            cost_microdollars=model_cost,
        )
    # Written past ingest, so its usage rollups are rebuilt (what the margin reads sum).
    usage_rollups_rebuild(organization_id=customer.organization_id)
