"""The API of collection: billing configuration per customer, the invoice's Stripe twin and retry,
and the reconciliation (JSON and CSV)."""

import csv
import io

import pytest

from billing.collection.models import CustomerBillingConfig, ExternalInvoice
from billing.models import Invoice
from tests.billing.collection.helpers import (
    billed_customer,
    finalize_february,
    invoice_event,
    post_event,
    tokens,
)
from tests.billing.credits.helpers import save_default_card
from tests.factories import CustomerFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

CONFIG = "/api/v1/customers/{}/billing-configuration"


def test_a_customer_without_configuration_is_not_billed_through_stripe(api_client, organization):
    CustomerFactory(organization=organization, external_id="plain")
    body = api_client.get(CONFIG.format("plain")).json()["data"]
    assert body["configured"] is False and body["bill_through_stripe"] is False
    assert (body["currency"], body["collection_method"], body["stripe_customer_id"]) == (
        "USD", "charge_automatically", None
    )


def test_put_sets_the_whole_configuration_and_delete_removes_it(api_client, organization):
    customer = CustomerFactory(organization=organization, external_id="acme")
    response = api_client.put(CONFIG.format(customer.uuid), {
        "bill_through_stripe": True, "currency": "eur", "collection_method": "send_invoice", "days_until_due": 14,
        "auto_advance": False, "send_zero_amount_invoices": True, "stripe_customer_id": "cus_existing123",
    }, format="json")

    assert response.status_code == 200, response.content
    body = response.json()["data"]
    assert body | {"updated_at": None} == {
        "customer_id": str(customer.uuid), "configured": True, "bill_through_stripe": True, "currency": "EUR",
        "collection_method": "send_invoice", "days_until_due": 14, "auto_advance": False,
        "send_zero_amount_invoices": True, "stripe_customer_id": "cus_existing123", "updated_at": None,
    }
    customer.refresh_from_db()
    assert customer.stripe_customer_id == "cus_existing123"  # one place for the link, read by top-ups and margins

    assert api_client.delete(CONFIG.format("acme")).json()["data"]["configured"] is False
    assert not CustomerBillingConfig.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"bill_through_stripe": True, "collection_method": "send_invoice"}, "days_until_due"),
        ({"bill_through_stripe": True, "days_until_due": 10}, "days_until_due"),
        ({"bill_through_stripe": True, "currency": "E1R"}, "currency"),
        ({"bill_through_stripe": True, "stripe_customer_id": "acct_123"}, "stripe_customer_id"),
        ({"bill_through_stripe": True, "stripe_customer_id": "cus_12\u00003"}, "stripe_customer_id"),
        ({"bill_through_stripe": True, "collection_method": "cash"}, "collection_method"),
        ({"currency": "USD"}, "bill_through_stripe"),
    ],
)
def test_bad_configuration_is_a_400_naming_the_field_and_writes_nothing(api_client, organization, body, field):
    CustomerFactory(organization=organization, external_id="acme")
    response = api_client.put(CONFIG.format("acme"), body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["details"]["field"] == field
    assert not CustomerBillingConfig.objects.exists()


def test_a_stripe_customer_linked_to_another_customer_is_refused(api_client, organization):
    CustomerFactory(organization=organization, external_id="first", stripe_customer_id="cus_taken")
    CustomerFactory(organization=organization, external_id="second")
    response = api_client.put(
        CONFIG.format("second"), {"bill_through_stripe": True, "stripe_customer_id": "cus_taken"}, format="json"
    )
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "stripe_customer_id"


def test_malformed_json_is_a_400(api_client, organization):
    CustomerFactory(organization=organization, external_id="acme")
    response = api_client.put(CONFIG.format("acme"), data="{not json", content_type="application/json")
    assert response.status_code == 400


def test_another_tenants_customer_is_a_404_and_writes_need_the_admin_role(api_client, organization, member_client):
    CustomerFactory(organization=OrganizationFactory(), external_id="theirs")
    assert api_client.get(CONFIG.format("theirs")).status_code == 404
    assert api_client.put(CONFIG.format("theirs"), {"bill_through_stripe": True}, format="json").status_code == 404

    CustomerFactory(organization=organization, external_id="ours")
    member = member_client(role="member")
    assert member.get(CONFIG.format("ours")).status_code == 200
    refused = member.put(CONFIG.format("ours"), {"bill_through_stripe": True}, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert member_client(role="admin").put(
        CONFIG.format("ours"), {"bill_through_stripe": True}, format="json"
    ).status_code == 200


def test_invoices_of_customers_not_billed_through_stripe_have_no_external_invoice(
    api_client, organization, seed_pricing
):
    from billing import services
    from tests.billing.collection.helpers import FEBRUARY

    customer = CustomerFactory(organization=organization, external_id="plain")
    services.contract_create(organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
                             starting_at=FEBRUARY)
    (invoice,) = api_client.get("/api/v1/customers/plain/invoices").json()["data"][:1]
    assert invoice["external_invoice"] is None


def test_open_drafts_take_the_currency_at_once(api_client, organization, pricing, clock):
    customer = billed_customer(organization, pricing)
    assert set(Invoice.objects.filter(customer=customer).values_list("currency", flat=True)) == {"USD"}
    api_client.put(CONFIG.format("acme-ops"), {"bill_through_stripe": True, "currency": "GBP"}, format="json")
    assert set(Invoice.objects.filter(customer=customer).values_list("currency", flat=True)) == {"GBP"}


def test_retry_is_a_409_for_drafts_and_customers_not_billed_and_a_404_for_other_tenants(
    api_client, organization, pricing, clock
):
    billed_customer(organization, pricing)
    draft = Invoice.objects.filter(status="draft").first()
    url = f"/api/v1/customers/acme-ops/invoices/{draft.pk}/stripe/retry"
    assert api_client.post(url).status_code == 409
    assert api_client.post("/api/v1/customers/acme-ops/invoices/not-a-uuid/stripe/retry").status_code == 404
    assert api_client.post(f"/api/v1/customers/nobody/invoices/{draft.pk}/stripe/retry").status_code == 404


# --- Reconciliation ----------------------------------------------------------------------------------


@pytest.fixture
def february(organization, pricing, stripe_billing, stripe_api, clock, client, django_capture_on_commit_callbacks):
    """Four customers' February: one paid through Stripe, one open past its due date, one whose push
    failed, one not billed through Stripe."""
    paid = billed_customer(organization, pricing, external_id="paid", usage=[tokens(2_000_000)])
    late = billed_customer(organization, pricing, external_id="late", collection_method="send_invoice",
                           days_until_due=1, usage=[tokens(4_000_000)])
    billed_customer(organization, pricing, external_id="broken", stripe_customer_id="cus_gone",
                    usage=[tokens(1_000_000)])
    plain = CustomerFactory(organization=organization, external_id="plain", name="Plain")
    from billing import services
    from tests.billing.collection.helpers import FEBRUARY
    from tests.billing.conftest import ingest

    services.contract_create(organization=organization, customer=plain, rate_card=pricing["rate_card"],
                             starting_at=FEBRUARY)
    ingest(organization, plain, [tokens(6_000_000)])
    finalize_february(paid, django_capture_on_commit_callbacks)
    twin = ExternalInvoice.objects.get(customer=paid)
    save_default_card(stripe_api, twin.stripe_customer_id)
    stripe_api.v1.invoices.pay(twin.stripe_invoice_id)
    paid_copy = stripe_api.v1.invoices.retrieve(twin.stripe_invoice_id).to_dict()
    assert post_event(client, organization, invoice_event(paid_copy, "invoice.paid")).status_code == 200
    clock.shift(3 * 86400)  # three days later: "late" is past its one-day due date
    return {"late": late}


def test_reconciliation_shows_metered_invoiced_collected_and_flags(api_client, february):
    response = api_client.get("/api/v1/reconciliation?period=2026-02")

    assert response.status_code == 200, response.content
    body = response.json()["data"]
    assert body["period"] == "2026-02"
    rows = {row["customer_id"]: row for row in body["customers"]}
    assert {key: rows["paid"][key] for key in ("metered_cents", "due_cents", "invoiced_cents", "collected_cents",
                                                "outstanding_cents", "flags")} == {
        "metered_cents": 100, "due_cents": 100, "invoiced_cents": 100, "collected_cents": 100,
        "outstanding_cents": 0, "flags": [],
    }
    assert (rows["late"]["invoiced_cents"], rows["late"]["collected_cents"]) == (200, 0)
    assert [flag["code"] for flag in rows["late"]["flags"]] == ["unpaid_past_due"]
    assert [flag["code"] for flag in rows["broken"]["flags"]] == ["failed"]
    assert "InvalidRequestError" in rows["broken"]["flags"][0]["message"]
    assert rows["plain"] | {"flags": None} == rows["plain"] | {
        "billed_through_stripe": False, "metered_cents": 300, "invoiced_cents": 0, "collected_cents": 0,
        "flags": None,
    }
    assert rows["plain"]["flags"] == []
    assert body["flag_counts"] == {
        "unsent": 0, "failed": 1, "unpaid_past_due": 1, "edited_in_stripe": 0, "paid_but_not_metered": 0,
    }


def test_reconciliation_as_csv(api_client, february):
    response = api_client.get("/api/v1/reconciliation?period=2026-02&format=csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="reconciliation-2026-02.csv"'
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["customer_id"] for row in rows] == ["broken", "late", "paid", "plain"]
    late = rows[1]
    assert (late["invoiced_cents"], late["collected_cents"], late["flags"]) == ("200", "0", "unpaid_past_due")


def test_an_invoice_finalized_before_billing_through_stripe_is_unsent_until_pushed(
    api_client, organization, pricing, stripe_billing, clock, django_capture_on_commit_callbacks
):
    customer = billed_customer(organization, pricing, usage=[tokens(2_000_000)])
    CustomerBillingConfig.objects.filter(customer=customer).update(bill_through_stripe=False)
    _, invoice = finalize_february(customer, django_capture_on_commit_callbacks)
    CustomerBillingConfig.objects.filter(customer=customer).update(bill_through_stripe=True)
    (row,) = api_client.get("/api/v1/reconciliation?period=2026-02").json()["data"]["customers"]
    assert [flag["code"] for flag in row["flags"]] == ["unsent"]

    with django_capture_on_commit_callbacks(execute=True):
        assert api_client.post(f"/api/v1/customers/acme-ops/invoices/{invoice.pk}/stripe/retry").status_code == 202

    (row,) = api_client.get("/api/v1/reconciliation?period=2026-02").json()["data"]["customers"]
    assert (row["flags"], row["invoiced_cents"]) == ([], 100)


@pytest.mark.parametrize(
    ("query", "field"), [("period=2026-13", "period"), ("period=26-02", "period"), ("format=xml", "format")]
)
def test_reconciliation_rejects_a_bad_period_or_format(api_client, query, field):
    response = api_client.get(f"/api/v1/reconciliation?{query}")
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == field


def test_reconciliation_of_another_tenant_shows_nothing_of_ours(february, organization):
    from rest_framework.test import APIClient

    from accounts.services import api_key_create

    _, key = api_key_create(organization=OrganizationFactory(), name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/reconciliation?period=2026-02").json()["data"]["customers"] == []
