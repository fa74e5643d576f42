"""The metering fields: what a stored usage event offers billable metrics, besides its own properties.

A billable metric reads its aggregation key, property filters and group keys from a record of
fields. Pure (no Django, no database): ingest (billing.metering) and rebuilds build the records
from the same `RecordedEvent`, so a rollup rebuilt from the ledger equals the one written at ingest.

Event fields (every event):
    event_type, customer (the customer's external id), cost_microdollars (the event's cost),
    revenue_microdollars (only when the event has revenue), usage_units (when sent),
    feature_key (Tanso `featureKey`, when sent), meta.KEY (each top-level entry of Tanso `meta`).
    A property the client sent under one of these names keeps its value.

Model-call fields (one record per model call):
    model (the catalog slug that priced the call, e.g. ``anthropic/claude-sonnet-4``; the model as
    sent when it could not be priced), vendor (the slug's first part: ``anthropic``), input_tokens,
    output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, requests (1) and
    cost_microdollars (the call's own cost, as priced at ingest; 0 when unpriced). They win over a
    property of the same name: they describe the call being measured.

Which records a metric sees. A metric that names a model-call field (as aggregation key, group key
or property filter) is measured once per model call: each call's record holds the event fields and
properties plus that call's fields (revenue_microdollars on the event's first call only, so a SUM of
revenue is not repeated per call); an event without model calls gives one record of event fields.
Every other metric is measured once per event, as before, on the event fields and properties.

A prefix of model slugs is a filter on `vendor`: "output tokens of anthropic/* models, per model"
is SUM of output_tokens, property filter ``vendor in ["anthropic"]``, group key ``model``.
"""

from __future__ import annotations

from collections.abc import Iterable

from costcalc.sources import vendor_of

CALL_FIELDS = frozenset(
    {
        "model",
        "vendor",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "requests",
    }
)


def names_call_fields(names: Iterable[str]) -> bool:
    """Whether a metric that reads these field names is measured per model call."""
    return any(name in CALL_FIELDS for name in names)


def event_record(event) -> dict:
    """The event's own properties over its event fields (`event`: an events.hooks.RecordedEvent)."""
    fields: dict = {
        "event_type": event.event_type,
        "customer": event.customer_external_id,
        "cost_microdollars": event.cost_microdollars,
    }
    if event.revenue_microdollars:
        fields["revenue_microdollars"] = event.revenue_microdollars
    if event.usage_units is not None:
        fields["usage_units"] = event.usage_units
    if event.feature_key:
        fields["feature_key"] = event.feature_key
    if event.meta:
        for key, value in event.meta.items():
            fields[f"meta.{key}"] = value
    if event.properties:
        fields.update(event.properties)
    return fields


def call_records(event, base: dict | None = None) -> list[dict]:
    """One record per model call (the event record plus the call's fields); an event without calls
    gives its event record alone."""
    base = event_record(event) if base is None else base
    if not event.calls:
        return [base]
    records = []
    for index, call in enumerate(event.calls):
        record = dict(base)
        if index and not event.properties.get("revenue_microdollars"):
            record.pop("revenue_microdollars", None)
        record.update(
            model=call.model,
            vendor=vendor_of(call.model) if "/" in call.model else "",
            input_tokens=call.input_tokens,
            output_tokens=call.output_tokens,
            cache_read_tokens=call.cache_read_tokens,
            cache_write_tokens=call.cache_write_tokens,
            reasoning_tokens=call.reasoning_tokens,
            requests=1,
            cost_microdollars=call.cost_microdollars or 0,
        )
        records.append(record)
    return records
