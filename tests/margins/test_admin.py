"""Django admin of margins: every page renders, operators review pending auto-matches, and the Stripe key
is never displayed."""

import pytest
from django.utils import timezone

from margins import services
from margins.models import (
    CustomerHealth,
    CustomerMapping,
    MarginSettings,
    StripeConnection,
    StripeCustomer,
    StripeInvoice,
    SyncRun,
    WebhookDelivery,
    WebhookEndpoint,
)
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

RESTRICTED_KEY = "rk_live_4eC39HqLyjWDarjtT1zdp7dc"


def pending(organization, stripe_id, tag="acme", status="pending") -> CustomerMapping:
    return CustomerMapping.objects.create(
        organization=organization, stripe_customer_id=stripe_id, tag_value=tag, match_type="auto", status=status,
        reason="similarity", confidence="0.75",
    )


def _one_of_everything(organization):
    now = timezone.now()
    connection = StripeConnection.objects.create(
        organization=organization, secret_key=RESTRICTED_KEY, key_prefix="rk_live_4eC3...p7dc"
    )
    StripeCustomer.objects.create(
        organization=organization, connection=connection, stripe_id="cus_a1", name="Acme", raw={}, synced_at=now
    )
    StripeInvoice.objects.create(
        organization=organization, connection=connection, stripe_id="in_a1", stripe_customer_id="cus_a1",
        status="paid", currency="usd", amount_paid=100, amount_paid_microdollars=1_000_000, stripe_created=now,
        paid_at=now, period="2026-04", raw={}, synced_at=now,
    )
    SyncRun.objects.create(organization=organization, connection=connection, trigger="manual", started_at=now)
    pending(organization, "cus_a1")
    MarginSettings.objects.create(organization=organization)
    CustomerHealth.objects.create(organization=organization, tag_value="acme", period="2026-04", tier="healthy")
    endpoint, _ = services.webhook_endpoint_create(organization=organization, url="https://hooks.example.com/tl")
    WebhookDelivery.objects.create(organization=organization, endpoint=endpoint, event_type="x", payload={})
    return connection


@pytest.mark.parametrize(
    "model",
    [StripeConnection, StripeCustomer, StripeInvoice, SyncRun, CustomerMapping, MarginSettings, CustomerHealth,
     WebhookEndpoint, WebhookDelivery],
)
def test_list_and_change_pages_render(admin_client_logged_in, organization, model):
    _one_of_everything(organization)
    meta = model._meta
    row = model.objects.first()

    listing = admin_client_logged_in.get(f"/admin/{meta.app_label}/{meta.model_name}/")
    detail = admin_client_logged_in.get(f"/admin/{meta.app_label}/{meta.model_name}/{row.pk}/change/")

    assert listing.status_code == 200
    assert detail.status_code == 200
    assert RESTRICTED_KEY not in listing.content.decode() + detail.content.decode()


@pytest.mark.parametrize(("action", "status"), [("approve_selected", "active"), ("reject_selected", "rejected")])
def test_actions_review_pending_auto_matches_only(admin_client_logged_in, organization, action, status):
    first = pending(organization, "cus_p1")
    second = pending(organization, "cus_p2", tag="beta")
    already_active = pending(organization, "cus_act", tag="gamma", status="active")
    theirs = pending(OrganizationFactory(), "cus_p1")

    response = admin_client_logged_in.post(
        "/admin/margins/customermapping/",
        {"action": action, "_selected_action": [str(first.pk), str(second.pk), str(already_active.pk)]},
        follow=True,
    )

    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert any("2 mapping(s)" in m for m in messages)
    assert any("1 selected mapping(s) were not pending" in m for m in messages)
    for mapping in (first, second, already_active, theirs):
        mapping.refresh_from_db()
    assert (first.status, second.status) == (status, status)
    assert already_active.status == "active"
    assert theirs.status == "pending"


def test_stripe_connection_page_never_shows_the_key(admin_client_logged_in, organization):
    connection = _one_of_everything(organization)

    page = admin_client_logged_in.get(f"/admin/margins/stripeconnection/{connection.pk}/change/").content.decode()

    assert "rk_live_4eC3...p7dc" in page
    assert RESTRICTED_KEY not in page
