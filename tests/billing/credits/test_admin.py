"""Credit ledger admin: readable per customer, appended to through a form, never edited."""

import pytest
from django.urls import reverse

from billing.credits.models import CreditEntry, StripePaymentAccount
from billing.credits.selectors import credit_balance
from billing.credits.services import credit_add
from tests.billing.credits.helpers import globex

pytestmark = pytest.mark.django_db


@pytest.fixture
def customer(organization):
    return globex(organization)


def test_the_ledger_lists_a_customers_entries_with_its_balance(admin_client, customer):
    credit_add(customer=customer, kind="grant", amount_microdollars=7_250_000, reference="welcome")

    response = admin_client.get(f"/admin/billing/creditentry/?customer__id__exact={customer.pk}")

    assert response.status_code == 200
    page = response.content.decode()
    assert "welcome" in page and "7.25" in page
    assert "balance 7.25 USD" in page


def test_an_adjustment_from_the_form_is_an_entry_by_the_admin_user(admin_client, admin_user, customer):
    credit_add(customer=customer, kind="grant", amount_microdollars=5_000_000, reference="g")

    response = admin_client.post("/admin/billing/creditentry/add/", {
        "customer": customer.pk, "kind": "adjustment", "amount_usd": "-1.500001", "description": "refund error",
    }, follow=True)

    assert response.status_code == 200
    adjustment = CreditEntry.objects.get(kind="adjustment")
    assert (adjustment.amount_microdollars, adjustment.created_by) == (-1_500_001, admin_user)
    assert adjustment.draws.get().amount_microdollars == 1_500_001
    assert credit_balance(customer=customer) == 3_499_999


def test_the_form_refuses_what_the_ledger_would(admin_client, customer):
    negative_grant = admin_client.post("/admin/billing/creditentry/add/", {
        "customer": customer.pk, "kind": "grant", "amount_usd": "-1",
    })
    overdraw = admin_client.post("/admin/billing/creditentry/add/", {
        "customer": customer.pk, "kind": "adjustment", "amount_usd": "-1",
    })

    assert negative_grant.status_code == overdraw.status_code == 200  # the form again, with errors
    assert "A grant must be positive" in negative_grant.content.decode()
    assert "more than the usable credit" in overdraw.content.decode()
    assert not CreditEntry.objects.exists()


def test_entries_cannot_be_edited_or_deleted(admin_client, customer):
    entry, _ = credit_add(customer=customer, kind="grant", amount_microdollars=1_000_000, reference="g")

    page = admin_client.get(f"/admin/billing/creditentry/{entry.pk}/change/")
    admin_client.post(f"/admin/billing/creditentry/{entry.pk}/change/", {"amount_microdollars": 9})
    deleted = admin_client.post(f"/admin/billing/creditentry/{entry.pk}/delete/", {"post": "yes"})

    assert page.status_code == 200 and 'name="amount_microdollars"' not in page.content.decode()
    assert deleted.status_code == 403
    entry.refresh_from_db()
    assert entry.amount_microdollars == 1_000_000


def test_the_stripe_account_admin_sets_keeps_and_removes_the_webhook_secret_without_showing_it(
    admin_client, organization
):
    added = admin_client.post(reverse("admin:billing_stripepaymentaccount_add"), {
        "organization": str(organization.pk), "secret_key": "sk_test_admin_key1", "webhook_secret": "whsec_admin_1",
    })
    assert added.status_code == 302, added.content.decode()
    account = StripePaymentAccount.objects.get(organization=organization)
    assert (account.secret_key, account.webhook_secret) == ("sk_test_admin_key1", "whsec_admin_1")
    change_url = reverse("admin:billing_stripepaymentaccount_change", args=[account.pk])
    page = admin_client.get(change_url).content.decode()
    assert "whsec_admin_1" not in page and "sk_test_admin_key1" not in page
    listing = admin_client.get(reverse("admin:billing_stripepaymentaccount_changelist")).content.decode()
    assert "whsec_admin_1" not in listing and "icon-yes" in listing  # shown only as "set"

    kept = admin_client.post(change_url, {"secret_key": "", "webhook_secret": ""})
    assert kept.status_code == 302
    account.refresh_from_db()
    assert (account.secret_key, account.webhook_secret) == ("sk_test_admin_key1", "whsec_admin_1")

    refused = admin_client.post(change_url, {"secret_key": "", "webhook_secret": "not_a_whsec"})
    assert refused.status_code == 200 and "whsec_" in str(refused.context["adminform"].form.errors)

    removed = admin_client.post(change_url, {"secret_key": "", "webhook_secret": "", "remove_webhook_secret": "on"})
    assert removed.status_code == 302
    account.refresh_from_db()
    assert (account.secret_key, account.webhook_secret) == ("sk_test_admin_key1", None)


def test_a_new_stripe_account_needs_its_key_in_admin(admin_client, organization):
    response = admin_client.post(reverse("admin:billing_stripepaymentaccount_add"), {
        "organization": str(organization.pk), "secret_key": "", "webhook_secret": "whsec_admin_1",
    })

    assert response.status_code == 200
    assert "secret_key" in response.context["adminform"].form.errors
    assert not StripePaymentAccount.objects.exists()
