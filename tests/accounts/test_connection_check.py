"""Without Redis, the per-request credentials-version read is an API request's first statement, so
it doubles as Django's connection health check (accounts.connection_check), as ingest's first round
trip does (tests/events/test_ingest_connection.py)."""

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from tests.events.test_ingest_connection import new_request, server_closes_the_connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(api_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    assert client.get("/api/v1/organization").status_code == 200  # the key is verified and kept
    return client


def test_a_healthy_reused_connection_is_not_checked_with_a_round_trip_of_its_own(client, monkeypatch):
    new_request()
    checks = []
    wrapper = connections["default"]
    is_usable = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda: checks.append(1) or is_usable())

    assert client.get("/api/v1/organization").status_code == 200

    assert checks == []  # Django's SELECT 1 was not sent
    assert connection.health_check_done


def test_a_reused_connection_closed_by_the_server_is_replaced(client):
    server_closes_the_connection()
    new_request()

    response = client.get("/api/v1/organization")

    assert response.status_code == 200, response.content
