"""Metronome's paths (billing/compat/metronome.py) beyond the SDK walk-through in tests/node: invoice
statuses and paging, tenancy, bad input, roles."""

from decimal import Decimal

import pytest
import time_machine

from billing import invoicing, services
from billing.models import Invoice
from tests.billing.conftest import utc
from tests.factories import CustomerFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(utc(2026, 6, 10, 12), tick=False):
        yield


@pytest.fixture
def invoices(frozen_clock, organization, customer, seed_pricing, settings):
    """Three monthly invoices: April void, May finalized, June draft (clock frozen at 2026-06-10)."""
    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    contract = services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=utc(2026, 4, 1)
    )
    invoicing.invoices_finalize_due()
    april = Invoice.objects.get(contract=contract, period_start=utc(2026, 4, 1))
    invoicing.invoice_set_status(invoice=april, status="void")
    return contract


def url(customer) -> str:
    return f"/v1/customers/{customer.uuid}/invoices"


def test_statuses_are_metronomes_and_filter_case_insensitively(api_client, customer, invoices):
    body = api_client.get(url(customer)).json()
    assert [(row["status"], row["start_timestamp"]) for row in body["data"]] == [
        ("DRAFT", "2026-06-01T00:00:00Z"), ("FINALIZED", "2026-05-01T00:00:00Z"), ("VOID", "2026-04-01T00:00:00Z"),
    ]  # fmt: skip
    assert body["next_page"] is None
    assert [row["status"] for row in api_client.get(url(customer), {"status": "draft"}).json()["data"]] == ["DRAFT"]
    bad = api_client.get(url(customer), {"status": "PAID"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["field"] == "status"


def test_pages_follow_next_page(api_client, customer, invoices):
    first = api_client.get(url(customer), {"limit": 2}).json()
    assert len(first["data"]) == 2 and first["next_page"]
    second = api_client.get(url(customer), {"limit": 2, "next_page": first["next_page"]}).json()
    assert [row["status"] for row in second["data"]] == ["VOID"] and second["next_page"] is None
    assert api_client.get(url(customer), {"limit": 0}).status_code == 400


def test_another_tenants_customer_and_rate_card_are_not_found(api_client):
    other = OrganizationFactory(name="Other")
    theirs = CustomerFactory(organization=other, external_id="theirs")
    card = services.rate_card_create(organization=other, name="Theirs")
    assert api_client.get(f"/v1/customers/{theirs.uuid}/invoices").status_code == 404
    added = api_client.post(
        "/v1/contract-pricing/rate-cards/addRate",
        {"rate_card_id": str(card.pk), "product_id": str(card.pk), "entitled": True, "rate_type": "FLAT",
         "starting_at": "2026-01-01T00:00:00Z", "price": 1},
        format="json",
    )  # fmt: skip
    assert added.status_code == 400 and added.json()["error"]["details"]["field"] == "rate_card_id"


def test_creates_answer_metronomes_data_id(api_client, organization, seed_pricing):
    created = api_client.post("/v1/contract-pricing/rate-cards/create", {"name": "Pro"}, format="json")
    assert created.status_code == 200 and set(created.json()) == {"data"} and set(created.json()["data"]) == {"id"}
    rate = api_client.post(
        "/v1/contract-pricing/rate-cards/addRate",
        {"rate_card_id": created.json()["data"]["id"], "product_id": str(seed_pricing["product"].pk), "entitled": True,
         "rate_type": "TIERED", "starting_at": "2026-01-01T00:00:00Z",
         "tiers": [{"size": 1000, "price": 2}, {"price": Decimal("1.5")}]},
        format="json",
    ).json()["data"]  # fmt: skip
    assert rate == {"rate_type": "TIERED", "credit_type": {"id": "USD", "name": "USD (cents)"}, "quantity": 1,
                    "tiers": [{"price": 2, "size": 1000}, {"price": 1.5}]}  # fmt: skip


def test_configuration_writes_need_the_admin_role(member_client, organization):
    client = member_client(role="member")
    assert client.post("/v1/contract-pricing/rate-cards/create", {"name": "x"}, format="json").status_code == 403
    assert client.post("/v1/customers", {"name": "A customer"}, format="json").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/customers", {"name": "A", "custom_fields": {"tier": "gold"}}, "custom_fields"),
        ("/v1/contract-pricing/rate-cards/create", {"name": "A", "aliases": [{"name": "a"}]}, "aliases"),
        ("/v1/contracts/create", {"customer_id": "x", "starting_at": "2026-06-01T00:00:00Z", "commits": []}, "commits"),
    ],
)
def test_metronome_options_we_do_not_implement_are_refused_not_dropped(api_client, path, body, field):
    response = api_client.post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field
