"""The MarginDash parser must answer exactly what the reference parser answers (the implementation
before the fast path, kept in bench/parse.py): the same drafts, and for a bad event the same error
code, message and field, the same check winning when several things are wrong."""

import dataclasses
import importlib.util
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounts.api.errors import ApiError
from events.dialects import margindash
from events.drafts import CustomerRef, EventDraft
from tests.conftest import REPO_ROOT


def _load_reference():
    name = "tokenledger_bench_parse"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "parse.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


reference = _load_reference()

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
NOWS = [NOW, datetime(2026, 6, 15, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))]
MISSING = object()


def assert_same(body, now=NOW):
    new, old = _outcome(margindash.parse_batch, body, now), _outcome(reference.reference_parse_batch, body, now)
    assert new == old
    return new


def _outcome(parse, body, now):
    try:
        return [reference.comparable(result) for result in parse(body, now=now)]
    except ApiError as error:
        return ("ApiError", error.status_code, str(error.detail), error.details)
    except Exception as error:  # whatever the reference raises, the parser must raise alike
        return ("raised", type(error), str(error))


def call(**overrides) -> dict:
    response = {"model": "openai/gpt-4o", "input_tokens": 1200, "output_tokens": 340}
    response.update(overrides)
    return {key: value for key, value in response.items() if value is not MISSING}


def event(**overrides) -> dict:
    base = {
        "customer_id": "8291",
        "event_type": "chat",
        "revenue_amount_in_cents": 150,
        "occurred_at": "2026-06-15T11:59:00.250Z",
        "idempotency_key": "sdk-1",
        "vendor_responses": [call(), call(model="anthropic/claude-3.5-sonnet", cached_input_tokens=100)],
    }
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not MISSING}


# --- table: one case per rule, at position 3 of a batch so indexes in fields are exercised ---------

STRINGS = ["", "a", "e" * 255, "e" * 256, "k" * 250, "k" * 251, "a\x00b", "\x00", " ", "é" * 255, "é" * 256]
NOT_STRINGS = [None, 0, 1, 1.5, True, False, [], ["a"], {}, {"a": 1}, Decimal("1")]
NUMBERS = [
    0, 1, 10, 100_000_000, 100_000_001, -1, 10**30, -(10**30), 0.0, -0.0, 1.0, 100.0, 1e8, 1e8 + 1, 1.5, -1.0, 1e300,
    float("nan"), float("inf"), float("-inf"), True, False, "10", None, [], {}, Decimal("10"), Decimal("NaN"),
    Decimal("1.5"), Decimal("-0"), 10_000_000, 10_000_001, 10_000_000.0, 0.5, 1e-7, 0.1 + 0.2, 123.456,
]
TIMESTAMPS = [
    "2026-06-15T11:59:00Z", "2026-06-15T11:59:00z", "2026-06-15T11:59:00.250Z", "2026-06-15T11:59:00+00:00",
    "2026-06-15T13:30:00+02:00", "2026-06-15T10:00:00", " 2026-06-15T10:00:00Z ", "2026-06-15",
    "2026-03-17T12:00:00Z", "2026-03-17T11:59:59Z", "2026-06-15T13:00:00Z", "2026-06-15T13:00:00.000001Z",
    "2026-06-15T13:00:00.000001", "yesterday", "", "Z", "z", " ", "2026-06-15T11:59:00\x00Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-06-15T11:59:00+25:00",
    "2026-06-15 11:59:00Z", "20260615T115900Z", 1_750_000_000, 1.5, True, [], {},
]

EVENT_CASES = [
    *[event(customer_id=value) for value in STRINGS + NOT_STRINGS],
    event(customer_id=MISSING),
    *[event(event_type=value) for value in STRINGS + NOT_STRINGS],
    event(event_type=MISSING),
    *[event(idempotency_key=value) for value in STRINGS + NOT_STRINGS],
    event(idempotency_key=MISSING),
    # MarginDash's SDK names the key `unique_request_token`: alone, equal to the key, different, invalid
    *[event(idempotency_key=MISSING, unique_request_token=value) for value in STRINGS + NOT_STRINGS],
    *[event(unique_request_token=value) for value in ["sdk-1", "sdk-2", "", None, 5]],
    event(idempotency_key="", unique_request_token=""),
    event(idempotency_key=5, unique_request_token=5),
    *[event(revenue_amount_in_cents=value) for value in NUMBERS],
    event(revenue_amount_in_cents=MISSING),
    *[event(occurred_at=value) for value in TIMESTAMPS],
    event(occurred_at=MISSING),
    *[event(vendor_responses=value) for value in [MISSING, None, [], "x", {}, 1, [call()] * 1000, [call()] * 1001]],
    *[event(vendor_responses=[call(), value]) for value in [None, "x", [], 1, True, [call()]]],
    # several things wrong at once: the first check in the reference's order wins
    event(customer_id=None, event_type="", vendor_responses=None),
    event(customer_id="a" * 300, vendor_responses=[call(model="")]),
    event(event_type=5, vendor_responses=[]),
    event(vendor_responses=[call(input_tokens=-1)], revenue_amount_in_cents=-1, occurred_at="bad", idempotency_key=""),
    event(vendor_responses=[call(), call(model=None, input_tokens="x")], revenue_amount_in_cents="x"),
    event(revenue_amount_in_cents=-1, occurred_at="bad", idempotency_key=""),
    event(occurred_at="2020-01-01T00:00:00Z", idempotency_key=""),
    event(occurred_at=None, idempotency_key=None, revenue_amount_in_cents=None, event_type=None),
    {"customer_id": "1", "vendor_responses": [call()], "unknown": object()},
    *[value for value in [None, "event", 1, 1.5, True, [], [event()], ()]],
]

RESPONSE_CASES = [
    *[call(model=value) for value in STRINGS + NOT_STRINGS],
    call(model=MISSING),
    *[call(**{key: value}) for key in ("input_tokens", "output_tokens") for value in NUMBERS],
    call(input_tokens=MISSING),
    call(output_tokens=MISSING),
    call(input_tokens=MISSING, output_tokens=MISSING),
    *[
        call(**{key: value})
        for key in ("cached_input_tokens", "cache_creation_input_tokens", "reasoning_tokens")
        for value in NUMBERS
    ],
    call(input_tokens=0, output_tokens=0),
    call(input_tokens=0.0, output_tokens=-0.0),
    call(input_tokens=0, output_tokens=0, cached_input_tokens=-1),
    call(input_tokens=0, output_tokens=1),
    call(input_tokens=1, output_tokens=0),
    call(input_tokens=100, cached_input_tokens=100),
    call(input_tokens=100, cached_input_tokens=101),
    call(input_tokens=100, cached_input_tokens=60, cache_creation_input_tokens=40),
    call(input_tokens=100, cached_input_tokens=60, cache_creation_input_tokens=41),
    call(input_tokens=100, cache_creation_input_tokens=101),
    call(output_tokens=10, reasoning_tokens=10),
    call(output_tokens=10, reasoning_tokens=11),
    call(output_tokens=10, reasoning_tokens=10.0),
    call(input_tokens=10, output_tokens=10, cached_input_tokens=11, reasoning_tokens=11),
    call(input_tokens=10, output_tokens=10, cached_input_tokens=11, reasoning_tokens="x"),
    call(input_tokens=10, output_tokens=10, cached_input_tokens=True),
    call(input_tokens=True, output_tokens=True),
    call(model="", input_tokens=-1),
    call(model="m", input_tokens=-1, output_tokens="x"),
    call(input_tokens=None, output_tokens=None, model=None),
    {"model": "m", "input_tokens": 1, "output_tokens": 1, "extra": [1, 2]},
]


def _batch_with(item) -> dict:
    minimal = {"customer_id": "7", "vendor_responses": [call()]}
    return {"events": [event(), event(idempotency_key=MISSING), minimal, item]}


@pytest.mark.parametrize("item", EVENT_CASES, ids=range(len(EVENT_CASES)))
@pytest.mark.parametrize("now", NOWS, ids=["utc", "plus2"])
def test_event_cases_match_the_reference(item, now):
    assert_same(_batch_with(item), now)


@pytest.mark.parametrize("response", RESPONSE_CASES, ids=range(len(RESPONSE_CASES)))
def test_vendor_response_cases_match_the_reference(response):
    assert_same(_batch_with(event(vendor_responses=[call(), call(), response])))
    assert_same(_batch_with(event(vendor_responses=[response])))
    assert_same(_batch_with({"customer_id": "c", "vendor_responses": [response, call(input_tokens="bad")]}))


@pytest.mark.parametrize(
    "body",
    [None, "x", [], [event()], {}, {"events": None}, {"events": "x"}, {"events": {}}, {"events": ()},
     {"events": []}, {"events": [event()] * 100}, {"events": [event()] * 101}, {"events": [None] * 101}],
)  # fmt: skip
def test_batch_shapes_match_the_reference(body):
    assert_same(body)


def test_a_naive_now_fails_alike():
    """Not a supported call, but the parser must not turn the reference's exception into a draft."""
    naive = NOW.replace(tzinfo=None)
    assert_same({"events": [event(), event(occurred_at=MISSING)]}, naive)
    assert_same({"events": [event(occurred_at=MISSING), event(occurred_at="2026-06-15T11:00:00")]}, naive)


@pytest.mark.parametrize("index", [0, 7, 99, 100, 1234, -1])
@pytest.mark.parametrize("item", [event(), event(idempotency_key=MISSING), event(customer_id=""), "x"])
def test_parse_event_matches_the_reference_at_any_index(item, index):
    new = reference.comparable(margindash.parse_event(item, index, now=NOW))
    assert new == reference.comparable(reference.reference_parse_event(item, index, now=NOW))


def test_generated_keys_are_distinct_uuid4s_across_draws():
    """The fast path draws uuid4 hexes 16 at a time; a batch of 100 key-less events spans 7 draws."""
    drafts = margindash.parse_batch({"events": [event(idempotency_key=MISSING)] * 100}, now=NOW)
    generated = [draft.idempotency_key.removeprefix("md:auto-") for draft in drafts]
    assert len(set(generated)) == 100
    assert all(uuid.UUID(key).version == 4 and uuid.UUID(key).variant == uuid.RFC_4122 for key in generated)


@pytest.mark.parametrize("count", [1, 2, 16])
@pytest.mark.parametrize("fill", [b"\x00", b"\xff", b"\x5a", None])
def test_uuid4_hexes_are_what_uuid4_makes_of_the_same_bytes(count, fill):
    """uuid.uuid4() is UUID(bytes=os.urandom(16), version=4): same bytes in, same hex out."""
    raw = fill * 16 * count if fill else os.urandom(16 * count)
    hexes = margindash._uuid4_hexes(count, urandom=lambda size: raw[:size])
    assert hexes == [uuid.UUID(bytes=raw[start : start + 16], version=4).hex for start in range(0, 16 * count, 16)]


def test_customer_ref_stays_a_plain_dataclass_the_fast_path_can_fill():
    """The fast path fills CustomerRef's slots without its __init__: that is only the same object
    while CustomerRef is exactly these three fields with no __post_init__."""
    assert [field.name for field in dataclasses.fields(CustomerRef)] == ["kind", "value", "field"]
    assert CustomerRef.__slots__ == ("kind", "value", "field")
    assert not hasattr(CustomerRef, "__post_init__")


def test_event_draft_fields_are_those_the_fast_path_passes_positionally():
    """The fast path builds EventDraft positionally with the defaults spelled out."""
    shape = [
        (field.name, field.default, field.default_factory) for field in dataclasses.fields(EventDraft)
    ]
    missing, empty = dataclasses.MISSING, dataclasses.MISSING
    assert shape == [
        ("customer", missing, empty),
        ("event_type", missing, empty),
        ("occurred_at", missing, empty),
        ("idempotency_key", missing, empty),
        ("calls", missing, list),
        ("properties", missing, dict),
        ("properties_json", "{}", empty),
        ("cost_microdollars", None, empty),
        ("revenue_microdollars", None, empty),
        ("usage_units", None, empty),
        ("feature_key", "", empty),
        ("feature_uuid", "", empty),
        ("flow_id", "", empty),
        ("meta", missing, dict),
    ]


def test_the_valid_cases_produce_drafts():
    """Keeps the tables honest: they do exercise the successful path, not only errors."""
    outcome = assert_same({"events": [event(), event(idempotency_key=MISSING, occurred_at=MISSING)]})
    assert [entry[0] for entry in outcome] == ["draft", "draft"]


# --- generated: mostly-valid events with a few fields replaced by anything interesting -----------

anything = st.one_of(
    st.sampled_from([MISSING, *STRINGS, *NOT_STRINGS, *NUMBERS, *TIMESTAMPS]),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
valid_tokens = st.integers(min_value=0, max_value=100_000_000)


@st.composite
def responses(draw):
    inp = draw(st.one_of(valid_tokens, st.integers(min_value=0, max_value=1000)))
    out = draw(st.one_of(valid_tokens, st.integers(min_value=0, max_value=1000)))
    response = {"model": draw(st.sampled_from(["openai/gpt-4o", "m", "x" * 255])), "input_tokens": inp}
    response["output_tokens"] = out
    for key, whole in (("cached_input_tokens", inp), ("cache_creation_input_tokens", inp), ("reasoning_tokens", out)):
        if draw(st.booleans()):
            response[key] = draw(st.integers(min_value=0, max_value=whole + 1))
    keys = ["model", "input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens"]
    keys.append("reasoning_tokens")
    for key, value in draw(st.lists(st.tuples(st.sampled_from(keys), anything), max_size=2)):
        response[key] = value
    return {key: value for key, value in response.items() if value is not MISSING}


@st.composite
def events(draw):
    now = NOW
    item = {"customer_id": draw(st.sampled_from(["8291", "c" * 255, "é"])), "vendor_responses": []}
    item["vendor_responses"] = draw(st.lists(st.one_of(responses(), anything), min_size=1, max_size=3))
    if draw(st.booleans()):
        item["event_type"] = draw(st.sampled_from(["ai_request", "chat", "t" * 255]))
    if draw(st.booleans()):
        item["revenue_amount_in_cents"] = draw(
            st.one_of(st.integers(min_value=0, max_value=10_000_000), st.floats(min_value=0, max_value=1e7))
        )
    if draw(st.booleans()):
        seconds = draw(st.integers(min_value=-90 * 86_400 - 2, max_value=3_600 + 2))
        micro = draw(st.sampled_from([0, 1, 250_000, 999_999]))
        moment = now + timedelta(seconds=seconds, microseconds=micro)
        offset = timezone(timedelta(minutes=draw(st.sampled_from([0, 120, -330]))))
        text = moment.astimezone(offset).isoformat()
        item["occurred_at"] = draw(st.sampled_from([text, text.replace("+00:00", "Z"), text[:19], f" {text} "]))
    if draw(st.booleans()):
        item["idempotency_key"] = draw(st.sampled_from(["k", "k" * 250, "sdk-42"]))
    keys = ["customer_id", "event_type", "revenue_amount_in_cents", "occurred_at", "idempotency_key"]
    keys.append("vendor_responses")
    for key, value in draw(st.lists(st.tuples(st.sampled_from(keys), anything), max_size=2)):
        item[key] = value
    return {key: value for key, value in item.items() if value is not MISSING}


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(st.one_of(events(), anything), min_size=1, max_size=5), now=st.sampled_from(NOWS))
def test_generated_batches_match_the_reference(batch, now):
    assert_same({"events": batch}, now)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(events(), min_size=1, max_size=5))
def test_generated_events_without_noise_are_mostly_drafts_and_match(batch):
    assert_same({"events": batch})
