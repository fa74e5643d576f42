"""Fixtures for the events tests: a small price catalog (ModelPrice rows created directly) and
helpers to post to the ingest endpoints."""

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connections

from costcalc.models import ModelPrice
from events.models import IngestSettings


@pytest.fixture
def price_catalog(db) -> dict[str, ModelPrice]:
    """gpt-4o at $2.50 / $10 per million (cache reads $1.25), claude-3.5-sonnet at $3 / $15."""
    since = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [
        ModelPrice(
            slug="openai/gpt-4o",
            vendor="openai",
            display_name="GPT-4o",
            input_per_mtok=Decimal("2.5"),
            output_per_mtok=Decimal("10"),
            cache_read_per_mtok=Decimal("1.25"),
            effective_from=since,
            source="manual",
        ),
        ModelPrice(
            slug="anthropic/claude-3.5-sonnet",
            vendor="anthropic",
            display_name="Claude 3.5 Sonnet",
            input_per_mtok=Decimal("3"),
            output_per_mtok=Decimal("15"),
            effective_from=since,
            source="manual",
        ),
    ]
    return {row.slug: row for row in ModelPrice.objects.bulk_create(rows)}


@pytest.fixture
def accept_unpriced(organization) -> IngestSettings:
    return IngestSettings.objects.create(organization=organization, accept_unpriced_models=True)


def md_event(customer_id: str = "cust-1", key: str | None = None, **extra) -> dict:
    """A valid MarginDash event (gpt-4o, 1200 in / 340 out = 6,400 µ$ with the test catalog)."""
    event = {
        "customer_id": customer_id,
        "event_type": "summarize",
        "vendor_responses": [{"model": "openai/gpt-4o", "input_tokens": 1200, "output_tokens": 340}],
    }
    if key is not None:
        event["idempotency_key"] = key
    event.update(extra)
    return event


@pytest.fixture
def other_client(db):
    """An API client of a second organization (for tenant isolation tests); `.organization` is it."""
    from rest_framework.test import APIClient

    from accounts.services import api_key_create
    from tests.factories import OrganizationFactory

    other = OrganizationFactory(name="Other Tenant")
    _, raw_key = api_key_create(organization=other, name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    client.organization = other
    return client


@pytest.fixture
def recorded_hook_calls(monkeypatch):
    """Register a recording ingest hook (alone) for the duration of a test."""
    from events import hooks

    calls: list[tuple] = []
    monkeypatch.setattr(hooks, "_ingest_hooks", [])
    hooks.register_ingest_hook(lambda *, organization, events: calls.append((organization, list(events))))
    return calls


def run_together(count: int, work: Callable[[int], object]) -> list[Exception]:
    """Call `work(number)` for number 0..count-1, each in its own thread (so on its own database
    connection, committing for real) released together; returns the exceptions they raised."""
    barrier = threading.Barrier(count)
    errors: list[Exception] = []

    def worker(number: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(number)
        except Exception as error:  # returned to the test, which asserts there were none
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return errors
