"""Ingest's first round trip doubles as Django's per-request connection health check."""

import pytest
from django.db import connection, connections
from django.utils import timezone

from events.dialects import margindash
from events.models import UsageEvent
from events.services import ingest_events
from tests.events.conftest import md_event

pytestmark = pytest.mark.django_db(transaction=True)


def _drafts(key):
    return margindash.parse_batch({"events": [md_event("cust-1", key=key)]}, now=timezone.now())


def new_request():
    """What Django does when a request starts on a reused connection (request_started)."""
    connection.close_if_unusable_or_obsolete()
    assert connection.health_check_enabled and not connection.health_check_done


def server_closes_the_connection():
    """The server ends this process's connection (as an idle timeout or a restart would)."""
    killer = connections.create_connection("default")
    try:
        with killer.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [connection.connection.info.backend_pid])
    finally:
        killer.close()


def test_a_reused_connection_closed_by_the_server_is_replaced_and_nothing_is_lost(organization, price_catalog):
    ingest_events(organization=organization, source=UsageEvent.Source.MARGINDASH, items=_drafts("first"))
    server_closes_the_connection()
    new_request()

    result = ingest_events(organization=organization, source=UsageEvent.Source.MARGINDASH, items=_drafts("second"))

    assert [outcome.status for outcome in result.outcomes] == ["created"]
    assert UsageEvent.objects.filter(organization=organization).count() == 2


def test_a_healthy_reused_connection_is_not_checked_with_a_round_trip_of_its_own(
    organization, price_catalog, monkeypatch
):
    ingest_events(organization=organization, source=UsageEvent.Source.MARGINDASH, items=_drafts("first"))
    new_request()
    checks = []
    wrapper = connections["default"]
    is_usable = wrapper.is_usable
    monkeypatch.setattr(wrapper, "is_usable", lambda: checks.append(1) or is_usable())

    ingest_events(organization=organization, source=UsageEvent.Source.MARGINDASH, items=_drafts("second"))

    assert checks == []  # Django's SELECT 1 was not sent
    assert connection.health_check_done
