"""POST /api/v1/ingest, the Metronome dialect (seed 001)."""

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from events.models import Customer, UsageEvent
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/ingest"


def usage(transaction_id: str, customer_id: str = "team@example.com", **extra) -> dict:
    event = {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "event_type": "langModel4",
        "timestamp": (timezone.now() - timedelta(hours=1)).isoformat(),
        "properties": {"tokens": 1_000_000, "user_id": "u1"},
    }
    event.update(extra)
    return event


def test_events_are_stored_and_a_resend_stores_nothing_new(api_client):
    batch = [usage("tx-1"), usage("tx-2")]

    first = api_client.post(URL, batch, format="json")
    again = api_client.post(URL, batch, format="json")

    assert first.status_code == again.status_code == 200
    assert first.json() == {"budget_state_version": 0, "created": 2, "duplicate": 0}
    assert again.json() == {"budget_state_version": 0, "created": 0, "duplicate": 2}
    assert UsageEvent.objects.count() == 2
    event = UsageEvent.objects.get(idempotency_key="mt:tx-1")
    assert event.properties == {"tokens": 1_000_000, "user_id": "u1"}
    assert event.source == "metronome"
    assert event.cost_microdollars == 0


def test_dedupe_holds_for_events_stored_34_days_ago(api_client):
    old = usage("tx-old", timestamp=(timezone.now() - timedelta(days=33)).isoformat())
    api_client.post(URL, [old], format="json")
    UsageEvent.objects.update(received_at=timezone.now() - timedelta(days=40))

    response = api_client.post(URL, [old], format="json")

    assert response.json()["duplicate"] == 1
    assert UsageEvent.objects.count() == 1


def test_customer_id_matches_an_ingest_alias_or_our_id(api_client, organization):
    customer = CustomerFactory(organization=organization, external_id="c-1", ingest_aliases=["team@example.com"])
    api_client.post(URL, [usage("a"), usage("b", customer_id=str(customer.uuid))], format="json")

    assert set(UsageEvent.objects.values_list("customer_id", flat=True)) == {customer.id}


def test_an_unknown_customer_id_creates_the_customer(api_client, organization):
    api_client.post(URL, [usage("a", customer_id="new-co"), usage("b", customer_id="new-co")], format="json")

    customer = Customer.objects.get(organization=organization)
    assert customer.external_id == "new-co"
    assert UsageEvent.objects.filter(customer=customer).count() == 2


def test_any_invalid_event_rejects_the_request_and_stores_nothing(api_client):
    too_old = usage("old", timestamp=(timezone.now() - timedelta(days=35)).isoformat())

    response = api_client.post(URL, [usage("ok"), too_old], format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["details"]["field"] == "usage[1].timestamp"
    assert error["details"]["errors"][0]["index"] == 1
    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize("count", [0, 101])
def test_batch_size_outside_1_to_100_is_a_400(api_client, count):
    response = api_client.post(URL, [usage(f"t{i}") for i in range(count)], format="json")
    assert response.status_code == 400
    assert not UsageEvent.objects.exists()


def test_100_events_are_accepted(api_client):
    response = api_client.post(URL, [usage(f"t{i}") for i in range(100)], format="json")
    assert response.json()["created"] == 100


def test_malformed_json_and_413(api_client, settings):
    assert api_client.post(URL, data=b"[{", content_type="application/json").status_code == 400
    settings.API_MAX_BODY_BYTES = 1024
    body = orjson.dumps([usage("big", properties={"blob": "x" * 2000})])
    response = api_client.post(URL, data=body, content_type="application/json")
    assert response.status_code == 413


def test_transaction_ids_do_not_collide_with_margindash_keys(api_client, price_catalog):
    from tests.events.conftest import md_event

    api_client.post("/api/v1/events", {"events": [md_event(key="same-id")]}, format="json")
    response = api_client.post(URL, [usage("same-id")], format="json")

    assert response.json()["created"] == 1
    assert sorted(UsageEvent.objects.values_list("idempotency_key", flat=True)) == ["md:same-id", "mt:same-id"]
