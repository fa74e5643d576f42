"""Rate limits: per API key for ingest, reads and writes; per client address for failed authentication."""

import pytest
import time_machine
from rest_framework.test import APIClient

from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    settings.API_RATE_LIMITS = {
        "ingest": "3/minute", "read": "2/minute", "write": "1/minute", "auth_failures": "3/minute",
    }
    return settings.API_RATE_LIMITS


def _client(raw_key, address="127.0.0.1"):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def _assert_rate_limited(response, wait_at_most=60):
    assert response.status_code == 429, response.content
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= wait_at_most + 1
    assert error["details"]["retry_after_seconds"] == int(response["Retry-After"])


def test_reads_are_limited_per_key(limits, organization):
    _, first_key = api_key_create(organization=organization)
    _, other_key = api_key_create(organization=organization)
    client = _client(first_key)

    assert [client.get("/api/v1/customers").status_code for _ in range(2)] == [200, 200]
    _assert_rate_limited(client.get("/api/v1/customers"))
    assert _client(other_key).get("/api/v1/customers").status_code == 200  # another key, its own budget


def test_ingest_has_its_own_budget_per_key(limits, organization):
    _, raw_key = api_key_create(organization=organization, scopes=["ingest", "read"])
    client = _client(raw_key)
    for _ in range(2):
        assert client.get("/api/v1/customers").status_code == 200

    statuses = [client.get("/api/v1/budgets/blocklist").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]  # reads exhausted, ingest still has its 3
    _assert_rate_limited(client.post("/api/v1/ingest", [], format="json"))


def test_writes_are_limited_per_key_and_the_window_moves_on(limits, organization):
    _, raw_key = api_key_create(organization=organization)
    client = _client(raw_key)

    with time_machine.travel("2026-06-30T23:59:30Z", tick=False) as clock:
        assert client.post("/api/v1/customers", {"name": "A"}, format="json").status_code == 201
        _assert_rate_limited(client.post("/api/v1/customers", {"name": "B"}, format="json"))
        clock.shift(61)
        assert client.post("/api/v1/customers", {"name": "C"}, format="json").status_code == 201


def test_failed_authentications_are_limited_per_client_address(limits, organization):
    _, good_key = api_key_create(organization=organization)
    wrong = _client("tl_live_" + "x" * 40, address="203.0.113.7")

    assert [wrong.get("/api/v1/customers").status_code for _ in range(3)] == [401, 401, 401]
    _assert_rate_limited(wrong.get("/api/v1/customers"))
    # The address is blocked even with a good key now; other addresses are not.
    _assert_rate_limited(_client(good_key, address="203.0.113.7").get("/api/v1/customers"))
    assert _client(good_key, address="198.51.100.1").get("/api/v1/customers").status_code == 200


def test_successful_authentications_do_not_count(limits, organization):
    limits["read"] = ""  # off
    _, good_key = api_key_create(organization=organization)
    client = _client(good_key, address="203.0.113.8")

    assert {client.get("/api/v1/customers").status_code for _ in range(10)} == {200}


def test_default_limits_are_generous(settings):
    from rest_framework.throttling import SimpleRateThrottle

    per_minute = {
        bucket: SimpleRateThrottle.parse_rate(None, rate)[0] * 60 / SimpleRateThrottle.parse_rate(None, rate)[1]
        for bucket, rate in settings.API_RATE_LIMITS.items()
    }
    assert per_minute["ingest"] >= 1000 and per_minute["read"] >= 1000 and per_minute["write"] >= 100
    assert 10 <= per_minute["auth_failures"] <= 100
