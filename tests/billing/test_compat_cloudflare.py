"""Cloudflare's paths (billing/compat/cloudflare.py) beyond the SDK contract in tests/contracts: bad
parameters, roles and sessions, our billable_metric_id extension, paging bounds, all in the v4
envelope. The clock is frozen at 2026-06-10 12:30 UTC."""

import pytest
import time_machine

from billing import services
from tests.billing.conftest import ingest, utc

pytestmark = pytest.mark.django_db

BASE = "/client/v4/accounts/team@example.com/ai-gateway/billing"


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(utc(2026, 6, 10, 12, 30), tick=False):
        yield


def ms(*args) -> int:
    return int(utc(*args).timestamp()) * 1000


def errors(response) -> list:
    body = response.json()
    assert (body["success"], body["result"], body["messages"]) == (False, None, [])
    return body["errors"]


@pytest.mark.parametrize(
    "query",
    [
        {"value_grouping_window": "month"},
        {},
        {"value_grouping_window": "day", "start_time": "yesterday"},
        {"value_grouping_window": "day", "start_time": "NaN"},
        {"value_grouping_window": "day", "end_time": str(ms(2026, 6, 1)), "start_time": str(ms(2026, 6, 2))},
        {"value_grouping_window": "hour", "start_time": str(ms(2026, 1, 1)), "end_time": str(ms(2026, 6, 1))},
        {"value_grouping_window": "day", "start_time": "-1"},
    ],
)
def test_bad_usage_history_parameters_are_400_in_the_envelope(api_client, customer, query):
    response = api_client.get(f"{BASE}/usage-history", query)
    assert response.status_code == 400
    (error,) = errors(response)
    assert error["code"] == 400 and error["message"]


def test_usage_history_of_one_metric_with_our_extension(api_client, organization, customer, seed_pricing):
    ingest(organization, customer, [
        {"event_type": "langModel4", "occurred_at": utc(2026, 6, 9, 23, 59, 59), "properties": {"tokens": 7}},
        {"event_type": "langModel4", "occurred_at": utc(2026, 6, 10, 0, 0), "properties": {"tokens": 5}},
    ])  # fmt: skip
    response = api_client.get(f"{BASE}/usage-history", {
        "value_grouping_window": "day", "start_time": ms(2026, 6, 9), "end_time": ms(2026, 6, 11),
        "billable_metric_id": str(seed_pricing["metric"].pk),
    })  # fmt: skip
    body = response.json()
    assert body["success"] is True
    assert [(row["start_time"], row["aggregated_value"]) for row in body["result"]["history"]] == [
        (ms(2026, 6, 9), 7), (ms(2026, 6, 10), 5),
    ]  # fmt: skip
    unknown = api_client.get(f"{BASE}/usage-history", {"value_grouping_window": "day",
                                                       "billable_metric_id": "00000000-0000-0000-0000-000000000000"})
    assert unknown.status_code == 404


@pytest.mark.parametrize("query", [{"type": "monthly"}, {"page": "0"}, {"per_page": "101"}, {"per_page": "x"}])
def test_bad_invoice_history_parameters_are_400(api_client, customer, query):
    assert api_client.get(f"{BASE}/invoice-history", query).status_code == 400


def test_invoice_history_past_the_last_page_is_empty(api_client, organization, customer, seed_pricing):
    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=utc(2026, 6, 1)
    )
    body = api_client.get(f"{BASE}/invoice-history", {"page": 3, "per_page": 5}).json()["result"]
    assert body == {"invoices": [], "pagination": {"has_more": False, "page": 3, "per_page": 5, "total_count": 0}}


def test_sessions_work_and_roles_hold_in_the_envelope(member_client, customer):
    viewer = member_client(role="viewer")
    assert viewer.get(f"{BASE}/credit-balance").json()["success"] is True
    refused = viewer.post(f"{BASE}/topup/config", {"amount": 1000, "threshold": 500}, format="json")
    assert refused.status_code == 403 and errors(refused)[0]["code"] == 403


def test_a_nul_byte_in_the_account_id_is_a_404_not_a_500(api_client, customer):
    response = api_client.get("/accounts/a%00b/ai-gateway/billing/credit-balance")
    assert response.status_code == 404 and errors(response)[0]["code"] == 404
