"""Stripe's invoice webhooks on the organization's signed endpoint bring the status back: paid, void,
uncollectible, failed payments; duplicates and out-of-order deliveries change nothing."""

import pytest

from billing.collection.models import ExternalInvoice
from billing.credits.models import CreditEntry, StripeWebhookEvent
from billing.credits.selectors import credit_balance
from billing.credits.services import credit_add
from billing.models import Invoice
from tests.billing.collection.helpers import (
    billed_customer,
    finalize_february,
    invoice_event,
    post_event,
    tokens,
)
from tests.billing.credits.helpers import save_default_card
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

USAGE = [tokens(3_000_000, "alice"), tokens(1_500_000, "bob")]


@pytest.fixture
def pushed(organization, pricing, stripe_billing, clock, django_capture_on_commit_callbacks):
    """A finalized $2.25 invoice, open in Stripe."""
    customer = billed_customer(organization, pricing, usage=USAGE)
    _, invoice = finalize_february(customer, django_capture_on_commit_callbacks)
    return invoice


def stripe_invoice(stripe_api, invoice) -> dict:
    return stripe_api.v1.invoices.retrieve(ExternalInvoice.objects.get(invoice=invoice).stripe_invoice_id).to_dict()


def pay(stripe_api, invoice) -> dict:
    twin = ExternalInvoice.objects.get(invoice=invoice)
    save_default_card(stripe_api, twin.stripe_customer_id)
    stripe_api.v1.invoices.pay(twin.stripe_invoice_id)
    return stripe_invoice(stripe_api, invoice)


def test_invoice_paid_marks_ours_paid_with_the_amount_paid(client, organization, pushed, stripe_api):
    open_copy = stripe_invoice(stripe_api, pushed)
    paid = pay(stripe_api, pushed)
    assert paid["status"] == "paid"

    response = post_event(client, organization, invoice_event(paid, "invoice.paid"))

    assert response.status_code == 200 and response.json() == {"received": True, "status": "processed"}
    twin = ExternalInvoice.objects.get(invoice=pushed)
    assert (twin.stripe_status, twin.amount_paid, twin.amount_remaining) == ("paid", 225, 0)
    assert twin.paid_at is not None
    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.PAID
    row = StripeWebhookEvent.objects.get(event_id=f"evt_{paid['id']}_invoice.paid")
    assert row.status == "processed"
    assert row.organization_id == row.endpoint_organization_id == organization.pk

    # The same event again (Stripe delivers at least once): acknowledged, counted, nothing changes.
    again = post_event(client, organization, invoice_event(paid, "invoice.paid"))
    assert again.status_code == 200
    row.refresh_from_db()
    assert row.deliveries == 2

    # Older news arriving late: invoice.finalized (open) and a payment failure from before the payment.
    for late in (invoice_event(open_copy, "invoice.finalized"), invoice_event(open_copy, "invoice.payment_failed")):
        assert post_event(client, organization, late).status_code == 200
    twin.refresh_from_db()
    assert (twin.stripe_status, twin.amount_paid, twin.payment_failed_at) == ("paid", 225, None)
    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.PAID
    note = StripeWebhookEvent.objects.get(event_id=f"evt_{open_copy['id']}_invoice.finalized").error
    assert "older than what we hold (paid)" in note


def test_payment_failed_then_paid(client, organization, pushed, stripe_api):
    open_copy = {**stripe_invoice(stripe_api, pushed), "attempt_count": 2}
    post_event(client, organization, invoice_event(open_copy, "invoice.payment_failed"))

    twin = ExternalInvoice.objects.get(invoice=pushed)
    assert twin.payment_failed_at is not None and twin.last_payment_error == "payment attempt 2 failed"
    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.FINALIZED

    post_event(client, organization, invoice_event(pay(stripe_api, pushed), "invoice.paid"))
    twin.refresh_from_db()
    assert (twin.stripe_status, twin.payment_failed_at, twin.last_payment_error) == ("paid", None, "")


def test_voided_in_stripe_voids_ours_and_returns_its_credits(
    client, organization, pricing, stripe_billing, stripe_api, clock, django_capture_on_commit_callbacks
):
    customer = billed_customer(organization, pricing, external_id="credited")
    credit_add(customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=1_000_000, reference="promo")
    from tests.billing.conftest import ingest

    ingest(organization, customer, USAGE)
    _, invoice = finalize_february(customer, django_capture_on_commit_callbacks)
    assert credit_balance(customer=customer) == 0  # $1 drawn down at finalization
    twin = ExternalInvoice.objects.get(invoice=invoice)
    voided = stripe_api.v1.invoices.void_invoice(twin.stripe_invoice_id).to_dict()

    post_event(client, organization, invoice_event(voided, "invoice.voided"))

    assert Invoice.objects.get(pk=invoice.pk).status == Invoice.Status.VOID
    assert ExternalInvoice.objects.get(pk=twin.pk).stripe_status == "void"
    assert credit_balance(customer=customer) == 1_000_000


def test_marked_uncollectible_then_paid_after_all(client, organization, pushed, stripe_api):
    twin = ExternalInvoice.objects.get(invoice=pushed)
    uncollectible = stripe_api.v1.invoices.mark_uncollectible(twin.stripe_invoice_id).to_dict()
    assert uncollectible["status"] == "uncollectible"

    post_event(client, organization, invoice_event(uncollectible, "invoice.marked_uncollectible"))
    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.UNCOLLECTIBLE

    post_event(client, organization, invoice_event(pay(stripe_api, pushed), "invoice.paid"))
    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.PAID


def test_paid_in_stripe_but_void_here_is_kept_and_said(client, organization, pushed, stripe_api):
    from billing.invoicing import invoice_set_status

    invoice_set_status(invoice=pushed, status=Invoice.Status.VOID)  # an operator voided ours by hand

    post_event(client, organization, invoice_event(pay(stripe_api, pushed), "invoice.paid"))

    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.VOID
    assert ExternalInvoice.objects.get(invoice=pushed).stripe_status == "paid"  # and the reconciliation shows it
    row = StripeWebhookEvent.objects.get(type="invoice.paid")
    assert "Stripe says paid; our invoice is void" in row.error


def test_invoices_that_are_not_ours_or_another_organizations_are_ignored(
    client, organization, pushed, stripe_api
):
    foreign = {**stripe_invoice(stripe_api, pushed), "id": "in_made_by_hand_in_stripe"}
    assert post_event(client, organization, invoice_event(foreign, "invoice.paid")).json()["status"] == "ignored"

    other = OrganizationFactory()
    from billing.credits.services import stripe_account_set
    from tests.billing.credits.helpers import STRIPE_KEY, WEBHOOK_SECRET

    stripe_account_set(organization=other, secret_key=STRIPE_KEY, webhook_secret=WEBHOOK_SECRET)
    paid = pay(stripe_api, pushed)
    response = post_event(client, other, invoice_event(paid, "invoice.paid"))  # at the other organization's endpoint

    assert response.json()["status"] == "ignored"
    assert Invoice.objects.get(pk=pushed.pk).status == Invoice.Status.FINALIZED


def test_an_invoice_event_without_its_object_is_a_400(client, organization, stripe_billing):
    response = post_event(client, organization, {"id": "evt_1", "type": "invoice.paid", "data": {}})
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"
    assert not StripeWebhookEvent.objects.exists()


def test_an_invoice_edited_in_stripe_is_flagged_by_the_reconciliation(client, api_client, organization, pushed,
                                                                       stripe_api):
    edited = {**stripe_invoice(stripe_api, pushed), "total": 300, "amount_due": 300, "amount_remaining": 300}
    post_event(client, organization, invoice_event(edited, "invoice.updated"))

    (row,) = api_client.get("/api/v1/reconciliation?period=2026-02").json()["data"]["customers"]
    assert row["invoiced_cents"] == 300
    assert [flag["code"] for flag in row["flags"]] == ["edited_in_stripe"]
