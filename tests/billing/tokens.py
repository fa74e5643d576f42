"""Helpers for token-billing tests: a three-model price catalog and model-call events sent through
the real ingest core (events.services.ingest), with a fixed arrival time (no wall clock)."""

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from costcalc.models import ModelPrice
from events.drafts import CallDraft, CustomerRef, EventDraft
from events.services.ingest import ingest_events

SINCE = datetime(2024, 1, 1, tzinfo=UTC)
# $ per million tokens: input, output, cache read, cache write
PRICES = {
    "openai/gpt-4o": ("2.5", "10", "1.25", None),
    "anthropic/claude-3.5-sonnet": ("3", "15", "0.3", "3.75"),
    "anthropic/claude-3-haiku": ("0.25", "1.25", None, None),
}
_keys = itertools.count(1)


def create_catalog() -> dict[str, ModelPrice]:
    rows = [
        ModelPrice(
            slug=slug,
            vendor=slug.split("/")[0],
            display_name=slug,
            input_per_mtok=Decimal(inp),
            output_per_mtok=Decimal(out),
            cache_read_per_mtok=Decimal(read) if read else None,
            cache_write_per_mtok=Decimal(write) if write else None,
            effective_from=SINCE,
            source="manual",
        )
        for slug, (inp, out, read, write) in PRICES.items()
    ]
    return {row.slug: row for row in ModelPrice.objects.bulk_create(rows)}


def call(model, input_tokens, output_tokens, cached=0, cache_write=0, reasoning=0) -> CallDraft:
    return CallDraft(
        model, input_tokens, output_tokens, cached, cache_write, reasoning, "events[0].vendor_responses[0]"
    )


def draft(
    customer: str,
    occurred_at: datetime,
    calls=(),
    *,
    event_type: str = "chat",
    properties: dict | None = None,
    revenue: int | None = None,
    cost: int | None = None,
    feature_key: str = "",
    meta: dict | None = None,
    usage_units: Decimal | None = None,
) -> EventDraft:
    properties = properties or {}
    return EventDraft(
        customer=CustomerRef("id", customer, "customer_id"),
        event_type=event_type,
        occurred_at=occurred_at,
        idempotency_key=f"md:test-{next(_keys)}",
        calls=list(calls),
        properties=properties,
        properties_json=orjson.dumps(properties).decode(),
        cost_microdollars=cost,
        revenue_microdollars=revenue,
        usage_units=usage_units,
        feature_key=feature_key,
        meta=meta or {},
    )


def send(organization, drafts, *, now: datetime, source: str = "margindash"):
    """Ingest the drafts as one batch, arriving at ``now``; every one must be created."""
    result = ingest_events(organization=organization, source=source, items=list(drafts), now=now)
    assert [outcome.status for outcome in result.outcomes] == ["created"] * len(drafts), [
        outcome.error for outcome in result.outcomes
    ]
    return result
