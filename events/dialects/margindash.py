"""MarginDash `POST /api/v1/events` (seed 000): `{"events": [...]}` of 1 to 100 events, each validated
on its own so one bad event gets its own error result and does not sink the others.

Each event first goes through `_fast_event`, an inline check of the common valid shape that calls no
helpers and builds only the field names a draft keeps (the customer's, each call's), not the ~8 per
event that only an error needs. Anything it does not accept as is (a fault, or a rarer valid form
such as an integral float or a fractional revenue) goes through `_parse`, the exact field-by-field
path, which decides: the same checks in the same order, so the error, its message and its field
are as they always were. The fast path must accept nothing that `_parse` rejects and build the
same draft (tests/events/test_margindash_equivalence.py compares both against a reference copy of
the parser).
"""

import os
import uuid
from datetime import UTC, datetime, timedelta

from accounts.api.errors import ApiError
from costcalc.money import MICRODOLLARS_PER_CENT, cents_to_microdollars

from ..drafts import CallDraft, CustomerRef, EventDraft, EventError
from . import MARGINDASH_KEY_PREFIX
from .fields import (
    MAX_TOKENS,
    FieldError,
    check_window,
    decimal_number,
    optional_string,
    parse_timestamp,
    required_string,
    token_count,
)

MAX_EVENTS = 100
MAX_VENDOR_RESPONSES = 1_000
MAX_KEY_LENGTH = 250
DEFAULT_EVENT_TYPE = "ai_request"
MAX_REVENUE_CENTS = 10_000_000
MAX_AGE = timedelta(days=90)
MAX_AHEAD = timedelta(hours=1)


def parse_batch(body, *, now: datetime) -> list[EventDraft | EventError]:
    """The request body → one draft or error per event. A body that is not a batch at all is a 400."""
    if type(body) is not dict:
        raise ApiError("The body must be a JSON object with an `events` array.", details={"field": "events"})
    events = body.get("events")
    if type(events) is not list:
        raise ApiError("`events` must be an array of events.", details={"field": "events"})
    if not events:
        raise ApiError("`events` must contain at least one event.", details={"field": "events"})
    if len(events) > MAX_EVENTS:
        raise ApiError(
            f"`events` may contain at most {MAX_EVENTS} events; got {len(events)}.",
            details={"field": "events", "max_events": MAX_EVENTS},
        )
    oldest, newest = _window(now)
    keys = []  # uuid4 hexes for generated idempotency keys, drawn a few at a time
    fast = _fast_event
    results = []
    append = results.append
    for index, event in enumerate(events):
        draft = fast(event, index, now, oldest, newest, keys)
        append(draft if draft is not None else _exact_event(event, index, now))
    return results


def parse_event(event, index: int, *, now: datetime) -> EventDraft | EventError:
    draft = _fast_event(event, index, now, *_window(now), [])
    return draft if draft is not None else _exact_event(event, index, now)


def _window(now: datetime) -> tuple[datetime | None, datetime | None]:
    """The bounds `check_window` compares `occurred_at` with, once per batch. None when they cannot
    be computed (a `now` near datetime.min/max): the exact path then fails as it always did."""
    try:
        return now - MAX_AGE, now + MAX_AHEAD
    except Exception:
        return None, None


# `uuid.uuid4()` is `UUID(bytes=os.urandom(16), version=4)`, which keeps the random bytes but for
# the version nibble (high half of byte 6 := 4) and the RFC 4122 variant (top bits of byte 8 := 10).
_VERSION_4 = bytes(byte & 0x0F | 0x40 for byte in range(256))
_VARIANT_RFC_4122 = bytes(byte & 0x3F | 0x80 for byte in range(256))
_KEYS_PER_DRAW = 16


def _uuid4_hexes(count: int, urandom=os.urandom) -> list[str]:
    """`[uuid.uuid4().hex for _ in range(count)]` from one os.urandom call and no UUID objects
    (building a UUID costs several times its bytes)."""
    data = bytearray(urandom(16 * count))
    data[6::16] = data[6::16].translate(_VERSION_4)
    data[8::16] = data[8::16].translate(_VARIANT_RFC_4122)
    text = data.hex()
    return [text[start : start + 32] for start in range(0, 32 * count, 32)]


# CustomerRef is a frozen dataclass: its __init__ sets each slot through object.__setattr__, which
# costs more than the rest of the draft. The fast path fills the same three slots directly.
_new_customer_ref = CustomerRef.__new__
_set_customer_kind = CustomerRef.kind.__set__
_set_customer_value = CustomerRef.value.__set__
_set_customer_field = CustomerRef.field.__set__


def _exact_event(event, index: int, now: datetime) -> EventDraft | EventError:
    prefix = f"events[{index}]"
    try:
        return _parse(event, prefix, now)
    except FieldError as error:
        return EventError(error.code, error.message, error.field)


def _fast_event(event, index: int, now: datetime, oldest, newest, keys: list[str]) -> EventDraft | None:
    """The draft of an event in the common valid shape, or None to let `_parse` decide.

    Mirrors `_parse`'s rules (`fields._string`, `token_count`/`integer_in_range` for ints,
    `checked_call`, `decimal_number` + `cents_to_microdollars` for int cents, `parse_timestamp` +
    `check_window`) but only ever accepts: every condition below is one `_parse` would pass.
    """
    if type(event) is not dict:
        return None
    get = event.get
    customer_id = get("customer_id")
    if type(customer_id) is not str or not 0 < len(customer_id) <= 255 or "\x00" in customer_id:
        return None
    event_type = get("event_type")
    if event_type is None:
        event_type = DEFAULT_EVENT_TYPE
    elif type(event_type) is not str or not 0 < len(event_type) <= 255 or "\x00" in event_type:
        return None

    responses = get("vendor_responses")
    if type(responses) is not list or not 0 < len(responses) <= MAX_VENDOR_RESPONSES:
        return None
    prefix = f"events[{index}]"
    calls = []
    for position, response in enumerate(responses):
        if type(response) is not dict:
            return None
        value = response.get
        model = value("model")
        if type(model) is not str or not 0 < len(model) <= 255 or "\x00" in model:
            return None
        input_tokens = value("input_tokens")
        output_tokens = value("output_tokens")
        if (
            type(input_tokens) is not int
            or type(output_tokens) is not int
            or not 0 <= input_tokens <= MAX_TOKENS
            or not 0 <= output_tokens <= MAX_TOKENS
            or not (input_tokens or output_tokens)
        ):
            return None
        field = f"{prefix}.vendor_responses[{position}]"
        if len(response) == 3:  # just the three required keys: no optional token counts
            calls.append(CallDraft(model, input_tokens, output_tokens, 0, 0, 0, field))
            continue
        cached = value("cached_input_tokens")
        if cached is None:
            cached = 0
        elif type(cached) is not int or not 0 <= cached <= MAX_TOKENS:
            return None
        cache_write = value("cache_creation_input_tokens")
        if cache_write is None:
            cache_write = 0
        elif type(cache_write) is not int or not 0 <= cache_write <= MAX_TOKENS:
            return None
        reasoning = value("reasoning_tokens")
        if reasoning is None:
            reasoning = 0
        elif type(reasoning) is not int or not 0 <= reasoning <= MAX_TOKENS:
            return None
        if cached + cache_write > input_tokens or reasoning > output_tokens:
            return None
        calls.append(CallDraft(model, input_tokens, output_tokens, cached, cache_write, reasoning, field))

    revenue = get("revenue_amount_in_cents")
    if revenue is None:
        revenue_microdollars = 0
    elif type(revenue) is int and 0 <= revenue <= MAX_REVENUE_CENTS:
        revenue_microdollars = revenue * MICRODOLLARS_PER_CENT  # exact, as cents_to_microdollars' Decimal
    else:
        return None

    occurred = get("occurred_at")
    if occurred is None:
        occurred_at = now
    else:
        if type(occurred) is not str or oldest is None:
            return None
        text = occurred.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            return None
        zone = moment.tzinfo
        if zone is UTC:  # what a zero offset parses to; astimezone(UTC) would return it as is
            occurred_at = moment
        elif zone is None or moment.utcoffset() is None:
            occurred_at = moment.replace(tzinfo=UTC)
        else:
            try:
                occurred_at = moment.astimezone(UTC)
            except OverflowError:
                return None
        if occurred_at < oldest or occurred_at > newest:
            return None

    key = get("idempotency_key")
    token = get("unique_request_token")  # MarginDash's SDK's name for the same key
    if token is not None:
        if key is None:
            key = token
        elif key != token:
            return None  # `_parse` says which is wrong
    if key is None:
        if not keys:
            keys.extend(_uuid4_hexes(_KEYS_PER_DRAW))
        idempotency_key = f"{MARGINDASH_KEY_PREFIX}auto-{keys.pop()}"
        meta = {"idempotency_key_generated": True}
    elif type(key) is str and 0 < len(key) <= MAX_KEY_LENGTH and "\x00" not in key:
        idempotency_key = MARGINDASH_KEY_PREFIX + key
        meta = {}
    else:
        return None
    customer = _new_customer_ref(CustomerRef)
    _set_customer_kind(customer, "id")
    _set_customer_value(customer, customer_id)
    _set_customer_field(customer, f"{prefix}.customer_id")
    # Positional, with EventDraft's defaults spelled out (keywords cost more than the checks of a
    # call); tests/events/test_margindash_equivalence.py pins the fields and defaults.
    return EventDraft(
        customer, event_type, occurred_at, idempotency_key, calls,
        {}, "{}", None,  # properties, properties_json, cost_microdollars
        revenue_microdollars,
        None, "", "", "",  # usage_units, feature_key, feature_uuid, flow_id
        meta,
    )  # fmt: skip


def _parse(event, prefix: str, now: datetime) -> EventDraft:
    if type(event) is not dict:
        raise FieldError(prefix, "must be an object")
    customer_id = required_string(event, "customer_id", f"{prefix}.customer_id")
    event_type = optional_string(event, "event_type", f"{prefix}.event_type", default=DEFAULT_EVENT_TYPE)

    responses = event.get("vendor_responses")
    field = f"{prefix}.vendor_responses"
    if responses is None:
        raise FieldError(field, "is required")
    if type(responses) is not list:
        raise FieldError(field, "must be an array")
    if not responses:
        raise FieldError(field, "must contain at least one vendor response")
    if len(responses) > MAX_VENDOR_RESPONSES:
        raise FieldError(field, f"must contain at most {MAX_VENDOR_RESPONSES} vendor responses")
    calls = [_call(response, f"{field}[{position}]") for position, response in enumerate(responses)]

    revenue = event.get("revenue_amount_in_cents")
    if revenue is None:
        revenue_microdollars = 0
    else:
        cents = decimal_number(revenue, f"{prefix}.revenue_amount_in_cents", low=0, high=MAX_REVENUE_CENTS)
        revenue_microdollars = cents_to_microdollars(cents)

    occurred = event.get("occurred_at")
    if occurred is None:
        occurred_at = now
    else:
        field = f"{prefix}.occurred_at"
        occurred_at = parse_timestamp(occurred, field, naive_is_utc=True)
        check_window(occurred_at, field, now=now, max_age=MAX_AGE, max_ahead=MAX_AHEAD)

    key = optional_string(event, "idempotency_key", f"{prefix}.idempotency_key", max_length=MAX_KEY_LENGTH)
    # MarginDash's own SDK (ai-cost-calc) sends its retry key as `unique_request_token`: the same key.
    token = optional_string(
        event, "unique_request_token", f"{prefix}.unique_request_token", max_length=MAX_KEY_LENGTH
    )
    if key and token and key != token:
        raise FieldError(f"{prefix}.unique_request_token", "must equal idempotency_key when both are given")
    key = key or token
    return EventDraft(
        customer=CustomerRef("id", customer_id, f"{prefix}.customer_id"),
        event_type=event_type,
        occurred_at=occurred_at,
        idempotency_key=MARGINDASH_KEY_PREFIX + (key or f"auto-{uuid.uuid4().hex}"),
        calls=calls,
        revenue_microdollars=revenue_microdollars,
        meta={} if key else {"idempotency_key_generated": True},
    )


def _call(response, field: str) -> CallDraft:
    if type(response) is not dict:
        raise FieldError(field, "must be an object")
    model = required_string(response, "model", f"{field}.model")
    input_tokens = token_count(response, "input_tokens", f"{field}.input_tokens", required=True)
    output_tokens = token_count(response, "output_tokens", f"{field}.output_tokens", required=True)
    if input_tokens == 0 and output_tokens == 0:
        raise FieldError(f"{field}.input_tokens", "at least one of input_tokens or output_tokens must be > 0")
    cached = token_count(response, "cached_input_tokens", f"{field}.cached_input_tokens", required=False)
    cache_write = token_count(
        response, "cache_creation_input_tokens", f"{field}.cache_creation_input_tokens", required=False
    )
    reasoning = token_count(response, "reasoning_tokens", f"{field}.reasoning_tokens", required=False)
    return checked_call(model, input_tokens, output_tokens, cached, cache_write, reasoning, field)


def checked_call(
    model: str, input_tokens: int, output_tokens: int, cached: int, cache_write: int, reasoning: int, field: str
) -> CallDraft:
    """Parts may not exceed their whole (the cost engine's token semantics)."""
    if cached + cache_write > input_tokens:
        raise FieldError(
            f"{field}.cached_input_tokens",
            "cached and cache-creation tokens are part of input_tokens and cannot exceed it",
        )
    if reasoning > output_tokens:
        raise FieldError(f"{field}.reasoning_tokens", "reasoning tokens are part of output_tokens and cannot exceed it")
    return CallDraft(model, input_tokens, output_tokens, cached, cache_write, reasoning, field)
