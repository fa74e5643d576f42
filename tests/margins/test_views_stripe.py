"""POST /api/stripe/connect, DELETE /api/stripe/disconnect, POST (session) / GET (cron) /api/stripe/revenue-sync."""

import re

import pytest
from django.db import connection as db_connection

from margins import services
from margins.models import CustomerMapping, StripeConnection, StripeCustomer, StripeInvoice, SyncRun
from tests.factories import CustomerFactory, OrganizationFactory
from tests.margins.conftest import STRIPE_TEST_KEY

pytestmark = pytest.mark.django_db


def test_connect_validates_with_stripe_stores_encrypted_and_masks(member_client, organization, localstripe):
    response = member_client(role="admin").post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")

    assert response.status_code == 201
    data = response.json()["data"]
    assert data["keyPrefix"] == "sk_test_4eC3...p7dc"
    assert data["status"] == "active"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", data["createdAt"])
    assert StripeConnection.objects.get(pk=data["id"]).secret_key == STRIPE_TEST_KEY
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT secret_key FROM margins_stripeconnection WHERE id = %s", [data["id"]])
        (stored,) = cursor.fetchone()
    assert STRIPE_TEST_KEY not in stored
    assert "4eC39HqLyjWDarjtT1zdp7dc" not in stored


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"stripeKey": ""},
        {"stripeKey": 42},
        {"stripeKey": "pk_live_4eC39HqLyjWDarjtT1zdp7dc"},
        {"stripeKey": "sk_live_4eC39HqLyjWDarjtT1zdp7dc"},
        {"stripeKey": "rk_live_short"},
        {"stripeKey": "rk_live_4eC39HqLy jWDarjtT1zdp7dc"},
    ],
)
def test_connect_rejects_bad_key_formats(member_client, organization, localstripe, body):
    response = member_client(role="admin").post("/api/stripe/connect", body, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["field"] == "stripeKey"
    assert not StripeConnection.objects.exists()


def test_test_secret_keys_are_refused_in_production(member_client, organization, localstripe, settings):
    settings.IS_PRODUCTION = True

    response = member_client(role="admin").post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert "production" in response.json()["error"]["message"]


def test_key_that_does_not_authenticate_is_stripe_validation_failed(member_client, organization, localstripe):
    # localstripe refuses restricted keys with 401, exactly as Stripe answers a revoked or unknown key.
    response = member_client(role="admin").post(
        "/api/stripe/connect", {"stripeKey": "rk_live_4eC39HqLyjWDarjtT1zdp7dc"}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "stripe_validation_failed"
    assert not StripeConnection.objects.exists()


@pytest.mark.parametrize("status", [429, 500, None])
def test_stripe_down_at_connect_is_502_not_a_bad_key(member_client, organization, settings, status):
    """A network failure, a rate limit or a Stripe 5xx says nothing about the key: 502, retryable, nothing stored."""
    from tests.margins.http_stub import start_stub

    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    server = None
    if status is None:
        settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # discard port: nothing listens
    else:
        stub, server = start_stub([status], {"error": {"type": "api_error", "message": "busy"}})
        settings.STRIPE_API_BASE = stub.url
    try:
        response = member_client(role="admin").post(
            "/api/stripe/connect", {"stripeKey": "rk_live_4eC39HqLyjWDarjtT1zdp7dc"}, format="json"
        )
    finally:
        if server is not None:
            server.shutdown()

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "stripe_unavailable"
    assert response.json()["error"]["details"] == {"transient": True}
    assert not StripeConnection.objects.exists()


def test_second_connect_is_409(member_client, organization, connected):
    response = member_client(role="admin").post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"


def test_connect_needs_admin_and_pro(member_client, free_organization, localstripe):
    member = member_client(role="member").post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")
    free = member_client(role="owner", org=free_organization).post(
        "/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json"
    )

    assert member.status_code == 403
    assert member.json()["error"]["details"]["required_role"] == "admin"
    assert free.status_code == 403
    assert free.json()["error"]["details"]["upgrade_url"]
    assert not StripeConnection.objects.exists()


def test_api_keys_are_not_accepted_seed_requires_a_session(api_client, localstripe):
    response = api_client.post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


def test_disconnect_cascades_to_revenue_and_mappings(member_client, organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="acme")
    cus = stripe_account.customer(name="Acme", customer_id="acme")
    stripe_account.paid_invoices(cus, count=2)
    services.revenue_sync(organization=organization)
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_Manual1", tag_value="x")
    other = OrganizationFactory()
    CustomerMapping.objects.create(organization=other, stripe_customer_id="cus_Other1", tag_value="theirs")

    response = member_client(role="admin").delete("/api/stripe/disconnect")

    assert response.status_code == 200
    assert response.json() == {"data": {"deleted": True}}
    assert not StripeConnection.objects.filter(organization=organization).exists()
    assert not StripeInvoice.objects.filter(organization=organization).exists()
    assert not StripeCustomer.objects.filter(organization=organization).exists()
    assert not SyncRun.objects.filter(organization=organization).exists()
    assert not CustomerMapping.objects.filter(organization=organization).exists()
    assert CustomerMapping.objects.filter(organization=other).count() == 1


def test_disconnect_when_not_connected_is_404(member_client, organization):
    response = member_client(role="admin").delete("/api/stripe/disconnect")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- revenue-sync ------------------------------------------------------------------------------


def test_manual_sync_answers_the_detailed_counts(member_client, organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="acme")
    cus = stripe_account.customer(name="Acme", customer_id="acme")
    stripe_account.paid_invoices(cus, count=3)
    stripe_account.paid_invoices(stripe_account.customer(name="Euro"), count=1, currency="eur")

    response = member_client(role="member").post("/api/stripe/revenue-sync")

    assert response.status_code == 200
    data = response.json()["data"]
    assert data["orgId"] == str(organization.pk)
    assert data["customersProcessed"] == 2
    assert data["periodsUpdated"] == 1
    assert data["autoMatchesCreated"] == 1
    assert data["invoicesFetched"] == 4
    assert data["invoicesSkipped"] == 1
    assert data["skippedCurrencies"] == {"eur": 1}
    assert isinstance(data["durationMs"], int)


def test_manual_sync_needs_member_role(member_client, connected):
    response = member_client(role="viewer").post("/api/stripe/revenue-sync")

    assert response.status_code == 403
    assert response.json()["error"]["details"]["required_role"] == "member"


def test_manual_sync_when_stripe_rejects_the_key_is_502_and_recorded(member_client, organization, localstripe):
    StripeConnection.objects.create(
        organization=organization, secret_key="rk_live_4eC39HqLyjWDarjtT1zdp7dc", key_prefix="rk_live_4eC3...p7dc"
    )

    response = member_client(role="member").post("/api/stripe/revenue-sync")

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "stripe_sync_failed"
    assert response.json()["error"]["details"] == {"transient": False}
    assert StripeConnection.objects.get(organization=organization).status == "error"
    run = SyncRun.objects.get(organization=organization)
    assert run.status == "failed" and "AuthenticationError" in run.error


def test_cron_secret_syncs_every_connected_pro_organization(anonymous_client, settings, localstripe, stripe_account):
    settings.CRON_SECRET = "cron-secret-value"
    ok_1, ok_2, broken = OrganizationFactory(), OrganizationFactory(), OrganizationFactory()
    free = OrganizationFactory(plan="free")
    for org in (ok_1, ok_2, free):
        services.stripe_connect(organization=org, stripe_key=STRIPE_TEST_KEY)
    StripeConnection.objects.create(
        organization=broken, secret_key="rk_live_4eC39HqLyjWDarjtT1zdp7dc", key_prefix="rk_live_4eC3...p7dc"
    )
    stripe_account.paid_invoices(stripe_account.customer(name="A"), count=1)

    response = anonymous_client.get("/api/stripe/revenue-sync", HTTP_AUTHORIZATION="Bearer cron-secret-value")

    assert response.status_code == 200
    assert response.json() == {"data": {"synced": 2, "errors": 1}}
    assert SyncRun.objects.filter(trigger="cron", status="succeeded").count() == 2
    assert not SyncRun.objects.filter(organization=free).exists()


@pytest.mark.parametrize("header", ["Bearer wrong", "Bearer ", "Basic abc"])
def test_cron_with_a_wrong_secret_is_401(anonymous_client, settings, header):
    settings.CRON_SECRET = "cron-secret-value"

    response = anonymous_client.get("/api/stripe/revenue-sync", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


def test_cron_is_refused_when_no_secret_is_configured(anonymous_client, settings):
    settings.CRON_SECRET = ""

    response = anonymous_client.get("/api/stripe/revenue-sync", HTTP_AUTHORIZATION="Bearer ")

    assert response.status_code == 401


def test_a_session_get_does_not_sync(member_client, organization, connected):
    response = member_client(role="owner").get("/api/stripe/revenue-sync")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.json()["error"]["message"]
    assert not SyncRun.objects.filter(organization=organization).exists()


def test_a_session_post_needs_the_csrf_token(organization, connected):
    from django.test import Client

    from tests.factories import MembershipFactory

    client = Client(enforce_csrf_checks=True)
    client.force_login(MembershipFactory(organization=organization, role="owner").user)

    response = client.post("/api/stripe/revenue-sync")

    assert response.status_code == 403
    assert not SyncRun.objects.filter(organization=organization).exists()
