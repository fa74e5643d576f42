"""margins' revenue sync recognizes the Stripe invoices TokenLedger pushed (metadata) and counts each of
our invoices once, however many Stripe invoices carry its id."""

import pytest

from billing.collection.models import ExternalInvoice
from margins import selectors, services
from margins.models import StripeInvoice
from tests.billing.collection.helpers import billed_customer, finalize_february, tokens
from tests.billing.credits.helpers import save_default_card
from tests.margins.conftest import STRIPE_TEST_KEY

pytestmark = pytest.mark.django_db


def test_our_invoices_are_recognized_and_never_counted_twice(
    organization, pricing, stripe_billing, stripe_api, clock, django_capture_on_commit_callbacks
):
    customer = billed_customer(organization, pricing, usage=[tokens(3_000_000), tokens(1_500_000, "bob")])
    _, invoice = finalize_february(customer, django_capture_on_commit_callbacks)
    twin = ExternalInvoice.objects.get(invoice=invoice)
    save_default_card(stripe_api, twin.stripe_customer_id)
    stripe_api.v1.invoices.pay(twin.stripe_invoice_id)
    # Someone recreates the invoice by hand in Stripe (metadata copied) and it gets paid too.
    stripe_api.v1.invoice_items.create(params={"customer": twin.stripe_customer_id, "amount": 225, "currency": "usd"})
    copy = stripe_api.v1.invoices.create(
        params={"customer": twin.stripe_customer_id, "metadata": {"tokenledger_invoice_id": str(invoice.pk)},
                "pending_invoice_items_behavior": "include"}
    )
    stripe_api.v1.invoices.finalize_invoice(copy.id)
    stripe_api.v1.invoices.pay(copy.id)
    # And an ordinary invoice of the same customer, made in Stripe for something else.
    stripe_api.v1.invoice_items.create(params={"customer": twin.stripe_customer_id, "amount": 1000, "currency": "usd"})
    other = stripe_api.v1.invoices.create(
        params={"customer": twin.stripe_customer_id, "pending_invoice_items_behavior": "include"}
    )
    stripe_api.v1.invoices.finalize_invoice(other.id)
    stripe_api.v1.invoices.pay(other.id)
    services.stripe_connect(organization=organization, stripe_key=STRIPE_TEST_KEY)

    services.revenue_sync(organization=organization)

    ours = StripeInvoice.objects.filter(organization=organization).exclude(tokenledger_invoice_id="")
    assert sorted(ours.values_list("stripe_id", flat=True)) == sorted([twin.stripe_invoice_id, copy.id])
    assert set(ours.values_list("tokenledger_invoice_id", flat=True)) == {str(invoice.pk)}
    revenue = {row.tag_value: row.revenue for row in selectors.customer_margins(organization=organization,
                                                                                period="2026-03")}
    assert revenue == {"acme-ops": (225 + 1000) * 10_000}  # microdollars: our invoice once, plus the other one

    services.revenue_sync(organization=organization)  # a second sync counts nothing again
    assert selectors.customer_margins(organization=organization, period="2026-03")[0].revenue == 1225 * 10_000
