"""Model calls are meterable: tokens, cost, model and vendor reach billable metrics, at ingest and
in a rebuild from the ledger alike (billing.meterable)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import meterable, metering, services
from billing.models import UsageRollup
from costcalc.models import ModelPrice
from events.hooks import RecordedCall, RecordedEvent
from events.models import IngestSettings, VendorResponse
from tests.billing.tokens import call, create_catalog, draft, send

AT = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 15, 5, tzinfo=UTC)
HOUR = datetime(2026, 3, 10, 14, tzinfo=UTC)


@pytest.fixture
def catalog(db):
    return create_catalog()


def rollups(metric) -> dict:
    """{group values as a sorted tuple: total} of a metric's rollups, over all hours."""
    result: dict = {}
    for group, total in UsageRollup.objects.filter(metric=metric).values_list("group_values", "total"):
        key = tuple(sorted(group.items()))
        result[key] = result.get(key, Decimal(0)) + total
    return result


def mixed_batch():
    return [
        draft("acme", AT, [call("anthropic/claude-3.5-sonnet", 2000, 1000), call("openai/gpt-4o", 1000, 500)]),
        draft("acme", AT, [call("anthropic/claude-3-haiku", 4000, 2000)], revenue=90_000),
        draft("acme", AT, [call("anthropic/claude-3.5-sonnet", 100, 50)], event_type="embed"),
        draft("acme", AT, event_type="chat", properties={"tokens": 7}),  # no model call
    ]


def test_output_tokens_of_one_vendor_per_model_is_one_metric(organization, catalog):
    metric = services.billable_metric_create(
        organization=organization,
        name="anthropic output tokens",
        aggregation_type="SUM",
        aggregation_key="output_tokens",
        property_filters=[{"name": "vendor", "in_values": ["anthropic"]}],
        group_keys=["model"],
    )

    send(organization, mixed_batch(), now=NOW)

    assert rollups(metric) == {
        (("model", "anthropic/claude-3.5-sonnet"),): Decimal(1050),
        (("model", "anthropic/claude-3-haiku"),): Decimal(2000),
    }
    assert set(UsageRollup.objects.filter(metric=metric).values_list("hour", flat=True)) == {HOUR}


def test_cost_tokens_and_requests_per_model_come_from_the_calls_as_priced(organization, catalog):
    spec = {"aggregation_type": "SUM", "group_keys": ["model"]}
    cost = services.billable_metric_create(
        organization=organization, name="cost", aggregation_key="cost_microdollars", **spec
    )
    requests = services.billable_metric_create(
        organization=organization, name="req", aggregation_key="requests", **spec
    )
    inputs = services.billable_metric_create(
        organization=organization, name="in", aggregation_key="input_tokens", **spec
    )

    send(organization, mixed_batch(), now=NOW)

    stored = {}
    for model, priced in VendorResponse.objects.values_list("model", "cost_microdollars"):
        stored[(("model", model),)] = stored.get((("model", model),), 0) + priced
    stored[(("model", None),)] = 0  # the event without calls: its own cost, no model
    assert rollups(cost) == {key: Decimal(value) for key, value in stored.items()}
    assert rollups(cost)[(("model", "openai/gpt-4o"),)] == Decimal(7500)  # 1000 x $2.50 + 500 x $10 per million
    assert rollups(requests) == {
        (("model", "anthropic/claude-3.5-sonnet"),): Decimal(2),
        (("model", "openai/gpt-4o"),): Decimal(1),
        (("model", "anthropic/claude-3-haiku"),): Decimal(1),
    }
    assert rollups(inputs)[(("model", "anthropic/claude-3.5-sonnet"),)] == Decimal(2100)
    # A call-field metric sees the event without calls too (its own cost, no model): nothing unbilled.
    assert rollups(cost)[(("model", None),)] == Decimal(0)


def test_metrics_without_call_fields_still_see_one_record_per_event(organization, catalog):
    count = services.billable_metric_create(organization=organization, name="events", aggregation_type="COUNT")
    cost = services.billable_metric_create(
        organization=organization, name="event cost", aggregation_type="SUM", aggregation_key="cost_microdollars"
    )
    revenue = services.billable_metric_create(
        organization=organization,
        name="revenue per model",
        aggregation_type="SUM",
        aggregation_key="revenue_microdollars",
        group_keys=["model"],
    )

    send(organization, mixed_batch(), now=NOW)

    assert rollups(count) == {(): Decimal(4)}  # events, not calls
    assert rollups(cost) == {(): Decimal(7500 + 21000 + 3500 + 300 + 750)}
    assert rollups(revenue) == {(("model", "anthropic/claude-3-haiku"),): Decimal(90_000)}


def test_event_fields_filter_and_group(organization, catalog):
    by_feature = services.billable_metric_create(
        organization=organization,
        name="tokens per feature",
        aggregation_type="SUM",
        aggregation_key="output_tokens",
        group_keys=["feature_key", "meta.plan"],
        property_filters=[{"name": "customer", "in_values": ["acme"]}, {"name": "event_type", "in_values": ["chat"]}],
    )
    batch = [
        draft("acme", AT, [call("openai/gpt-4o", 10, 5)], feature_key="summaries", meta={"plan": "pro"}),
        draft("acme", AT, [call("openai/gpt-4o", 10, 7)], feature_key="search"),
        draft("globex", AT, [call("openai/gpt-4o", 10, 9)], feature_key="summaries"),
    ]

    send(organization, batch, now=NOW)

    assert rollups(by_feature) == {
        (("feature_key", "summaries"), ("meta.plan", "pro")): Decimal(5),
        (("feature_key", "search"), ("meta.plan", None)): Decimal(7),
    }


def test_a_sent_property_keeps_its_name_but_call_fields_describe_the_call(organization, catalog):
    metric = services.billable_metric_create(
        organization=organization,
        name="m",
        aggregation_type="SUM",
        aggregation_key="output_tokens",
        group_keys=["model", "customer"],
    )
    batch = [draft("acme", AT, [call("openai/gpt-4o", 10, 5)], properties={"model": "mine", "customer": "team-a"})]

    send(organization, batch, now=NOW)

    assert rollups(metric) == {(("customer", "team-a"), ("model", "openai/gpt-4o")): Decimal(5)}


def test_an_unpriced_call_is_metered_under_the_model_sent_at_cost_zero(organization, catalog):
    IngestSettings.objects.create(organization=organization, accept_unpriced_models=True)
    metric = services.billable_metric_create(
        organization=organization,
        name="m",
        aggregation_type="SUM",
        aggregation_key="input_tokens",
        group_keys=["vendor", "model"],
    )
    cost = services.billable_metric_create(
        organization=organization,
        name="c",
        aggregation_type="SUM",
        aggregation_key="cost_microdollars",
        group_keys=["model"],
    )

    send(organization, [draft("acme", AT, [call("acme-llm", 40, 1)])], now=NOW)

    assert rollups(metric) == {(("model", "acme-llm"), ("vendor", "")): Decimal(40)}
    assert rollups(cost) == {(("model", "acme-llm"),): Decimal(0)}


def test_the_ingest_hook_reads_nothing_back(organization, catalog):
    services.billable_metric_create(
        organization=organization,
        name="m",
        aggregation_type="SUM",
        aggregation_key="output_tokens",
        group_keys=["model"],
    )
    send(organization, mixed_batch(), now=NOW)  # warm the metric cache

    with CaptureQueriesContext(connection) as queries:
        send(organization, mixed_batch(), now=NOW)

    reads = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")]
    assert not [sql for sql in reads if "events_vendorresponse" in sql or "costcalc_modelprice" in sql]


def test_a_rebuild_reads_the_same_values_from_the_ledger_and_keeps_the_prices_calls_were_priced_with(
    organization, catalog
):
    metrics = [
        services.billable_metric_create(organization=organization, name=name, **spec)
        for name, spec in {
            "cost": {"aggregation_type": "SUM", "aggregation_key": "cost_microdollars", "group_keys": ["model"]},
            "out": {
                "aggregation_type": "SUM",
                "aggregation_key": "output_tokens",
                "group_keys": ["vendor", "feature_key"],
            },
            "calls": {"aggregation_type": "COUNT", "property_filters": [{"name": "model", "exists": True}]},
            "max": {"aggregation_type": "MAX", "aggregation_key": "reasoning_tokens", "group_keys": ["customer"]},
            "rev": {"aggregation_type": "SUM", "aggregation_key": "revenue_microdollars"},
            "users": {"aggregation_type": "UNIQUE", "aggregation_key": "customer", "group_keys": ["model"]},
        }.items()
    ]
    for offset in range(3):
        batch = [
            *mixed_batch(),
            draft(f"c{offset}", AT + timedelta(hours=offset), [call("openai/gpt-4o", 300, 200, reasoning=50)]),
            draft(
                "acme", AT, [call("anthropic/claude-3.5-sonnet", 900, 20, cached=100, cache_write=300)], feature_key="f"
            ),
        ]
        send(organization, batch, now=NOW + timedelta(hours=offset))
    at_ingest = {metric.name: rollups(metric) for metric in metrics}
    # The catalog price changes later: calls keep the price they were priced with.
    ModelPrice.objects.filter(slug="openai/gpt-4o").update(output_per_mtok=Decimal(1000))

    for metric in metrics:
        metering.metric_rollups_rebuild(metric=metric, batch_size=4)

    assert {metric.name: rollups(metric) for metric in metrics} == at_ingest
    assert at_ingest["rev"] == {(): Decimal(270_000)}


def test_call_records_are_pure():
    event = RecordedEvent(
        id=1,
        organization_id=1,
        customer_id=2,
        event_type="chat",
        occurred_at=AT,
        properties={"region": "eu"},
        cost_microdollars=30,
        revenue_microdollars=100,
        calls=(RecordedCall("anthropic/claude-3-haiku", 10, 5, 0, 0, 0, 20), RecordedCall("x", 1, 1)),
        customer_external_id="acme",
    )

    first, second = meterable.call_records(event)

    assert first == {
        "event_type": "chat",
        "customer": "acme",
        "cost_microdollars": 20,
        "revenue_microdollars": 100,
        "region": "eu",
        "model": "anthropic/claude-3-haiku",
        "vendor": "anthropic",
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "requests": 1,
    }
    assert "revenue_microdollars" not in second
    assert (second["vendor"], second["cost_microdollars"]) == ("", 0)
    assert meterable.event_record(event)["cost_microdollars"] == 30


def test_a_property_named_like_a_token_count_is_not_a_calls_tokens(organization, catalog):
    metric = services.billable_metric_create(
        organization=organization, name="m", aggregation_type="COUNT", group_keys=["model"]
    )
    batch = [draft("acme", AT, properties={"input_tokens": "many", "output_tokens": 3})]  # no model call

    send(organization, batch, now=NOW)

    assert list(UsageRollup.objects.filter(metric=metric).values_list("event_count", "tokens")) == [(1, 0)]
