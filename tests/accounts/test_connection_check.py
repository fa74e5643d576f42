"""Without Redis, the per-request credentials-version read is an API request's first statement, so
it doubles as Django's connection health check (accounts.connection_check), as ingest's first round
trip does (tests/events/test_ingest_connection.py)."""

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db(transaction=True)


def _new_request():
    """What Django does when a request starts on a reused connection (request_started; the test
    client leaves it out)."""
    connection.close_if_unusable_or_obsolete()
    assert connection.health_check_enabled and not connection.health_check_done


@pytest.fixture
def client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert client.get("/api/v1/organization").status_code == 200  # the key is verified and kept
    return client


def test_a_healthy_reused_connection_is_not_checked_with_a_round_trip_of_its_own(client, monkeypatch):
    _new_request()
    checks = []
    wrapper = connections["default"]
    is_usable = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda: checks.append(1) or is_usable())

    assert client.get("/api/v1/organization").status_code == 200

    assert checks == []  # Django's SELECT 1 was not sent
    assert connection.health_check_done


def test_a_reused_connection_closed_by_the_server_is_replaced(client):
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    finally:
        killer.close()
    _new_request()

    response = client.get("/api/v1/organization")

    assert response.status_code == 200, response.content
