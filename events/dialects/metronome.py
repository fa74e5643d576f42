"""Metronome `POST /api/v1/ingest` (seed 001): a JSON array of 1 to 100 usage events
`{transaction_id, customer_id, event_type, timestamp, properties}`.

Metronome validates a request as a whole: if any event is malformed the request is a 400 that
lists every event at fault, and nothing is stored. Deduplication is on `transaction_id`, kept for
ever (so certainly for the 34 days Metronome promises); sending events again succeeds and stores
nothing new.
"""

from datetime import datetime, timedelta

from accounts.api.errors import ApiError

from ..drafts import CustomerRef, EventDraft
from . import METRONOME_KEY_PREFIX
from .fields import FieldError, check_window, json_text, optional_object, parse_timestamp, required_string

MAX_EVENTS = 100
MAX_TRANSACTION_ID_LENGTH = 128
MAX_AGE = timedelta(days=34)
MAX_AHEAD = timedelta(hours=1)


def parse_batch(body, *, now: datetime) -> list[EventDraft]:
    if type(body) is not list:
        raise ApiError("The body must be a JSON array of usage events.", details={"field": "usage"})
    if not body:
        raise ApiError("The array must contain at least one usage event.", details={"field": "usage"})
    if len(body) > MAX_EVENTS:
        raise ApiError(
            f"At most {MAX_EVENTS} usage events per request; got {len(body)}.",
            details={"field": "usage", "max_events": MAX_EVENTS},
        )
    drafts, errors = [], []
    for index, event in enumerate(body):
        try:
            drafts.append(_parse(event, f"usage[{index}]", now))
        except FieldError as error:
            errors.append({"index": index, "code": error.code, "message": error.message, "field": error.field})
    if errors:
        first = errors[0]
        raise ApiError(
            f"{first['field']}: {first['message']}"
            + (f" (and {len(errors) - 1} more invalid event(s))" if len(errors) > 1 else ""),
            details={"field": first["field"], "errors": errors},
        )
    return drafts


def _parse(event, prefix: str, now: datetime) -> EventDraft:
    if type(event) is not dict:
        raise FieldError(prefix, "must be an object")
    transaction_id = required_string(
        event, "transaction_id", f"{prefix}.transaction_id", max_length=MAX_TRANSACTION_ID_LENGTH
    )
    customer_id = required_string(event, "customer_id", f"{prefix}.customer_id")
    event_type = required_string(event, "event_type", f"{prefix}.event_type")
    field = f"{prefix}.timestamp"
    if event.get("timestamp") is None:
        raise FieldError(field, "is required")
    timestamp = parse_timestamp(event["timestamp"], field, naive_is_utc=False)
    check_window(timestamp, field, now=now, max_age=MAX_AGE, max_ahead=MAX_AHEAD)
    properties = optional_object(event, "properties", f"{prefix}.properties")
    return EventDraft(
        customer=CustomerRef("id", customer_id, f"{prefix}.customer_id"),
        event_type=event_type,
        occurred_at=timestamp,
        idempotency_key=METRONOME_KEY_PREFIX + transaction_id,
        properties=properties,
        properties_json=json_text(properties, f"{prefix}.properties"),
    )
