"""Admin of collection: billing configuration through the services' rules, the Stripe twin on the
invoice page with its retry action, and the reconciliation page."""

import pytest
from django.urls import reverse

from billing.collection.models import CustomerBillingConfig, ExternalInvoice
from tests.billing.collection.helpers import billed_customer, finalize_february, tokens
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def config_form(customer, **values):
    return {
        "customer": str(customer.pk), "bill_through_stripe": "on", "currency": "EUR",
        "collection_method": "charge_automatically", "days_until_due": "", "auto_advance": "on",
        "stripe_customer_id": "", **values,
    }


def test_admin_adds_a_billing_configuration_with_the_apis_rules(admin_client_logged_in, organization):
    customer = CustomerFactory(organization=organization, external_id="acme")
    url = reverse("admin:billing_customerbillingconfig_add")

    refused = admin_client_logged_in.post(url, config_form(customer, collection_method="send_invoice"))
    assert refused.status_code == 200 and "send_invoice needs days_until_due" in refused.content.decode()
    bad_link = admin_client_logged_in.post(url, config_form(customer, stripe_customer_id="acct_1"))
    assert "A Stripe customer id" in bad_link.content.decode()
    assert not CustomerBillingConfig.objects.exists()

    saved = admin_client_logged_in.post(url, config_form(customer, stripe_customer_id="cus_known", currency="eur"))

    assert saved.status_code == 302
    config = CustomerBillingConfig.objects.get()
    assert (config.bill_through_stripe, config.currency, config.organization_id) == (True, "EUR", organization.pk)
    customer.refresh_from_db()
    assert customer.stripe_customer_id == "cus_known"


def test_invoice_page_shows_the_stripe_twin_and_the_retry_action_pushes_it(
    admin_client_logged_in, organization, pricing, stripe_billing, clock, django_capture_on_commit_callbacks
):
    customer = billed_customer(organization, pricing, usage=[tokens(2_000_000)], stripe_customer_id="cus_missing")
    _, invoice = finalize_february(customer, django_capture_on_commit_callbacks)
    page = admin_client_logged_in.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert page.status_code == 200
    assert "Stripe invoice" in page.content.decode() and "InvalidRequestError" in page.content.decode()

    from accounts.stripe_client import stripe_client
    from billing.collection.services import billing_config_set
    from tests.billing.credits.helpers import STRIPE_KEY

    real = stripe_client(STRIPE_KEY).v1.customers.create(params={"name": "Acme Ops"}).id
    billing_config_set(customer=customer, bill_through_stripe=True, stripe_customer_id=real)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged_in.post(
            reverse("admin:billing_invoice_changelist"),
            {"action": "push_to_stripe", "_selected_action": [str(invoice.pk)]}, follow=True,
        )
    assert "Queued the Stripe push of 1 invoice(s)." in response.content.decode()
    twin = ExternalInvoice.objects.get(invoice=invoice)
    assert (twin.state, twin.error) == ("finalized", "")
    page = admin_client_logged_in.get(reverse("admin:billing_invoice_change", args=[invoice.pk]))
    assert twin.hosted_invoice_url in page.content.decode()


def test_reconciliation_page(admin_client_logged_in, organization, pricing, stripe_billing, clock,
                             django_capture_on_commit_callbacks):
    customer = billed_customer(organization, pricing, usage=[tokens(2_000_000)], currency="EUR")
    finalize_february(customer, django_capture_on_commit_callbacks)
    changelist = admin_client_logged_in.get(reverse("admin:billing_externalinvoice_changelist"))
    url = reverse("admin:billing_externalinvoice_reconciliation")
    assert url in changelist.content.decode()

    page = admin_client_logged_in.get(url, {"organization": str(organization.pk), "period": "2026-02"})

    text = page.content.decode()
    assert page.status_code == 200 and "Reconciliation 2026-02" in text
    assert "acme-ops" in text and "1.00 EUR" in text  # metered and invoiced, in euros
    bad = admin_client_logged_in.get(url, {"period": "February"})
    assert "The period must be YYYY-MM." in bad.content.decode()
