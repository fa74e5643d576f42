"""The OpenAPI schema says what collection's endpoints answer (strict: no undocumented field)."""

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests.accounts.test_schema import assert_matches_schema
from tests.billing.collection.helpers import billed_customer, finalize_february, tokens

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def test_collection_endpoints_match_the_schema(
    openapi, api_client, organization, pricing, stripe_billing, clock, django_capture_on_commit_callbacks
):
    customer = billed_customer(organization, pricing, usage=[tokens(2_000_000)], currency="EUR")
    _, invoice = finalize_february(customer, django_capture_on_commit_callbacks)
    config = "/api/v1/customers/{customer_id}/billing-configuration"
    url = config.format(customer_id="acme-ops")
    assert_matches_schema(openapi, api_client.get(url), config, "get")
    put = api_client.put(url, {"bill_through_stripe": True, "currency": "EUR"}, format="json")
    assert_matches_schema(openapi, put, config, "put")
    invoice_path = "/api/v1/customers/{customer_id}/invoices/{id}"
    shown = api_client.get(f"/api/v1/customers/acme-ops/invoices/{invoice.pk}")
    assert shown.json()["data"]["external_invoice"]["state"] == "finalized"
    assert_matches_schema(openapi, shown, invoice_path, "get")
    reconciliation = api_client.get("/api/v1/reconciliation?period=2026-02")
    assert reconciliation.json()["data"]["customers"]
    assert_matches_schema(openapi, reconciliation, "/api/v1/reconciliation", "get")
