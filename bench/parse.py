"""CPU cost of parsing a MarginDash batch: `events.dialects.margindash.parse_batch` against the
parser as it was before the fast path (kept below as `reference_parse_batch`), same batch.

The batch is 100 valid events shaped like the Python SDK's and raw HTTP clients' (1 or 2 vendor
responses, most with event_type, revenue, occurred_at and idempotency_key, some minimal). Both
parsers run alternately over several rounds in one process; their results are checked equal
(generated idempotency keys modulo the uuid4) before the median microseconds per batch and the
ratio are printed. No database is needed.

    python bench/parse.py [--events 100] [--rounds 7] [--batches 2000] [--seed S]

The reference copy is also the oracle of tests/events/test_margindash_equivalence.py.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from accounts.api.errors import ApiError
from costcalc.money import cents_to_microdollars
from events.dialects import MARGINDASH_KEY_PREFIX, margindash
from events.dialects.fields import (
    FieldError,
    check_window,
    decimal_number,
    optional_string,
    parse_timestamp,
    required_string,
    token_count,
)
from events.drafts import CallDraft, CustomerRef, EventDraft, EventError

# --- the parser before the fast path, verbatim but for the names (the baseline and the oracle) ---

MAX_EVENTS = 100
MAX_VENDOR_RESPONSES = 1_000
MAX_KEY_LENGTH = 250
DEFAULT_EVENT_TYPE = "ai_request"
MAX_REVENUE_CENTS = 10_000_000
MAX_AGE = timedelta(days=90)
MAX_AHEAD = timedelta(hours=1)


def reference_parse_batch(body, *, now: datetime) -> list[EventDraft | EventError]:
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
    return [reference_parse_event(event, index, now=now) for index, event in enumerate(events)]


def reference_parse_event(event, index: int, *, now: datetime) -> EventDraft | EventError:
    prefix = f"events[{index}]"
    try:
        return _reference_parse(event, prefix, now)
    except FieldError as error:
        return EventError(error.code, error.message, error.field)


def _reference_parse(event, prefix: str, now: datetime) -> EventDraft:
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
    calls = [_reference_call(response, f"{field}[{position}]") for position, response in enumerate(responses)]

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


def _reference_call(response, field: str) -> CallDraft:
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
    return _reference_checked_call(model, input_tokens, output_tokens, cached, cache_write, reasoning, field)


def _reference_checked_call(
    model: str, input_tokens: int, output_tokens: int, cached: int, cache_write: int, reasoning: int, field: str
) -> CallDraft:
    if cached + cache_write > input_tokens:
        raise FieldError(
            f"{field}.cached_input_tokens",
            "cached and cache-creation tokens are part of input_tokens and cannot exceed it",
        )
    if reasoning > output_tokens:
        raise FieldError(f"{field}.reasoning_tokens", "reasoning tokens are part of output_tokens and cannot exceed it")
    return CallDraft(model, input_tokens, output_tokens, cached, cache_write, reasoning, field)


# --- comparing results ---------------------------------------------------------------------------

AUTO_KEY = MARGINDASH_KEY_PREFIX + "auto-"


def comparable(result):
    """A result as plain data; a generated key keeps only its shape (the uuid4 differs per call)."""
    if isinstance(result, EventError):
        return ("error", result.code, result.message, result.field, result.suggestions)
    key = result.idempotency_key
    if key.startswith(AUTO_KEY) and result.meta.get("idempotency_key_generated"):
        generated = key[len(AUTO_KEY) :]
        parsed = uuid.UUID(generated)
        assert parsed.hex == generated and parsed.version == 4 and parsed.variant == uuid.RFC_4122, generated
        key = AUTO_KEY + "<uuid4>"
    return (
        "draft",
        result.customer,
        result.event_type,
        result.occurred_at,
        result.occurred_at.tzinfo,
        key,
        [(type(call), call) for call in result.calls],
        result.properties,
        result.properties_json,
        result.cost_microdollars,
        result.revenue_microdollars,
        type(result.revenue_microdollars),
        result.usage_units,
        result.feature_key,
        result.feature_uuid,
        result.flow_id,
        result.meta,
    )


# --- the benchmark -------------------------------------------------------------------------------

MODELS = ("openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-3.5-sonnet", "google/gemini-1.5-pro")


def generate_batch(count: int, seed: int, now: datetime) -> dict:
    rng = random.Random(seed)
    events = []
    for n in range(count):
        responses = []
        for _ in range(1 if rng.random() < 0.7 else 2):
            input_tokens = rng.randrange(1, 50_000)
            output_tokens = rng.randrange(0, 4_000)
            response = {"model": rng.choice(MODELS), "input_tokens": input_tokens, "output_tokens": output_tokens}
            if rng.random() < 0.3:
                response["cached_input_tokens"] = rng.randrange(0, input_tokens + 1)
            if rng.random() < 0.2:
                response["reasoning_tokens"] = rng.randrange(0, output_tokens + 1)
            responses.append(response)
        customer_id = str(rng.randrange(1, 10_000))
        if rng.random() < 0.7:  # the SDK sends every field
            moment = now - timedelta(seconds=rng.randrange(0, 3600))
            events.append(
                {
                    "customer_id": customer_id,
                    "event_type": rng.choice(("ai_request", "chat", "summarize")),
                    "revenue_amount_in_cents": rng.choice((0, 0, 25, 150)),
                    "occurred_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "idempotency_key": f"sdk-{seed}-{n}",
                    "vendor_responses": responses,
                }
            )
        else:  # a minimal hand-written client
            events.append({"customer_id": customer_id, "vendor_responses": responses})
    return {"events": events}


def time_batches(parse, body: dict, now: datetime, batches: int) -> float:
    began = time.perf_counter()
    for _ in range(batches):
        parse(body, now=now)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20260615)
    args = parser.parse_args()

    now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
    body = generate_batch(args.events, args.seed, now)
    new = [comparable(result) for result in margindash.parse_batch(body, now=now)]
    old = [comparable(result) for result in reference_parse_batch(body, now=now)]
    if new != old:
        print("MISMATCH between margindash.parse_batch and the reference parser", file=sys.stderr)
        return 1
    if any(entry[0] != "draft" for entry in new):
        print("the benchmark batch should be all valid", file=sys.stderr)
        return 1

    ours, reference = [], []
    for _ in range(args.rounds):  # alternate, so drift in machine load hits both sides alike
        ours.append(time_batches(margindash.parse_batch, body, now, args.batches) / args.batches)
        reference.append(time_batches(reference_parse_batch, body, now, args.batches) / args.batches)
    ours_us = statistics.median(ours) * 1e6
    reference_us = statistics.median(reference) * 1e6
    calls = sum(len(event["vendor_responses"]) for event in body["events"])
    print(f"batch:          {args.events} events, {calls} vendor responses (same results from both parsers)")
    print(f"parse_batch:    {ours_us:>8,.0f} µs per batch (median of {args.rounds} rounds)")
    print(f"reference:      {reference_us:>8,.0f} µs per batch")
    print(f"ratio:          {reference_us / ours_us:.2f}x cheaper (target >= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
