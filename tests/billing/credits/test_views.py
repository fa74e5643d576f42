"""Our own credit endpoints: the ledger (list, grants, adjustments) and the organization's Stripe account."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing.credits.models import CreditEntry, StripePaymentAccount
from billing.credits.selectors import credit_balance
from tests.billing.credits.helpers import STRIPE_KEY, globex


@pytest.fixture
def customer(organization):
    return globex(organization)


def entries_url(customer):
    return f"/api/v1/customers/{customer.external_id}/billing/credit-entries"


@pytest.mark.django_db
def test_grants_and_adjustments_through_the_api(api_client, customer):
    expires = timezone.now() + timedelta(days=30)
    granted = api_client.post(entries_url(customer), {
        "kind": "grant", "amount_microdollars": 12_500_000, "reference": "welcome", "expires_at": expires.isoformat(),
        "description": "Welcome credit",
    }, format="json")
    adjusted = api_client.post(entries_url(customer), {
        "kind": "adjustment", "amount_microdollars": -2_500_000, "reference": "fix-1",
    }, format="json")

    assert granted.status_code == adjusted.status_code == 201
    assert granted.json()["data"]["amount_usd"] == "12.50"
    assert adjusted.json()["data"]["draws"] == [
        {"lot": granted.json()["data"]["id"], "amount_microdollars": 2_500_000, "line_key": ""}
    ]
    listed = api_client.get(entries_url(customer)).json()
    assert [entry["reference"] for entry in listed["data"]] == ["fix-1", "welcome"]
    assert credit_balance(customer=customer) == 10_000_000
    assert api_client.get(f"/api/v1/customers/{customer.external_id}/billing/credit-balance").json()["balance"] == 1000


@pytest.mark.django_db
def test_a_repeated_reference_is_a_409_and_changes_nothing(api_client, customer):
    body = {"kind": "grant", "amount_microdollars": 1_000_000, "reference": "promo"}
    first = api_client.post(entries_url(customer), body, format="json")
    again = api_client.post(entries_url(customer), {**body, "amount_microdollars": 9_000_000}, format="json")

    assert again.status_code == 409
    assert again.json()["error"]["details"]["existing_id"] == first.json()["data"]["id"]
    assert credit_balance(customer=customer) == 1_000_000


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "grant", "amount_microdollars": -5, "reference": "r"}, "amount_microdollars"),
        ({"kind": "grant", "amount_microdollars": 0, "reference": "r"}, "amount_microdollars"),
        ({"kind": "grant", "amount_microdollars": "5000000", "reference": "r"}, "amount_microdollars"),
        ({"kind": "grant", "amount_microdollars": 5000000.0, "reference": "r"}, "amount_microdollars"),
        ({"kind": "grant", "amount_microdollars": True, "reference": "r"}, "amount_microdollars"),
        ({"kind": "topup", "amount_microdollars": 5, "reference": "r"}, "kind"),
        ({"kind": "drawdown", "amount_microdollars": -5, "reference": "r"}, "kind"),
        ({"kind": "grant", "amount_microdollars": 5}, "reference"),
        ({"kind": "adjustment", "amount_microdollars": -5, "reference": "r", "expires_at": "2030-01-01T00:00:00Z"},
         "expires_at"),
        ({"kind": "adjustment", "amount_microdollars": -5, "reference": "r"}, "amount_microdollars"),  # no credit
    ],
)
def test_invalid_entries_are_refused(api_client, customer, body, field):
    response = api_client.post(entries_url(customer), body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field
    assert not CreditEntry.objects.exists()


@pytest.mark.django_db
def test_the_stripe_account_is_checked_stored_encrypted_and_never_shown(api_client, localstripe):
    assert api_client.get("/api/v1/billing/stripe-account").json()["data"]["configured"] is False

    saved = api_client.put("/api/v1/billing/stripe-account", {"secret_key": STRIPE_KEY}, format="json")

    assert saved.status_code == 200
    assert saved.json()["data"]["key_hint"] == STRIPE_KEY[-4:]
    assert "secret_key" not in saved.json()["data"]
    account = StripePaymentAccount.objects.get()
    assert account.secret_key == STRIPE_KEY
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_key FROM billing_stripepaymentaccount")
        (stored,) = cursor.fetchone()
    assert STRIPE_KEY not in stored

    assert api_client.delete("/api/v1/billing/stripe-account").json()["data"]["configured"] is False
    assert not StripePaymentAccount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("secret_key", ["pk_test_public", "rk_test_restricted", "", "sk_x"])  # sk_x: Stripe says 401
def test_keys_stripe_would_refuse_are_a_400(api_client, localstripe, secret_key):
    response = api_client.put("/api/v1/billing/stripe-account", {"secret_key": secret_key}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "secret_key"
    assert not StripePaymentAccount.objects.exists()


@pytest.mark.django_db
def test_test_keys_are_refused_in_production(api_client, localstripe, settings):
    settings.IS_PRODUCTION = True
    response = api_client.put("/api/v1/billing/stripe-account", {"secret_key": STRIPE_KEY}, format="json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_only_admins_see_or_set_the_stripe_account(member_client, localstripe):
    member = member_client(role="member")
    assert member.get("/api/v1/billing/stripe-account").status_code == 403
    assert member.put("/api/v1/billing/stripe-account", {"secret_key": STRIPE_KEY}, format="json").status_code == 403
    admin = member_client(role="admin")
    assert admin.put("/api/v1/billing/stripe-account", {"secret_key": STRIPE_KEY}, format="json").status_code == 200


@pytest.mark.django_db
def test_the_webhook_signing_secret_is_stored_encrypted_and_only_reported_as_set(api_client, organization, localstripe):
    saved = api_client.put(
        "/api/v1/billing/stripe-account", {"secret_key": STRIPE_KEY, "webhook_secret": "whsec_acme_1"}, format="json"
    )

    assert saved.status_code == 200, saved.content
    data = saved.json()["data"]
    assert data["webhook_secret_set"] is True
    assert data["webhook_url"].endswith(f"/api/stripe/webhooks/billing/{organization.pk}")
    assert "whsec_acme_1" not in saved.content.decode()
    assert "whsec_acme_1" not in api_client.get("/api/v1/billing/stripe-account").content.decode()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM billing_stripepaymentaccount")
        (stored,) = cursor.fetchone()
    assert "whsec_acme_1" not in stored
    assert StripePaymentAccount.objects.get().webhook_secret == "whsec_acme_1"

    # The signing secret alone can be rotated (the key stays), and removed with null.
    rotated = api_client.put("/api/v1/billing/stripe-account", {"webhook_secret": "whsec_acme_2"}, format="json")
    assert rotated.status_code == 200 and rotated.json()["data"]["key_hint"] == STRIPE_KEY[-4:]
    assert StripePaymentAccount.objects.get().webhook_secret == "whsec_acme_2"
    key_only = api_client.put("/api/v1/billing/stripe-account", {"secret_key": STRIPE_KEY}, format="json")
    assert key_only.json()["data"]["webhook_secret_set"] is True  # omitted: kept
    removed = api_client.put("/api/v1/billing/stripe-account", {"webhook_secret": None}, format="json").json()["data"]
    assert (removed["webhook_secret_set"], removed["webhook_url"]) == (False, None)
    assert StripePaymentAccount.objects.get().webhook_secret is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"secret_key": STRIPE_KEY, "webhook_secret": "sk_test_wrong_kind"}, "webhook_secret"),
        ({"secret_key": STRIPE_KEY, "webhook_secret": "whsec_with space"}, "webhook_secret"),
        ({"webhook_secret": "whsec_no_account_yet"}, "secret_key"),
        ({}, "secret_key"),
    ],
)
def test_bad_webhook_secrets_and_a_new_account_without_a_key_are_a_400(api_client, localstripe, body, field):
    response = api_client.put("/api/v1/billing/stripe-account", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["field"] == field
    assert not StripePaymentAccount.objects.exists()
