"""Exactly once under concurrency: real concurrent requests, each thread on its own PostgreSQL
connection, committing for real (transactional test database)."""

import threading
from collections import Counter, defaultdict

import pytest
from rest_framework.test import APIClient

from events.models import Customer, UsageEvent, VendorResponse
from tests.events.conftest import md_event, run_together

CLIENTS = 10


def run_concurrently(api_key: str, send) -> list:
    """Call `send(client)` from CLIENTS threads released together; return their responses."""
    responses: list = [None] * CLIENTS

    def request(position: int) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
        responses[position] = send(client)

    errors = run_together(CLIENTS, request)
    assert not errors, errors
    return responses


@pytest.mark.django_db(transaction=True)
def test_the_same_batch_from_ten_clients_is_stored_once(api_key, price_catalog, organization):
    batch = {"events": [md_event(f"new-customer-{n % 5}", key=f"evt-{n}") for n in range(50)]}

    responses = run_concurrently(api_key, lambda client: client.post("/api/v1/events", batch, format="json"))

    assert [response.status_code for response in responses] == [200] * CLIENTS
    statuses: dict[int, Counter] = defaultdict(Counter)
    ids: dict[int, set] = defaultdict(set)
    for response in responses:
        for position, result in enumerate(response.json()["results"]):
            statuses[position][result["status"]] += 1
            ids[position].add(result["id"])
    for position in range(50):
        assert statuses[position] == Counter({"created": 1, "duplicate": CLIENTS - 1}), position
        assert len(ids[position]) == 1, position  # every client got the same id for the same key
    assert UsageEvent.objects.filter(organization=organization).count() == 50
    assert VendorResponse.objects.count() == 50
    assert Customer.objects.filter(organization=organization).count() == 5
    stored = dict(UsageEvent.objects.values_list("idempotency_key", "id"))
    assert {stored[f"md:evt-{n}"] for n in range(50)} == set().union(*ids.values())


@pytest.mark.django_db(transaction=True)
def test_the_same_tanso_key_from_ten_clients_is_one_201_and_nine_409s(api_key, organization):
    body = {"eventName": "chat", "customerReferenceId": "acct-1", "eventIdempotencyKey": "once", "costAmount": 1}

    responses = run_concurrently(api_key, lambda client: client.post("/api/v1/usage-events", body, format="json"))

    codes = Counter(response.status_code for response in responses)
    assert codes == Counter({201: 1, 409: CLIENTS - 1})
    created_id = next(r.json()["id"] for r in responses if r.status_code == 201)
    assert {r.json()["error"]["details"]["id"] for r in responses if r.status_code == 409} == {created_id}
    assert UsageEvent.objects.filter(organization=organization).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_same_metronome_batch_from_ten_clients(api_key, organization):
    from django.utils import timezone

    now = timezone.now().isoformat()
    batch = [
        {"transaction_id": f"tx-{n}", "customer_id": "team", "event_type": "tokens", "timestamp": now}
        for n in range(30)
    ]

    responses = run_concurrently(api_key, lambda client: client.post("/api/v1/ingest", batch, format="json"))

    assert sum(response.json()["created"] for response in responses) == 30
    assert sum(response.json()["duplicate"] for response in responses) == 30 * (CLIENTS - 1)
    assert UsageEvent.objects.filter(organization=organization).count() == 30


@pytest.mark.django_db(transaction=True)
def test_margindash_sdk_tokens_and_idempotency_keys_racing_are_one_key(api_key, price_catalog, organization):
    # MarginDash's SDK names the key `unique_request_token`; half the clients send it under that name,
    # half as `idempotency_key`: the same 20 keys, stored once each whoever wins.
    def batch(position: int) -> dict:
        name = "unique_request_token" if position % 2 else "idempotency_key"
        events = []
        for n in range(20):
            item = md_event("sdk-customer")
            item.pop("idempotency_key", None)
            item[name] = f"3f1c-{n}"
            events.append(item)
        return {"events": events}

    positions = iter(range(CLIENTS))
    lock = threading.Lock()

    def send(client):
        with lock:
            position = next(positions)
        return client.post("/api/v1/events", batch(position), format="json")

    responses = run_concurrently(api_key, send)

    created = Counter(r["status"] for response in responses for r in response.json()["results"])
    assert created == Counter({"created": 20, "duplicate": 20 * (CLIENTS - 1)})
    keys = set(UsageEvent.objects.filter(organization=organization).values_list("idempotency_key", flat=True))
    assert keys == {f"md:3f1c-{n}" for n in range(20)}
