"""GET /api/v1/events: the ledger for debugging an integration."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.events.conftest import md_event

pytestmark = pytest.mark.django_db
URL = "/api/v1/events"


@pytest.fixture
def ledger(api_client, price_catalog):
    now = timezone.now()
    events = [
        md_event("alice", key="a1", occurred_at=(now - timedelta(days=3)).isoformat()),
        md_event("alice", key="a2", event_type="embed", occurred_at=(now - timedelta(days=2)).isoformat()),
        md_event("bob", key="b1", occurred_at=(now - timedelta(days=1)).isoformat()),
    ]
    api_client.post(URL, {"events": events}, format="json")
    return now


def keys(response) -> list[str]:
    return [event["idempotency_key"] for event in response.json()["data"]]


def test_newest_first_with_vendor_responses(api_client, ledger):
    response = api_client.get(URL)

    assert response.status_code == 200
    assert keys(response) == ["b1", "a2", "a1"]
    event = response.json()["data"][0]
    assert event["customer_id"] == "bob"
    assert event["cost_microdollars"] == 6400
    assert event["vendor_responses"][0]["model"] == "openai/gpt-4o"
    assert event["vendor_responses"][0]["cost_microdollars"] == 6400


def test_filters(api_client, ledger, organization):
    from events.models import Customer

    alice = Customer.objects.get(organization=organization, external_id="alice")
    assert keys(api_client.get(URL, {"customer_id": "alice"})) == ["a2", "a1"]
    assert keys(api_client.get(URL, {"customer_id": str(alice.uuid)})) == ["a2", "a1"]
    assert keys(api_client.get(URL, {"event_type": "embed"})) == ["a2"]
    after = (ledger - timedelta(days=2, hours=1)).isoformat()
    before = (ledger - timedelta(days=1, hours=1)).isoformat()
    assert keys(api_client.get(URL, {"occurred_after": after, "occurred_before": before})) == ["a2"]
    assert keys(api_client.get(URL, {"idempotency_key": "b1"})) == ["b1"]
    assert keys(api_client.get(URL, {"customer_id": "nobody"})) == []


def test_bad_time_filter_is_a_400(api_client):
    response = api_client.get(URL, {"occurred_after": "last week"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "occurred_after"


def test_cursor_pagination(api_client, ledger):
    first = api_client.get(URL, {"limit": 2}).json()
    second = api_client.get(first["next"]).json()

    assert [e["idempotency_key"] for e in first["data"]] == ["b1", "a2"]
    assert [e["idempotency_key"] for e in second["data"]] == ["a1"]
    assert second["next"] is None


def test_another_tenants_events_are_invisible(api_client, other_client, ledger):
    assert other_client.get(URL).json()["data"] == []
    assert keys(other_client.get(URL, {"customer_id": "alice"})) == []
    other_client.post(URL, {"events": [md_event("alice", key="mine")]}, format="json")
    assert keys(api_client.get(URL, {"customer_id": "alice"})) == ["a2", "a1"]


def test_listing_needs_authentication(anonymous_client):
    assert anonymous_client.get(URL).status_code == 401


def test_nul_characters_in_filters_are_a_400(api_client):
    response = api_client.get(URL, {"event_type": "a\x00b"})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "event_type"
