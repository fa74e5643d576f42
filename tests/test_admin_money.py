"""The admin speaks money: dollars at the precision an amount needs, exact prices with their unit,
quantities without trailing zeros, totals under the usage list, budgets in dollars, a default
organization, and metric filter examples that the validation accepts."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from accounts.models import Membership, Role
from billing import services as billing_services
from billing.metric_rules import EVENT_TYPE_FILTER_EXAMPLES, PROPERTY_FILTER_EXAMPLES, metric_definition_errors
from billing.models import BillableMetric, Rate
from costcalc.models import ModelPrice
from events.models import Budget
from tests.factories import CustomerFactory
from tests.margins.conftest import record_usage

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def test_usage_list_shows_dollars_and_totals_of_the_filtered_rows(admin_client_logged_in, organization):
    acme = CustomerFactory(organization=organization, external_id="acme")
    other = CustomerFactory(organization=organization, external_id="other")
    when = datetime(2026, 4, 10, 12, tzinfo=UTC)
    record_usage(acme, when=when, cost=4_500, revenue=200_000, models=[("openai/gpt-4o", 4_500)])
    record_usage(acme, when=when, cost=1_250_000, revenue=0)
    record_usage(other, when=when, cost=7, revenue=0)

    page = text(admin_client_logged_in.get("/admin/events/usageevent/"))
    assert "$0.0045" in page and "$1.25" in page and "$0.20" in page
    assert "4500" not in page
    assert "rows 3" in page and "cost $1.254507" not in page  # a total of $1.254507 is over a dollar: cents
    assert "cost $1.25" in page and "revenue $0.20" in page

    filtered = text(admin_client_logged_in.get("/admin/events/usageevent/?q=other"))
    assert "rows 1" in filtered and "cost $0.000007" in filtered


def test_vendor_responses_show_tokens_and_cost(admin_client_logged_in, organization):
    from events.models import UsageEvent, VendorResponse

    customer = CustomerFactory(organization=organization)
    record_usage(customer, when=datetime(2026, 4, 10, tzinfo=UTC), cost=4_500, models=[("openai/gpt-4o", 4_500)])
    VendorResponse.objects.update(input_tokens=1_500_000)
    event = UsageEvent.objects.get()
    page = text(admin_client_logged_in.get(f"/admin/events/usageevent/{event.pk}/change/"))
    assert "1,500,000" in page and "$0.0045" in page


def test_prices_read_as_dollars_per_unit(admin_client_logged_in):
    ModelPrice.objects.create(
        slug="openai/gpt-4o", vendor="openai", source="manual", input_per_mtok=Decimal("2.500000000000"),
        output_per_mtok=Decimal("10"), request_fee_usd=Decimal("0.001000"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    page = text(admin_client_logged_in.get("/admin/costcalc/modelprice/"))
    assert "$2.50 / M tokens" in page and "$10.00 / M tokens" in page and "$0.001 per request" in page
    assert "2.500000000000" not in page


def test_rates_read_as_dollars_per_request(admin_client_logged_in, organization):
    rate_card = billing_services.rate_card_create(organization=organization, name="Standard")
    metric = billing_services.billable_metric_create(
        organization=organization, name="Agent runs (requests)",
        aggregation_type=BillableMetric.AggregationType.COUNT, event_type_filter={"in_values": ["agent_run"]},
    )
    product = billing_services.product_create(organization=organization, name="Agent runs", billable_metric=metric)
    rate = billing_services.rate_create(
        rate_card=rate_card, product=product, starting_at=datetime(2026, 1, 1, tzinfo=UTC),
        price=Decimal("20.000000000000"),
    )
    assert str(rate) == "Agent runs at $0.20 per request from 2026-01-01 00:00"
    page = text(admin_client_logged_in.get("/admin/billing/rate/"))
    assert "$0.20 per request" in page and "20.000000000000" not in page
    tokens = billing_services.billable_metric_create(
        organization=organization, name="Tokens", aggregation_type=BillableMetric.AggregationType.SUM,
        aggregation_key="tokens",
    )
    per_million = billing_services.product_create(
        organization=organization, name="Tokens", billable_metric=tokens,
        quantity_conversion={"conversion_factor": Decimal(1_000_000), "operation": "DIVIDE", "name": "million tokens"},
    )
    rate = Rate(rate_card=rate_card, product=per_million, starting_at=datetime(2026, 1, 1, tzinfo=UTC),
                price=Decimal("250"))
    assert str(rate).startswith("Tokens at $2.50 per million tokens")


def test_budgets_are_entered_and_shown_in_dollars(admin_client_logged_in, organization):
    Membership.objects.create(organization=organization, user=_root(), role=Role.OWNER)
    add = admin_client_logged_in.get("/admin/events/budget/add/")
    assert f'<option value="{organization.pk}" selected>' in add.content.decode()  # the user's organization
    response = admin_client_logged_in.post("/admin/events/budget/add/", {
        "organization": organization.pk, "name": "Daily", "scope": "organization", "scope_value": "",
        "limit_usd": "0.25", "period": "day", "action": "alert", "enabled": "on",
    })
    assert response.status_code == 302, text(response)
    budget = Budget.objects.get()
    assert budget.limit_microdollars == 250_000
    assert "$0.25" in text(admin_client_logged_in.get("/admin/events/budget/"))
    change = admin_client_logged_in.get(f"/admin/events/budget/{budget.pk}/change/").content.decode()
    assert 'name="limit_usd" value="0.25"' in change
    bad = admin_client_logged_in.post("/admin/events/budget/add/", {
        "organization": organization.pk, "scope": "organization", "limit_usd": "-1", "period": "day",
        "action": "alert",
    })
    assert bad.status_code == 200 and Budget.objects.count() == 1


def _root():
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username="root")


@pytest.mark.parametrize("example", EVENT_TYPE_FILTER_EXAMPLES)
def test_event_type_filter_examples_are_valid(example):
    assert metric_definition_errors(
        event_type_filter=example, property_filters=[], aggregation_type="COUNT", aggregation_key="", group_keys=[]
    ) == {}


@pytest.mark.parametrize("example", PROPERTY_FILTER_EXAMPLES)
def test_property_filter_examples_are_valid(example):
    assert metric_definition_errors(
        event_type_filter={}, property_filters=example, aggregation_type="COUNT", aggregation_key="", group_keys=[]
    ) == {}


def test_metric_form_shows_the_examples_and_refuses_a_bad_filter(admin_client_logged_in, organization):
    page = admin_client_logged_in.get("/admin/billing/billablemetric/add/").content.decode()
    assert "{&quot;in_values&quot;: [&quot;chat&quot;, &quot;summarize&quot;]}" in page
    assert "[{&quot;name&quot;: &quot;region&quot;" in page
    response = admin_client_logged_in.post("/admin/billing/billablemetric/add/", {
        "organization": organization.pk, "name": "Bad", "aggregation_type": "COUNT",
        "event_type_filter": '{"in": ["chat"]}', "property_filters": "[]", "group_keys": "",
    })
    assert response.status_code == 200
    assert "Unknown key &#x27;in&#x27;" in response.content.decode()
    assert not BillableMetric.objects.exists()
