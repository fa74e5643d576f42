"""The dialect parsers are pure: every field rule and limit is tested here without a database."""

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.api.errors import ApiError
from events.dialects import client_key, margindash, metronome, tanso
from events.dialects.fields import decimal_number
from events.drafts import EventDraft, EventError

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def md(**overrides) -> dict:
    event = {
        "customer_id": "8291",
        "vendor_responses": [{"model": "openai/gpt-4o", "input_tokens": 1200, "output_tokens": 340}],
    }
    event.update(overrides)
    return event


def md_one(event) -> EventDraft | EventError:
    return margindash.parse_batch({"events": [event]}, now=NOW)[0]


def md_error(event) -> EventError:
    result = md_one(event)
    assert isinstance(result, EventError), result
    return result


def call(**overrides) -> dict:
    response = {"model": "openai/gpt-4o", "input_tokens": 10, "output_tokens": 10}
    response.update(overrides)
    return response


# --- MarginDash ---------------------------------------------------------------------------------


def test_margindash_defaults_and_namespaced_key():
    draft = md_one(md(idempotency_key="sdk-1"))

    assert draft.event_type == "ai_request"
    assert draft.occurred_at == NOW
    assert draft.revenue_microdollars == 0
    assert draft.idempotency_key == "md:sdk-1"
    assert client_key(draft.idempotency_key) == "sdk-1"
    assert draft.customer.kind == "id" and draft.customer.value == "8291"
    assert draft.calls[0].field == "events[0].vendor_responses[0]"


def test_margindash_generates_a_key_when_absent():
    first, second = margindash.parse_batch({"events": [md(), md()]}, now=NOW)

    assert first.idempotency_key.startswith("md:auto-")
    assert first.idempotency_key != second.idempotency_key
    assert first.meta == {"idempotency_key_generated": True}


@pytest.mark.parametrize("count", [1, 100])
def test_margindash_accepts_1_to_100_events(count):
    assert len(margindash.parse_batch({"events": [md()] * count}, now=NOW)) == count


@pytest.mark.parametrize("body", [{"events": []}, {"events": [md()] * 101}, {"events": "x"}, {}, [md()], "x"])
def test_margindash_batch_shape_errors_are_400(body):
    with pytest.raises(ApiError) as caught:
        margindash.parse_batch(body, now=NOW)
    assert caught.value.status_code == 400
    assert caught.value.details["field"] == "events"


@pytest.mark.parametrize("tokens", [0, 1, 100_000_000])
def test_token_counts_accept_the_documented_range(tokens):
    draft = md_one(md(vendor_responses=[call(input_tokens=tokens, output_tokens=1)]))
    assert draft.calls[0].input_tokens == tokens


@pytest.mark.parametrize(
    ("response", "field", "text"),
    [
        (call(input_tokens=100_000_001), "input_tokens", "between 0 and 100,000,000"),
        (call(output_tokens=100_000_001), "output_tokens", "between 0 and 100,000,000"),
        (call(input_tokens=-1), "input_tokens", "between"),
        (call(input_tokens=0, output_tokens=0), "input_tokens", "at least one"),
        (call(input_tokens=1.5), "input_tokens", "integer"),
        (call(input_tokens="10"), "input_tokens", "integer"),
        (call(input_tokens=True), "input_tokens", "integer"),
        ({"model": "openai/gpt-4o", "input_tokens": 10}, "output_tokens", "required"),
        ({"input_tokens": 10, "output_tokens": 1}, "model", "required"),
        (call(model=""), "model", "empty"),
        (call(cached_input_tokens=11), "cached_input_tokens", "part of input_tokens"),
        (call(cached_input_tokens=6, cache_creation_input_tokens=5), "cached_input_tokens", "part of input_tokens"),
        (call(reasoning_tokens=11), "reasoning_tokens", "part of output_tokens"),
    ],
)
def test_vendor_response_errors_name_the_field(response, field, text):
    error = md_error(md(vendor_responses=[response]))

    assert error.code == "validation_error"
    assert error.field == f"events[0].vendor_responses[0].{field}"
    assert text in error.message


def test_integral_float_tokens_and_sdk_extensions_are_accepted():
    draft = md_one(
        md(
            vendor_responses=[
                call(input_tokens=100.0, cached_input_tokens=40, cache_creation_input_tokens=10, reasoning_tokens=5)
            ]
        )
    )
    assert draft.calls[0].input_tokens == 100
    assert (draft.calls[0].cached_input_tokens, draft.calls[0].cache_write_tokens) == (40, 10)
    assert draft.calls[0].reasoning_tokens == 5


@pytest.mark.parametrize("responses", [[], None, "x", [call()] * 1001])
def test_vendor_responses_need_one_to_a_thousand(responses):
    event = md(vendor_responses=responses) if responses is not None else {"customer_id": "1"}
    assert md_error(event).field == "events[0].vendor_responses"


@pytest.mark.parametrize("length", [1, 255])
def test_event_type_up_to_255_characters(length):
    assert md_one(md(event_type="e" * length)).event_type == "e" * length


@pytest.mark.parametrize(("value", "text"), [("e" * 256, "at most 255"), ("", "empty"), (5, "string")])
def test_event_type_errors(value, text):
    error = md_error(md(event_type=value))
    assert error.field == "events[0].event_type"
    assert text in error.message


@pytest.mark.parametrize("value", [8291, None, "", "x" * 256, "a\x00b"])
def test_customer_id_must_be_a_non_empty_string(value):
    event = md(customer_id=value)
    assert md_error(event).field == "events[0].customer_id"


@pytest.mark.parametrize(
    ("cents", "microdollars"), [(0, 0), (1500, 15_000_000), (10_000_000, 100_000_000_000), (0.5, 5_000)]
)
def test_revenue_in_cents_becomes_microdollars(cents, microdollars):
    assert md_one(md(revenue_amount_in_cents=cents)).revenue_microdollars == microdollars


@pytest.mark.parametrize("cents", [10_000_001, -1, "15", float("nan")])
def test_revenue_outside_0_to_10_million_cents_is_rejected(cents):
    assert md_error(md(revenue_amount_in_cents=cents)).field == "events[0].revenue_amount_in_cents"


@pytest.mark.parametrize(
    "moment",
    [NOW - timedelta(days=90), NOW + timedelta(hours=1), NOW - timedelta(days=1)],
)
def test_occurred_at_window_boundaries_are_inside(moment):
    text = moment.isoformat().replace("+00:00", "Z")
    assert md_one(md(occurred_at=text)).occurred_at == moment


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (NOW - timedelta(days=90, seconds=1), "within the last 90 days"),
        (NOW + timedelta(hours=1, seconds=1), "no more than 1 hour in the future"),
    ],
)
def test_occurred_at_outside_the_window_is_rejected(moment, text):
    error = md_error(md(occurred_at=moment.isoformat()))
    assert error.field == "events[0].occurred_at"
    assert text in error.message


def test_occurred_at_offsets_are_normalized_and_naive_means_utc():
    assert md_one(md(occurred_at="2026-06-15T14:30:00+02:00")).occurred_at == datetime(2026, 6, 15, 12, 30, tzinfo=UTC)
    assert md_one(md(occurred_at="2026-06-15T10:00:00")).occurred_at == datetime(2026, 6, 15, 10, tzinfo=UTC)
    assert md_error(md(occurred_at="yesterday")).field == "events[0].occurred_at"


@pytest.mark.parametrize("key", ["", "k" * 251, 12])
def test_idempotency_key_must_be_1_to_250_characters(key):
    assert md_error(md(idempotency_key=key)).field == "events[0].idempotency_key"


def test_one_bad_event_does_not_affect_its_neighbours():
    results = margindash.parse_batch({"events": [md(), "not an object", md(customer_id=None), md()]}, now=NOW)

    assert [type(result).__name__ for result in results] == ["EventDraft", "EventError", "EventError", "EventDraft"]
    assert results[1].field == "events[1]"


# --- Metronome ----------------------------------------------------------------------------------


def mt(**overrides) -> dict:
    event = {
        "transaction_id": "tx-1",
        "customer_id": "team@example.com",
        "event_type": "langModel4",
        "timestamp": "2026-06-15T11:00:00Z",
        "properties": {"tokens": 1_000_000, "user_id": "u1"},
    }
    event.update(overrides)
    return event


def mt_error(event) -> dict:
    with pytest.raises(ApiError) as caught:
        metronome.parse_batch([event], now=NOW)
    assert caught.value.status_code == 400
    return caught.value.details


def test_metronome_event_becomes_a_draft():
    (draft,) = metronome.parse_batch([mt()], now=NOW)

    assert draft.idempotency_key == "mt:tx-1"
    assert draft.customer.kind == "id" and draft.customer.value == "team@example.com"
    assert draft.occurred_at == datetime(2026, 6, 15, 11, tzinfo=UTC)
    assert draft.properties == {"tokens": 1_000_000, "user_id": "u1"}
    assert draft.properties_json == '{"tokens":1000000,"user_id":"u1"}'
    assert draft.calls == [] and draft.cost_microdollars is None


@pytest.mark.parametrize("count", [1, 100])
def test_metronome_takes_1_to_100_events(count):
    assert len(metronome.parse_batch([mt(transaction_id=f"t{i}") for i in range(count)], now=NOW)) == count


@pytest.mark.parametrize("body", [[], [mt()] * 101, {"usage": [mt()]}, "x"])
def test_metronome_body_must_be_an_array_of_1_to_100(body):
    with pytest.raises(ApiError) as caught:
        metronome.parse_batch(body, now=NOW)
    assert caught.value.status_code == 400


def test_metronome_timestamp_34_day_boundary():
    oldest = NOW - timedelta(days=34)
    (draft,) = metronome.parse_batch([mt(timestamp=oldest.isoformat())], now=NOW)
    assert draft.occurred_at == oldest

    details = mt_error(mt(timestamp=(oldest - timedelta(seconds=1)).isoformat()))
    assert details["field"] == "usage[0].timestamp"
    assert "34 days" in details["errors"][0]["message"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timestamp": "2026-06-15T11:00:00"}, "timestamp"),  # RFC 3339 needs an offset
        ({"timestamp": None}, "timestamp"),
        ({"transaction_id": "t" * 129}, "transaction_id"),
        ({"transaction_id": None}, "transaction_id"),
        ({"customer_id": None}, "customer_id"),
        ({"event_type": None}, "event_type"),
        ({"properties": [1]}, "properties"),
        ({"properties": {"k": "a\x00"}}, "properties"),
    ],
)
def test_metronome_field_errors(overrides, field):
    assert mt_error(mt(**overrides))["field"] == f"usage[0].{field}"


def test_metronome_transaction_id_of_128_characters_is_fine():
    (draft,) = metronome.parse_batch([mt(transaction_id="t" * 128)], now=NOW)
    assert client_key(draft.idempotency_key) == "t" * 128


def test_metronome_rejects_the_whole_request_and_lists_every_bad_event():
    details = mt_error_many([mt(), mt(customer_id=None), mt(), mt(timestamp="bad")])

    assert [error["index"] for error in details["errors"]] == [1, 3]


def mt_error_many(events) -> dict:
    with pytest.raises(ApiError) as caught:
        metronome.parse_batch(events, now=NOW)
    return caught.value.details


# --- Tanso --------------------------------------------------------------------------------------


def ts(**overrides) -> dict:
    event = {"eventName": "chat", "customerReferenceId": "acct-9"}
    event.update(overrides)
    return event


def ts_error(body, header_key=None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        tanso.parse_event(body, header_key=header_key, now=NOW)
    assert caught.value.status_code == 400
    return caught.value


def test_tanso_event_with_all_fields():
    draft = tanso.parse_event(
        ts(
            eventIdempotencyKey="evt-1",
            occurredAt="2026-06-15T10:00:00Z",
            flowId="flow-7",
            featureKey="chat",
            costAmount=0.0123,
            revenueAmount=1.5,
            usageUnits=3,
            meta={"plan": "pro"},
            subscriptionId=str(uuid.UUID(int=1)),
        ),
        header_key=None,
        now=NOW,
    )

    assert draft.idempotency_key == "ts:evt-1"
    assert draft.cost_microdollars == 12_300
    assert draft.revenue_microdollars == 1_500_000
    assert draft.usage_units == Decimal(3)
    assert (draft.flow_id, draft.feature_key) == ("flow-7", "chat")
    assert draft.meta == {"plan": "pro", "subscriptionId": str(uuid.UUID(int=1))}


def test_tanso_header_key_wins_over_the_body_key():
    draft = tanso.parse_event(ts(eventIdempotencyKey="body"), header_key="header", now=NOW)
    assert draft.idempotency_key == "ts:header"


def test_tanso_generates_a_key_when_none_is_given():
    draft = tanso.parse_event(ts(), header_key=None, now=NOW)
    assert draft.idempotency_key.startswith("ts:evt_")
    assert draft.meta["idempotency_key_generated"] is True


@pytest.mark.parametrize(
    "identifiers",
    [
        {},
        {"customerReferenceId": "a", "stripeCustomerId": "cus_1"},
        {"customerReferenceId": "a", "customerId": str(uuid.uuid4())},
        {"stripeCustomerId": "cus_1", "customerId": str(uuid.uuid4())},
    ],
)
def test_tanso_needs_exactly_one_customer_identifier(identifiers):
    error = ts_error({"eventName": "chat", **identifiers})
    assert "exactly one of customerReferenceId, stripeCustomerId or customerId" in str(error.detail)


@pytest.mark.parametrize(
    ("identifiers", "kind"),
    [
        ({"customerReferenceId": "acct-9"}, "id"),
        ({"stripeCustomerId": "cus_123"}, "stripe"),
        ({"customerId": "6F9619FF-8B86-D011-B42D-00C04FC964FF"}, "uuid"),
    ],
)
def test_tanso_customer_identifier_kinds(identifiers, kind):
    draft = tanso.parse_event({"eventName": "chat", **identifiers}, header_key=None, now=NOW)
    assert draft.customer.kind == kind
    if kind == "uuid":
        assert draft.customer.value == "6f9619ff-8b86-d011-b42d-00c04fc964ff"


def test_tanso_cost_input_with_provider_gets_a_vendor_prefixed_slug():
    draft = tanso.parse_event(
        ts(costInput={"model": "gpt-4o", "provider": "OpenAI", "inputTokens": 1000, "outputTokens": 20}),
        header_key=None,
        now=NOW,
    )
    (call,) = draft.calls
    assert (call.model, call.input_tokens, call.output_tokens) == ("openai/gpt-4o", 1000, 20)
    assert call.field == "costInput"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customerReferenceId": "a"}, "eventName"),
        ({"eventName": "chat", "customerId": "not-a-uuid"}, "customerId"),
        (ts(costAmount=-0.01), "costAmount"),
        (ts(revenueAmount="1.0"), "revenueAmount"),
        (ts(usageUnits=-1), "usageUnits"),
        (ts(usageUnits=1e-10), "usageUnits"),  # the ledger keeps 9 decimal places: no silent rounding
        (ts(costInput={"inputTokens": 1}), "costInput.model"),
        (ts(costInput={"model": "openai/gpt-4o", "inputTokens": 100_000_001}), "costInput.inputTokens"),
        (ts(occurredAt="2026-06-15T10:00:00"), "occurredAt"),
        (ts(featureId="nope"), "featureId"),
        (ts(meta="x"), "meta"),
        ([ts()], "body"),
    ],
)
def test_tanso_field_errors(body, field):
    assert ts_error(body).details["field"] == field


@pytest.mark.parametrize("header", ["", "k" * 251])
def test_tanso_header_key_length(header):
    assert ts_error(ts(), header_key=header).details["field"] == "Idempotency-Key"


# --- money from JSON numbers --------------------------------------------------------------------


@given(
    st.decimals(min_value=0, max_value=10_000_000, places=4, allow_nan=False, allow_infinity=False).filter(
        lambda d: len(d.normalize().as_tuple().digits) <= 15
    )
)
def test_a_json_number_is_recovered_exactly_from_orjsons_float(amount):
    """orjson gives floats; their shortest repr is the literal the client wrote (≤ 15 digits)."""
    import orjson

    parsed = orjson.loads(str(amount).encode())
    assert decimal_number(parsed, "x") == amount


def test_timestamps_out_of_range_are_field_errors_not_crashes():
    assert md_error(md(occurred_at="0001-01-01T00:00:00+01:00")).field == "events[0].occurred_at"
    assert mt_error(mt(timestamp="9999-12-31T23:59:59-01:00"))["field"] == "usage[0].timestamp"
