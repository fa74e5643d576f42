"""COST_PLUS rates end to end: API (and its 400s), model-call events through ingest, draft lines that
show model, tokens, cost and markup; composition with fixed fees, included usage, prepaid credits
and spending-limit charges; calls keep the price they were priced with."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from drf_spectacular.generators import SchemaGenerator

from billing import invoicing
from billing.credits import services as credit_services
from billing.models import Invoice, Rate, RateTier
from costcalc.models import ModelPrice
from events.models import Customer
from tests.accounts.test_schema import assert_matches_schema
from tests.billing.tokens import call, create_catalog, draft, send

MARCH = datetime(2026, 3, 1, tzinfo=UTC)
AT = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_backdate_limit(settings):
    settings.BILLING_MAX_BACKDATE_MONTHS = 10_000  # contracts in March 2026 whatever today is


@pytest.fixture
def catalog(db):
    return create_catalog()


def error(response, status=400):
    assert response.status_code == status, response.content
    return response.json()["error"]


def post(client, url, body):
    response = client.post(url, body, format="json")
    assert response.status_code == 201, response.content
    return response.json()["data"]


@pytest.fixture
def model_calls(api_client):
    """A metric summing the calls' cost per model and its product, one line per model."""
    metric = post(
        api_client,
        "/api/v1/billable-metrics",
        {
            "name": "model call cost",
            "aggregation_type": "SUM",
            "aggregation_key": "cost_microdollars",
            "property_filters": [{"name": "model", "exists": True}],
            "group_keys": ["model"],
        },
    )
    product = post(
        api_client,
        "/api/v1/products",
        {"name": "Model calls", "billable_metric_id": metric["id"], "presentation_group_key": ["model"]},
    )
    card = post(api_client, "/api/v1/rate-cards", {"name": "Cost plus"})
    return {"metric": metric, "product": product, "card": card, "rates": f"/api/v1/rate-cards/{card['id']}/rates"}


def cost_plus_rate(api_client, model_calls, **terms):
    body = {"product_id": model_calls["product"]["id"], "starting_at": "2026-01-01T00:00:00Z", "rate_type": "COST_PLUS"}
    return post(api_client, model_calls["rates"], {**body, **terms})


def contract(api_client, model_calls, organization, customer="acme"):
    Customer.objects.get_or_create(organization=organization, external_id=customer)
    return post(
        api_client,
        "/api/v1/contracts",
        {"customer_id": customer, "rate_card_id": model_calls["card"]["id"], "starting_at": "2026-03-01T00:00:00Z"},
    )


def three_models():
    return [
        draft("acme", AT, [call("openai/gpt-4o", 100_000, 50_000)]),  # 750,000 µ$
        draft("acme", AT, [call("anthropic/claude-3.5-sonnet", 200_000, 100_000)]),  # 2,100,000 µ$
        draft("acme", AT, [call("anthropic/claude-3-haiku", 400_000, 200_000)]),  # 350,000 µ$
    ]


def draft_lines(api_client, customer="acme"):
    customer_row = Customer.objects.get(external_id=customer)
    invoicing.customer_drafts_recompute(customer_id=customer_row.pk, now=NOW)
    invoices = api_client.get(f"/api/v1/customers/{customer}/invoices", {"status": "draft"}).json()["data"]
    (invoice,) = invoices
    return invoice


def test_cost_plus_30_percent_with_a_per_model_markup_and_a_minimum(api_client, catalog, model_calls, organization):
    rate = cost_plus_rate(
        api_client,
        model_calls,
        markup="0.3",
        model_markups={"anthropic/claude-3.5-sonnet": "0.5"},
        minimum_cents="50",
    )
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))

    invoice = draft_lines(api_client)

    assert (rate["rate_type"], rate["markup"], rate["model_markups"]) == (
        "COST_PLUS",
        "0.3",
        {"anthropic/claude-3.5-sonnet": "0.5"},
    )
    lines = [
        (
            line["model"],
            line["tokens"],
            line["cost_microdollars"],
            line["markup"],
            line["quantity"],
            line["amount_cents"],
        )
        for line in invoice["lines"]
    ]
    assert lines == [
        ("anthropic/claude-3-haiku", 600_000, 350_000, "0.3", "35", 50),  # 45.5¢ raised to the 50¢ minimum
        ("anthropic/claude-3.5-sonnet", 300_000, 2_100_000, "0.5", "210", 315),
        ("openai/gpt-4o", 150_000, 750_000, "0.3", "75", 98),  # 97.5¢ → 98¢ (half up, once)
    ]
    assert invoice["total_cents"] == 50 + 315 + 98
    assert {line["rate_type"] for line in invoice["lines"]} == {"COST_PLUS"}


def test_calls_keep_the_price_they_were_priced_with(api_client, catalog, model_calls, organization):
    cost_plus_rate(api_client, model_calls, markup="0.3")
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))
    before = draft_lines(api_client)["total_cents"]
    # A new catalog price from March 15: calls priced before keep their price, later ones get it.
    ModelPrice.objects.create(
        slug="openai/gpt-4o",
        vendor="openai",
        display_name="GPT-4o",
        input_per_mtok=Decimal(25),
        output_per_mtok=Decimal(100),
        effective_from=datetime(2026, 3, 15, tzinfo=UTC),
        source="manual",
    )

    assert draft_lines(api_client)["total_cents"] == before
    send(
        organization,
        [draft("acme", datetime(2026, 3, 16, tzinfo=UTC), [call("openai/gpt-4o", 100_000, 50_000)])],
        now=datetime(2026, 3, 16, 0, 5, tzinfo=UTC),
    )
    gpt = next(line for line in draft_lines(api_client)["lines"] if line["model"] == "openai/gpt-4o")
    assert gpt["cost_microdollars"] == 750_000 + 7_500_000


def test_a_fixed_fee_with_included_usage_then_credits(api_client, catalog, model_calls, organization):
    fee = post(api_client, "/api/v1/products", {"name": "Platform fee", "type": "subscription"})
    post(
        api_client,
        model_calls["rates"],
        {"product_id": fee["id"], "starting_at": "2026-01-01T00:00:00Z", "price": "2000"},
    )
    cost_plus_rate(api_client, model_calls, markup="0.3", included_cents="200")
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))

    invoice = draft_lines(api_client)

    by_model = {line["model"]: line for line in invoice["lines"] if line["rate_type"] == "COST_PLUS"}
    # In presentation order: haiku's 45.5¢ and then 154.5¢ of sonnet's 273¢ are included.
    assert by_model["anthropic/claude-3-haiku"]["amount_cents"] == 0
    assert by_model["anthropic/claude-3.5-sonnet"]["allowance_cents"] == "154.5"
    assert by_model["anthropic/claude-3.5-sonnet"]["amount_cents"] == 119  # 118.5 → 119
    assert by_model["openai/gpt-4o"]["amount_cents"] == 98
    assert invoice["total_cents"] == 2000 + 119 + 98

    customer = Customer.objects.get(external_id="acme")
    credit_services.credit_add(customer=customer, kind="grant", amount_microdollars=5_000_000, reference="welcome")
    invoice = draft_lines(api_client)
    assert (invoice["credits_applied_cents"], invoice["amount_due_cents"]) == (500, 2217 - 500)


def test_spending_limit_charges_include_cost_plus_usage(api_client, catalog, model_calls, organization):
    cost_plus_rate(api_client, model_calls, markup="0.3")
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))
    customer = Customer.objects.get(external_id="acme")

    charges = invoicing.contract_usage_charges(customer_ids=[customer.pk], start=MARCH, end=NOW)

    assert charges == {customer.pk: 46 + 273 + 98}


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({}, "markup"),
        ({"markup": "0.3", "price": "5"}, "price"),
        ({"markup": "-0.1"}, "markup"),
        ({"markup": "0.3", "model_markups": {"openai/gpt-4o": "-1"}}, "model_markups"),
        ({"markup": "0.3", "model_markups": {"openai/gpt-4o": "0.1234567890123"}}, "model_markups"),
        ({"markup": "0.3", "included_cents": "5", "included_tokens": 10}, "included_tokens"),
        ({"markup": "0.3", "minimum_cents": "-1"}, "minimum_cents"),
        ({"markup": "0.30000000000001"}, "markup"),
        ({"markup": "0.3", "minimum_cents": "5", "tiers": [{"size": "10", "price": "1"}, {"price": "0.5"}]}, "minimum"),
        ({"markup": "0.3", "tiers": [{"size": "10", "price": "1"}, {"size": "5", "price": "0.5"}]}, "tiers"),
    ],
)
def test_bad_cost_plus_terms_are_a_400_and_store_nothing(api_client, model_calls, terms, field):
    body = {"product_id": model_calls["product"]["id"], "starting_at": "2026-01-01T00:00:00Z", "rate_type": "COST_PLUS"}

    problem = error(api_client.post(model_calls["rates"], {**body, **terms}, format="json"))

    assert problem["code"] == "validation_error" and problem["details"]["field"].startswith(field), problem
    assert not Rate.objects.exists()


def test_cost_plus_needs_a_product_summing_call_cost_and_lines_per_model_for_model_markups(api_client, model_calls):
    count = post(api_client, "/api/v1/billable-metrics", {"name": "calls", "aggregation_type": "COUNT"})
    counted = post(api_client, "/api/v1/products", {"name": "Calls", "billable_metric_id": count["id"]})
    flat = post(
        api_client,
        "/api/v1/products",
        {"name": "Cost, one line", "billable_metric_id": model_calls["metric"]["id"]},
    )
    body = {"starting_at": "2026-01-01T00:00:00Z", "rate_type": "COST_PLUS", "markup": "0.3"}

    wrong_metric = error(api_client.post(model_calls["rates"], {**body, "product_id": counted["id"]}, format="json"))
    one_line = error(
        api_client.post(
            model_calls["rates"],
            {**body, "product_id": flat["id"], "model_markups": {"openai/gpt-4o": "1"}},
            format="json",
        )
    )
    markup_on_flat = error(
        api_client.post(
            model_calls["rates"], {**body, "rate_type": "FLAT", "price": "1", "product_id": flat["id"]}, format="json"
        )
    )

    assert wrong_metric["details"]["field"] == "rate_type" and "cost_microdollars" in wrong_metric["message"]
    assert one_line["details"]["field"] == "model_markups"
    assert markup_on_flat["details"]["field"] == "markup"
    assert not Rate.objects.exists()


def test_tier_prices_and_sizes_share_flats_validation(api_client, seed_pricing):
    url = f"/api/v1/rate-cards/{seed_pricing['rate_card'].pk}/rates"
    body = {
        "product_id": str(seed_pricing["product"].pk),
        "starting_at": "2010-01-01T00:00:00Z",
        "ending_before": "2011-01-01T00:00:00Z",
        "rate_type": "TIERED",
    }
    flat = error(api_client.post(url, {**body, "rate_type": "FLAT", "price": "0.0000000000004"}, format="json"))
    price = error(
        api_client.post(
            url, {**body, "tiers": [{"size": "10", "price": "1"}, {"price": "0.0000000000004"}]}, format="json"
        )
    )
    size = error(
        api_client.post(
            url, {**body, "tiers": [{"size": "0.0000000000001", "price": "1"}, {"price": "1"}]}, format="json"
        )
    )

    assert flat["details"]["field"] == "price"
    assert price["details"]["field"] == "tiers" and "decimal places" in price["message"]
    assert size["details"]["field"] == "tiers" and "decimal places" in size["message"]
    assert Rate.objects.count() == 1 and not RateTier.objects.exists()  # only seed_pricing's own rate


def test_the_invoice_page_and_admin_show_cost_plus_lines(
    api_client, catalog, model_calls, organization, admin_client_logged_in
):
    cost_plus_rate(api_client, model_calls, markup="0.3")
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))
    draft_lines(api_client)
    invoice = Invoice.objects.get()

    page = admin_client_logged_in.get(f"/admin/billing/invoice/{invoice.pk}/change/")

    assert page.status_code == 200
    assert b"anthropic/claude-3.5-sonnet" in page.content and b"2100000" in page.content


def test_cost_plus_rates_and_lines_match_the_openapi_schema(api_client, catalog, model_calls, organization):
    openapi = SchemaGenerator().get_schema(request=None, public=True)
    body = {
        "product_id": model_calls["product"]["id"],
        "starting_at": "2026-01-01T00:00:00Z",
        "rate_type": "COST_PLUS",
        "markup": "0.3",
        "model_markups": {"openai/gpt-4o": "0.5"},
        "included_tokens": 1000,
    }
    created = api_client.post(model_calls["rates"], body, format="json")
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))
    draft_lines(api_client)

    assert_matches_schema(openapi, created, "/api/v1/rate-cards/{id}/rates", "post")
    invoices = api_client.get("/api/v1/customers/acme/invoices")
    assert_matches_schema(openapi, invoices, "/api/v1/customers/{customer_id}/invoices", "get")
    assert invoices.json()["data"][0]["lines"][0]["tokens"] == 600_000


def test_the_readme_worked_example_cost_plus_30_percent(api_client, catalog, model_calls, organization):
    """README, billing, "Worked example: token billing at cost plus 30 %"."""
    cost_plus_rate(api_client, model_calls, markup="0.3")
    contract(api_client, model_calls, organization)
    send(organization, three_models(), now=AT + timedelta(minutes=1))

    invoice = draft_lines(api_client)

    assert [
        (
            line["model"],
            line["tokens"],
            line["cost_microdollars"],
            line["quantity"],
            line["unit_price"],
            line["amount_cents"],
        )
        for line in invoice["lines"]
    ] == [
        ("anthropic/claude-3-haiku", 600_000, 350_000, "35", "1.3", 46),
        ("anthropic/claude-3.5-sonnet", 300_000, 2_100_000, "210", "1.3", 273),
        ("openai/gpt-4o", 150_000, 750_000, "75", "1.3", 98),
    ]
    assert invoice["total_cents"] == 417
