"""MarginDash `POST /api/v1/events` (seed 000): `{"events": [...]}` of 1 to 100 events, each validated
on its own so one bad event gets its own error result and does not sink the others."""

import uuid
from datetime import datetime, timedelta

from accounts.api.errors import ApiError
from costcalc.money import cents_to_microdollars

from ..drafts import CallDraft, CustomerRef, EventDraft, EventError
from . import MARGINDASH_KEY_PREFIX
from .fields import (
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
    return [parse_event(event, index, now=now) for index, event in enumerate(events)]


def parse_event(event, index: int, *, now: datetime) -> EventDraft | EventError:
    prefix = f"events[{index}]"
    try:
        return _parse(event, prefix, now)
    except FieldError as error:
        return EventError(error.code, error.message, error.field)


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
