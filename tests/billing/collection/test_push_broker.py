"""The push at finalization through a real Redis broker and Celery worker (CI sets REDIS_URL): the
task queued on commit runs in another process, against localstripe, and the invoice's Stripe twin
ends finalized once, with the same amounts the in-process tests check."""

import time

import pytest

from billing.collection.models import ExternalInvoice
from billing.models import Invoice
from tests.billing.collection.helpers import billed_customer, invoice_of, tokens

pytestmark = [pytest.mark.broker, pytest.mark.django_db(transaction=True)]


def _wait_for_state(invoice, state: str, seconds: float = 30) -> ExternalInvoice:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        twin = ExternalInvoice.objects.filter(invoice=invoice).first()
        if twin is not None and twin.state == state:
            return twin
        time.sleep(0.2)
    raise AssertionError(f"the Stripe push did not reach {state!r}: {twin and (twin.state, twin.error)}")


def test_a_finalized_invoice_reaches_stripe_through_a_real_worker(
    celery_worker_process, organization, pricing, stripe_billing, stripe_api, clock
):
    from billing import invoicing

    customer = billed_customer(organization, pricing, usage=[tokens(3_000_000, "alice"), tokens(1_500_000, "bob")])

    invoicing.invoices_finalize_due()  # commits; the push is queued on commit, to the broker

    invoice = invoice_of(customer)
    assert invoice.status == Invoice.Status.FINALIZED
    twin = _wait_for_state(invoice, "finalized")
    customer.refresh_from_db()
    (stripe_invoice,) = stripe_api.v1.invoices.list(params={"customer": customer.stripe_customer_id}).data
    assert stripe_invoice.id == twin.stripe_invoice_id and stripe_invoice.status == "open"
    assert (twin.sent_total, twin.stripe_total, twin.attempts) == (225, 225, 1)
    assert stripe_invoice.metadata["tokenledger_invoice_id"] == str(invoice.pk)
