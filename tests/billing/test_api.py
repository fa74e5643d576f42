"""Billing API: Metronome-style configuration, per-customer invoices in seed 004 shapes, tenant isolation."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from billing import invoicing, periods, services
from billing.models import BillableMetric, Contract, Invoice
from tests.billing.conftest import ingest, utc
from tests.factories import CustomerFactory, OrganizationFactory


def month_start():
    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def recent():
    return max(timezone.now() - timedelta(minutes=5), month_start())


def error(response, status=400):
    assert response.status_code == status, response.content
    return response.json()["error"]


# --- configuration ---------------------------------------------------------------------------


def test_the_seed_flow_through_the_api(api_client, organization, customer, django_capture_on_commit_callbacks):
    metric = api_client.post(
        "/api/v1/billable-metrics",
        {
            "name": "langModel4",
            "event_type_filter": {"in_values": ["langModel4"]},
            "property_filters": [{"name": "tokens", "exists": True}, {"name": "user_id", "exists": True}],
            "aggregation_key": "tokens",
            "aggregation_type": "sum",
            "group_keys": [["user_id"]],
        },
        format="json",
    )
    assert metric.status_code == 201, metric.content
    metric = metric.json()["data"]
    assert metric["aggregation_type"] == "SUM" and metric["group_keys"] == [["user_id"]]

    product = api_client.post(
        "/api/v1/products",
        {
            "name": "Language Model 4 Tokens (millions)",
            "type": "usage",
            "billable_metric_id": metric["id"],
            "quantity_conversion": {"conversion_factor": 1000000, "operation": "divide", "name": "million tokens"},
            "stripe_product_id": "prod_123",
        },
        format="json",
    ).json()["data"]
    assert product["quantity_conversion"] == {
        "conversion_factor": "1000000",
        "operation": "DIVIDE",
        "name": "million tokens",
    }
    card = api_client.post("/api/v1/rate-cards", {"name": "Standard"}, format="json").json()["data"]
    rate = api_client.post(
        f"/api/v1/rate-cards/{card['id']}/rates",
        {
            "product_id": product["id"],
            "starting_at": "2024-01-01T00:00:00Z",
            "entitled": True,
            "rate_type": "FLAT",
            "price": 50,
        },
        format="json",
    )
    assert rate.status_code == 201, rate.content
    assert rate.json()["data"]["price"] == "50"

    ingest(
        organization,
        customer,
        [{"event_type": "langModel4", "occurred_at": recent(), "properties": {"tokens": 1_000_000, "user_id": "u1"}}],
    )
    with django_capture_on_commit_callbacks(execute=True):  # the contract queues the draft recompute on commit
        contract = api_client.post(
            "/api/v1/contracts",
            {
                "customer_id": "team@example.com",
                "rate_card_id": card["id"],
                "starting_at": month_start().isoformat(),
            },
            format="json",
        )
    assert contract.status_code == 201, contract.content
    assert contract.json()["data"]["usage_statement_schedule"] == {"frequency": "MONTHLY", "day": "FIRST_OF_MONTH"}

    preview = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-preview")
    assert preview.status_code == 200
    body = preview.json()  # seed 004 shape: the bare object, no envelope
    assert body["status"] == "draft" and body["currency"] == "usd"
    assert (body["amount_due"], body["amount_paid"], body["amount_remaining"]) == (50, 0, 50)
    (line,) = body["invoice_lines"]
    assert line["amount"] == 50 and line["quantity"] == 1 and line["pricing"] == {"unit_amount_decimal": "50"}
    assert line["period"] == {"start": int(month_start().timestamp()), "end": body["period_end"]}
    assert line["pretax_credit_amounts"] == []


def test_metric_validation_names_the_field(api_client):
    missing_key = error(
        api_client.post("/api/v1/billable-metrics", {"name": "m", "aggregation_type": "SUM"}, format="json")
    )
    bad_filter = error(
        api_client.post(
            "/api/v1/billable-metrics",
            {"name": "m", "aggregation_type": "COUNT", "property_filters": [{"name": "x", "bogus": 1}]},
            format="json",
        )
    )
    bad_type = error(
        api_client.post("/api/v1/billable-metrics", {"name": "m", "aggregation_type": "AVG"}, format="json")
    )
    api_client.post("/api/v1/billable-metrics", {"name": "dup", "aggregation_type": "COUNT"}, format="json")
    duplicate = error(
        api_client.post("/api/v1/billable-metrics", {"name": "dup", "aggregation_type": "COUNT"}, format="json")
    )

    assert missing_key["code"] == "validation_error" and missing_key["details"]["field"] == "aggregation_key"
    assert bad_filter["details"]["field"] == "property_filters" and "bogus" in bad_filter["message"]
    assert bad_type["details"]["field"] == "aggregation_type"
    assert duplicate["details"]["field"] == "name"


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"group_keys": "user_id"}, "group_keys"),  # a string, not a list: must not become u, s, e, r, ...
        ({"group_keys": ["user\x00"]}, "group_keys"),
        ({"event_type_filter": {"in_values": ["chat\x00"]}}, "event_type_filter"),
        ({"property_filters": [{"name": "region", "in_values": ["eu\x00"]}]}, "property_filters"),
        ({"property_filters": [{"name": "reg\x00ion", "exists": True}]}, "property_filters"),
    ],
)
def test_metric_definitions_with_nul_characters_or_a_string_for_group_keys_are_a_400(api_client, extra, field):
    response = api_client.post(
        "/api/v1/billable-metrics", {"name": "m", "aggregation_type": "COUNT", **extra}, format="json"
    )

    assert error(response)["details"]["field"] == field
    assert not BillableMetric.objects.exists()


def test_overlapping_rates_for_one_product_on_one_card_are_a_400_on_starting_at(api_client, seed_pricing):
    card, product = seed_pricing["rate_card"], seed_pricing["product"]
    url = f"/api/v1/rate-cards/{card.pk}/rates"

    overlap = error(
        api_client.post(
            url, {"product_id": str(product.pk), "starting_at": "2025-06-01T00:00:00Z", "price": "40"}, format="json"
        )
    )
    off_hour = error(
        api_client.post(
            url,
            {
                "product_id": str(product.pk),
                "starting_at": "2019-06-01T00:30:00Z",
                "ending_before": "2020-01-01T00:00:00Z",
                "price": "40",
            },
            format="json",
        )
    )
    tiered = api_client.post(
        url,
        {
            "product_id": str(product.pk),
            "starting_at": "2019-01-01T00:00:00Z",
            "ending_before": "2020-01-01T00:00:00Z",
            "rate_type": "TIERED",
            "tiers": [{"size": "1000", "price": "5"}, {"price": "3"}],
        },
        format="json",
    )
    bad_tiers = error(
        api_client.post(
            url,
            {
                "product_id": str(product.pk),
                "starting_at": "2018-01-01T00:00:00Z",
                "ending_before": "2019-01-01T00:00:00Z",
                "rate_type": "TIERED",
                "tiers": [{"price": "5"}, {"price": "3"}],
            },
            format="json",
        )
    )

    assert overlap["code"] == "validation_error" and overlap["details"]["field"] == "starting_at"
    assert "Overlaps" in overlap["message"]
    assert off_hour["details"]["field"] == "starting_at" and "whole hour" in off_hour["message"]
    assert tiered.status_code == 201 and tiered.json()["data"]["tiers"] == [
        {"size": "1000", "price": "5"},
        {"size": None, "price": "3"},
    ]
    assert bad_tiers["details"]["field"] == "tiers"
    listed = api_client.get(url).json()["data"]
    assert [rate["starting_at"][:4] for rate in listed] == ["2019", "2020"]


def test_contract_with_overrides_and_overlap_rules(api_client, organization, customer, seed_pricing):
    body = {
        "customer_id": str(customer.uuid),
        "rate_card_id": str(seed_pricing["rate_card"].pk),
        "starting_at": "2026-01-01T00:00:00Z",
        "ending_before": "2026-03-01T00:00:00Z",
        "usage_statement_schedule": {"frequency": "MONTHLY", "day": "CONTRACT_START"},
        "overrides": [
            {
                "product_id": str(seed_pricing["product"].pk),
                "type": "OVERWRITE",
                "overwrite_rate": {"rate_type": "FLAT", "price": "30"},
            },
        ],
    }

    created = api_client.post("/api/v1/contracts", body, format="json")
    again = error(api_client.post("/api/v1/contracts", body, format="json"))
    bad_override = error(
        api_client.post(
            "/api/v1/contracts",
            {
                **body,
                "starting_at": "2027-01-01T00:00:00Z",
                "ending_before": None,
                "overrides": [{"product_id": str(seed_pricing["product"].pk), "type": "MULTIPLIER"}],
            },
            format="json",
        )
    )

    assert created.status_code == 201, created.content
    data = created.json()["data"]
    assert data["overrides"][0]["overwrite_rate"] == {"rate_type": "FLAT", "price": "30"}
    assert data["usage_statement_schedule"]["day"] == "CONTRACT_START"
    assert again["details"]["field"] == "starting_at"
    assert bad_override["details"]["field"].startswith("overrides")
    listed = api_client.get("/api/v1/contracts", {"customer_id": "team@example.com"}).json()["data"]
    assert [row["id"] for row in listed] == [data["id"]]


def test_readers_read_and_only_admins_write(member_client, seed_pricing):
    viewer = member_client(role="viewer")
    member = member_client(role="member")

    assert viewer.get("/api/v1/products").status_code == 200
    assert error(member.post("/api/v1/rate-cards", {"name": "x"}, format="json"), 403)["code"] == "forbidden"
    assert member_client(role="admin").post("/api/v1/rate-cards", {"name": "x"}, format="json").status_code == 201


def test_the_api_needs_authentication(anonymous_client, customer):
    for url in [
        "/api/v1/billable-metrics",
        "/api/v1/products",
        "/api/v1/rate-cards",
        "/api/v1/contracts",
        f"/api/v1/customers/{customer.uuid}/invoices",
        f"/api/v1/customers/{customer.uuid}/billing/invoice-preview",
    ]:
        assert error(anonymous_client.get(url), 401)["code"] == "authentication_required"


# --- invoices --------------------------------------------------------------------------------


@pytest.fixture
def billed(organization, customer, seed_pricing, settings):
    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    previous = (month_start() - timedelta(days=1)).replace(day=1)
    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=previous
    )
    ingest(
        organization,
        customer,
        [
            {
                "event_type": "langModel4",
                "occurred_at": previous + timedelta(days=2),
                "properties": {"tokens": 3_000_000},
            },
            {"event_type": "langModel4", "occurred_at": recent(), "properties": {"tokens": 1_500_000}},
            {"event_type": "langModel4", "occurred_at": recent(), "properties": {"tokens": 1_000_000}},
        ],
    )
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    (closed,) = invoicing.invoices_finalize_due()
    return closed


def test_customer_invoices_list_filter_and_detail(api_client, customer, billed):
    drafts = api_client.get(f"/api/v1/customers/{customer.uuid}/invoices", {"status": "draft"}).json()["data"]
    everything = api_client.get(f"/api/v1/customers/{customer.external_id}/invoices").json()["data"]
    detail = api_client.get(f"/api/v1/customers/{customer.uuid}/invoices/{billed.pk}").json()["data"]

    assert [(row["status"], row["total_cents"]) for row in drafts] == [("draft", 125)]
    assert drafts[0]["lines"][0]["quantity"] == "2.5" and drafts[0]["lines"][0]["unit_price"] == "50"
    assert {row["status"] for row in everything} == {"draft", "finalized"}
    assert detail["number"].startswith("INV-") and detail["amount_due_cents"] == 150
    assert (
        error(api_client.get(f"/api/v1/customers/{customer.uuid}/invoices", {"status": "bogus"}))["details"]["field"]
        == "status"
    )


def test_invoice_history_maps_finalized_to_open(api_client, customer, billed):
    invoicing.invoice_set_status(invoice=billed, status="uncollectible")

    history = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-history").json()

    (entry,) = history["invoices"]
    assert entry["status"] == "uncollectible" and entry["amount_due"] == 150 and entry["amount_remaining"] == 150
    invoicing.invoice_set_status(invoice=billed, status="paid")
    (entry,) = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-history").json()["invoices"]
    assert (entry["status"], entry["amount_paid"], entry["amount_remaining"]) == ("paid", 150, 0)
    assert set(entry) >= {
        "amount_due",
        "amount_paid",
        "amount_remaining",
        "currency",
        "id",
        "attempt_count",
        "attempted",
        "auto_advance",
        "created",
        "created_by",
        "description",
        "invoice_origin",
        "invoice_pdf",
        "status",
    }


def test_finalized_invoices_show_as_open(api_client, customer, billed):
    (entry,) = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-history").json()["invoices"]

    assert entry["status"] == "open"


def test_exact_fractional_quantities_are_json_numbers_not_floats(api_client, customer, billed):
    response = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-preview")

    assert b'"quantity":2.5' in response.content
    assert response.json()["amount_due"] == 125


def test_a_link_created_through_the_api_opens_the_page(api_client, client, customer, billed):
    created = api_client.post(
        f"/api/v1/customers/{customer.uuid}/invoices/{billed.pk}/links", {"expires_in_days": 7}, format="json"
    )

    assert created.status_code == 201
    url = created.json()["data"]["url"]
    assert client.get(url.replace("http://testserver", "")).status_code == 200
    assert (
        error(
            api_client.post(
                f"/api/v1/customers/{customer.uuid}/invoices/{billed.pk}/links", {"expires_in_days": 0}, format="json"
            )
        )["details"]["field"]
        == "expires_in_days"
    )


def test_usage_history_per_window(api_client, organization, customer, seed_pricing):
    start = utc(2026, 2, 1)
    ingest(
        organization,
        customer,
        [
            {"event_type": "langModel4", "occurred_at": start + timedelta(hours=1), "properties": {"tokens": 10}},
            {
                "event_type": "langModel4",
                "occurred_at": start + timedelta(hours=1, minutes=5),
                "properties": {"tokens": 5},
            },
            {"event_type": "langModel4", "occurred_at": start + timedelta(days=2), "properties": {"tokens": 7}},
        ],
    )
    url = f"/api/v1/customers/{customer.uuid}/billing/usage-history"
    params = {
        "billable_metric_id": str(seed_pricing["metric"].pk),
        "starting_on": "2026-02-01T00:00:00Z",
        "ending_before": "2026-02-04T00:00:00Z",
    }

    daily = api_client.get(url, {**params, "window_size": "day"}).json()["history"]
    hourly = api_client.get(url, {**params, "window_size": "hour"}).json()["history"]

    assert [(w["aggregated_value"], w["end_time"] - w["start_time"]) for w in daily] == [
        (15, 86400),
        (0, 86400),
        (7, 86400),
    ]
    assert len(hourly) == 72 and hourly[1]["aggregated_value"] == 15
    assert error(api_client.get(url, {**params, "window_size": "week"}))["details"]["field"] == "window_size"
    assert error(api_client.get(url, {"window_size": "day"}))["details"]["field"] == "billable_metric_id"
    assert (
        error(api_client.get(url, {**params, "starting_on": "2020-01-01T00:00:00Z", "window_size": "hour"}))["details"][
            "field"
        ]
        == "window_size"
    )


# --- tenant isolation ------------------------------------------------------------------------


@pytest.fixture
def other_tenant(db):
    organization = OrganizationFactory(name="Other Co")
    customer = CustomerFactory(organization=organization, external_id="theirs")
    metric = services.billable_metric_create(organization=organization, name="m", aggregation_type="COUNT")
    product = services.product_create(organization=organization, name="p", billable_metric=metric)
    card = services.rate_card_create(organization=organization, name="c")
    services.rate_create(rate_card=card, product=product, starting_at=utc(2020, 1, 1), price=Decimal(1))
    contract = services.contract_create(
        organization=organization, customer=customer, rate_card=card, starting_at=month_start()
    )
    invoice = Invoice.objects.get(contract=contract)
    _, key = api_key_create(organization=organization, name="theirs")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return {
        "customer": customer,
        "metric": metric,
        "product": product,
        "card": card,
        "contract": contract,
        "invoice": invoice,
        "client": client,
    }


def test_another_organizations_objects_are_not_found(api_client, customer, other_tenant):
    theirs = other_tenant
    urls = [
        f"/api/v1/billable-metrics/{theirs['metric'].pk}",
        f"/api/v1/products/{theirs['product'].pk}",
        f"/api/v1/rate-cards/{theirs['card'].pk}",
        f"/api/v1/rate-cards/{theirs['card'].pk}/rates",
        f"/api/v1/contracts/{theirs['contract'].pk}",
        f"/api/v1/customers/{theirs['customer'].uuid}/invoices",
        f"/api/v1/customers/{theirs['customer'].uuid}/invoices/{theirs['invoice'].pk}",
        f"/api/v1/customers/{customer.uuid}/invoices/{theirs['invoice'].pk}",
        f"/api/v1/customers/{theirs['customer'].uuid}/billing/invoice-preview",
        f"/api/v1/customers/{theirs['customer'].uuid}/billing/invoice-history",
        f"/api/v1/customers/{theirs['customer'].external_id}/billing/invoice-history",
        f"/api/v1/customers/{customer.uuid}/billing/usage-history?billable_metric_id={theirs['metric'].pk}",
    ]
    for url in urls:
        assert error(api_client.get(url), 404)["code"] == "not_found", url
    posts = [
        (
            f"/api/v1/rate-cards/{theirs['card'].pk}/rates",
            {"product_id": str(theirs["product"].pk), "starting_at": "2021-01-01T00:00:00Z", "price": 1},
        ),
        (f"/api/v1/customers/{theirs['customer'].uuid}/invoices/{theirs['invoice'].pk}/links", {}),
    ]
    for url, body in posts:
        assert error(api_client.post(url, body, format="json"), 404)["code"] == "not_found", url
    for url in ["/api/v1/billable-metrics", "/api/v1/products", "/api/v1/rate-cards", "/api/v1/contracts"]:
        assert api_client.get(url).json()["data"] == [], url


def test_references_to_another_organizations_objects_are_rejected(api_client, customer, seed_pricing, other_tenant):
    theirs = other_tenant
    product = error(
        api_client.post(
            "/api/v1/products", {"name": "x", "billable_metric_id": str(theirs["metric"].pk)}, format="json"
        )
    )
    composite = error(
        api_client.post(
            "/api/v1/products",
            {"name": "x", "type": "composite", "composite_product_ids": [str(theirs["product"].pk)]},
            format="json",
        )
    )
    rate = error(
        api_client.post(
            f"/api/v1/rate-cards/{seed_pricing['rate_card'].pk}/rates",
            {"product_id": str(theirs["product"].pk), "starting_at": "2021-01-01T00:00:00Z", "price": 1},
            format="json",
        )
    )
    contract_customer = error(
        api_client.post(
            "/api/v1/contracts",
            {
                "customer_id": str(theirs["customer"].uuid),
                "rate_card_id": str(seed_pricing["rate_card"].pk),
                "starting_at": "2026-01-01T00:00:00Z",
            },
            format="json",
        )
    )
    contract_card = error(
        api_client.post(
            "/api/v1/contracts",
            {
                "customer_id": str(customer.uuid),
                "rate_card_id": str(theirs["card"].pk),
                "starting_at": "2026-01-01T00:00:00Z",
            },
            format="json",
        )
    )

    assert product["details"]["field"] == "billable_metric_id"
    assert composite["details"]["field"] == "composite_product_ids"
    assert rate["details"]["field"] == "product_id"
    assert contract_customer["details"]["field"] == "customer_id"
    assert contract_card["details"]["field"] == "rate_card_id"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/contracts?customer_id=%00",
        "/api/v1/customers/%00/invoices",
        "/api/v1/customers/c%00/billing/invoice-preview",
        "/api/v1/customers/%00/billing/credit-balance",
        "/api/v1/customers/%00/billing/spending-limit",
    ],
)
def test_a_customer_id_with_a_nul_character_is_no_customer(api_client, path):
    response = api_client.get(path)

    if path.startswith("/api/v1/contracts"):
        assert response.status_code == 200 and response.json()["data"] == []
    else:
        assert error(response, 404)["code"] == "not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"starting_on": "9999-12-31T00:00:00Z", "window_size": "month"}, "starting_on"),
        ({"starting_on": "9999-11-30T00:00:00Z", "ending_before": "9999-12-31T23:00:00Z"}, "ending_before"),
        ({"ending_before": "0001-01-05T00:00:00Z"}, "ending_before"),
    ],
)
def test_usage_history_dates_at_the_ends_of_the_calendar_are_a_400(api_client, customer, seed_pricing, params, field):
    url = f"/api/v1/customers/{customer.uuid}/billing/usage-history"

    response = api_client.get(url, {"billable_metric_id": str(seed_pricing["metric"].pk), **params})

    assert error(response)["details"]["field"] == field


def test_a_contract_or_rate_in_the_last_representable_year_is_a_400(api_client, customer, seed_pricing):
    contract = api_client.post(
        "/api/v1/contracts",
        {"customer_id": customer.external_id, "rate_card_id": str(seed_pricing["rate_card"].pk),
         "starting_at": "9999-12-31T23:00:00Z"},
        format="json",
    )
    rate = api_client.post(
        f"/api/v1/rate-cards/{seed_pricing['rate_card'].pk}/rates",
        {"product_id": str(seed_pricing["product"].pk), "starting_at": "2010-01-01T00:00:00Z",
         "ending_before": "9999-06-01T00:00:00Z", "price": "1"},
        format="json",
    )

    assert error(contract)["details"]["field"] == "starting_at"
    assert error(rate)["details"]["field"] == "ending_before"


def test_the_database_refuses_overlapping_rates_and_contracts_skipping_validation(organization, customer, seed_pricing):
    """What a race between two validated requests would meet: the exclusion constraints, mapped to field errors."""
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    from billing.models import Contract, Rate

    rate = seed_pricing["rate"]
    with pytest.raises(IntegrityError, match="rate_no_overlap_per_product"), transaction.atomic():
        Rate.objects.create(rate_card=rate.rate_card, product=rate.product, starting_at=utc(2026, 1, 1), price=1)

    racing = Rate(rate_card=rate.rate_card, product=rate.product, starting_at=utc(2026, 1, 1), price=Decimal(1))
    racing.siblings_checked = True  # as if its clean() ran before the other row committed
    with pytest.raises(ValidationError) as refused:
        services._save(racing)
    assert refused.value.message_dict == {"starting_at": ["Overlaps another rate for this product on this rate card."]}

    services.contract_create(
        organization=organization, customer=customer, rate_card=rate.rate_card, starting_at=utc(2026, 1, 1)
    )
    with pytest.raises(IntegrityError, match="contract_no_overlap_per_customer"), transaction.atomic():
        Contract.objects.create(
            organization=organization, customer=customer, rate_card=rate.rate_card, starting_at=utc(2026, 3, 1)
        )
    assert Rate.objects.count() == 1 and Contract.objects.count() == 1


def test_the_openapi_schema_describes_the_seed_004_shapes_and_the_200_of_deletes(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths, components = schema["paths"], schema["components"]["schemas"]
    base = "/api/v1/customers/{customer_id}/billing"

    def response(path, method="get", status="200"):
        return paths[path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]

    preview = components[response(f"{base}/invoice-preview")]
    assert {"id", "amount_due", "amount_paid", "amount_remaining", "currency", "invoice_lines", "period_end",
            "period_start", "status"} <= set(preview["properties"])
    line = components["BillingInvoiceLine"]["properties"]
    assert {"amount", "currency", "description", "period", "pricing", "quantity", "pretax_credit_amounts"} <= set(line)
    assert "invoices" in components[response(f"{base}/invoice-history")]["properties"]
    assert "history" in components[response(f"{base}/usage-history")]["properties"]
    for path in (f"{base}/topup/config", f"{base}/spending-limit", "/api/v1/billing/stripe-account"):
        statuses = set(paths[path]["delete"]["responses"])
        assert "200" in statuses and not {"201", "202", "204"} & statuses, path  # 200 with a body, not 204


def test_a_composite_products_rate_must_be_flat(api_client, organization, seed_pricing):
    """Its price is the fraction of the usage charges; a TIERED one used to bill a silent 0."""
    fee = services.product_create(
        organization=organization, name="Platform fee", type="composite", composite_products=[seed_pricing["product"]]
    )

    response = api_client.post(
        f"/api/v1/rate-cards/{seed_pricing['rate_card'].pk}/rates",
        {"product_id": str(fee.pk), "starting_at": "2026-01-01T00:00:00Z", "rate_type": "TIERED",
         "tiers": [{"price": "0.1"}]},
        format="json",
    )

    assert error(response)["details"]["field"] == "rate_type"


def test_a_new_contract_cannot_start_further_back_than_billing_max_backdate_months(
    api_client, customer, seed_pricing, settings
):
    settings.BILLING_MAX_BACKDATE_MONTHS = 24
    body = {"customer_id": customer.external_id, "rate_card_id": str(seed_pricing["rate_card"].pk)}
    earliest = periods.earliest_contract_start(now=timezone.now(), max_backdate_months=24)

    ancient = error(
        api_client.post("/api/v1/contracts", {**body, "starting_at": "0001-01-01T00:00:00Z"}, format="json")
    )
    just_past = error(
        api_client.post(
            "/api/v1/contracts", {**body, "starting_at": (earliest - timedelta(hours=1)).isoformat()}, format="json"
        )
    )

    for refused in (ancient, just_past):
        assert refused["code"] == "validation_error"
        assert refused["details"]["field"] == "starting_at"
        assert "24 months" in refused["message"]
    assert not Contract.objects.exists() and not Invoice.objects.exists()  # no drafts opened either

    at_limit = api_client.post(
        "/api/v1/contracts", {**body, "starting_at": (earliest + timedelta(hours=1)).isoformat()}, format="json"
    )
    assert at_limit.status_code == 201, at_limit.content
    assert 24 <= Invoice.objects.filter(customer=customer, status="draft").count() <= 26

    settings.BILLING_MAX_BACKDATE_MONTHS = 1  # the setting is read at each create
    Invoice.objects.all().delete()
    Contract.objects.all().delete()
    three_months_ago = (month_start() - timedelta(days=80)).replace(day=1)
    assert error(
        api_client.post("/api/v1/contracts", {**body, "starting_at": three_months_ago.isoformat()}, format="json")
    )["details"]["field"] == "starting_at"
