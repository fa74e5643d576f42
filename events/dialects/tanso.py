"""Tanso `POST /api/v1/usage-events` (seed 003): one usage event per request.

- Idempotency: the `Idempotency-Key` header wins over `eventIdempotencyKey`; one is generated
  when both are absent; a repeated key is a 409 `conflict` carrying the original event's id.
- Customer: exactly one of `customerReferenceId` (the organization's own id; created when
  unknown), `stripeCustomerId` (created and linked when unknown) or `customerId` (our UUID; must
  exist), else 400.
- Cost: `costAmount` (USD), else `costInput` priced (organization price override, then the global
  catalog), else the feature's cost per unit x `usageUnits`. Revenue: `revenueAmount` (USD), else
  the feature's price per unit x `usageUnits`. Amounts are parsed as exact Decimals.
"""

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from accounts.api.errors import ApiError
from costcalc.money import usd_to_microdollars

from ..drafts import CustomerRef, EventDraft
from . import TANSO_KEY_PREFIX
from .fields import (
    FieldError,
    check_window,
    decimal_number,
    json_text,
    optional_object,
    optional_string,
    optional_uuid,
    parse_timestamp,
    token_count,
)
from .margindash import checked_call

MAX_KEY_LENGTH = 250
MAX_AMOUNT_USD = Decimal(1_000_000_000)
MAX_USAGE_UNITS = Decimal(10) ** 18
MAX_AGE = timedelta(days=90)
MAX_AHEAD = timedelta(hours=1)
CUSTOMER_FIELDS = ("customerReferenceId", "stripeCustomerId", "customerId")


def parse_event(body, *, header_key: str | None, now: datetime) -> EventDraft:
    """The body (numbers already Decimal) and the Idempotency-Key header → a draft, or a 400."""
    try:
        return _parse(body, header_key, now)
    except FieldError as error:
        raise ApiError(f"{error.field}: {error.message}", code=error.code, details={"field": error.field}) from None


def _parse(body, header_key: str | None, now: datetime) -> EventDraft:
    if type(body) is not dict:
        raise FieldError("body", "must be a JSON object (one usage event)")
    event_name = optional_string(body, "eventName", "eventName")
    if not event_name:
        raise FieldError("eventName", "is required")

    given = [name for name in CUSTOMER_FIELDS if body.get(name) is not None]
    if len(given) != 1:
        raise FieldError(
            "customerReferenceId",
            "exactly one of customerReferenceId, stripeCustomerId or customerId is required"
            + (f"; got {', '.join(given)}" if given else ""),
        )
    name = given[0]
    if name == "customerId":
        customer = CustomerRef("uuid", optional_uuid(body, name, name), name)
    elif name == "stripeCustomerId":
        customer = CustomerRef("stripe", optional_string(body, name, name), name)
    else:
        customer = CustomerRef("id", optional_string(body, name, name), name)

    if header_key is not None:
        if not header_key or len(header_key) > MAX_KEY_LENGTH or "\x00" in header_key:
            raise FieldError("Idempotency-Key", f"must be 1 to {MAX_KEY_LENGTH} characters")
        key, generated = header_key, False
    else:
        key = optional_string(body, "eventIdempotencyKey", "eventIdempotencyKey", max_length=MAX_KEY_LENGTH)
        generated = not key
        key = key or f"evt_{uuid.uuid4().hex}"

    occurred = body.get("occurredAt")
    if occurred is None:
        occurred_at = now
    else:
        occurred_at = parse_timestamp(occurred, "occurredAt", naive_is_utc=False)
        check_window(occurred_at, "occurredAt", now=now, max_age=MAX_AGE, max_ahead=MAX_AHEAD)

    cost = _usd(body, "costAmount")
    revenue = _usd(body, "revenueAmount")
    units = body.get("usageUnits")
    usage_units = None if units is None else decimal_number(units, "usageUnits", low=Decimal(0), high=MAX_USAGE_UNITS)
    if usage_units is not None and usage_units.as_tuple().exponent < -9:  # the column keeps 9 places
        raise FieldError("usageUnits", "must have at most 9 decimal places")

    calls = []
    cost_input = optional_object(body, "costInput", "costInput")
    provider = ""
    if body.get("costInput") is not None:  # given, even empty: then it names its model
        model = optional_string(cost_input, "model", "costInput.model")
        if not model:
            raise FieldError("costInput.model", "is required")
        provider = optional_string(cost_input, "provider", "costInput.provider")
        if provider and "/" not in model:
            model = f"{provider.lower()}/{model}"
        calls.append(
            checked_call(
                model,
                token_count(cost_input, "inputTokens", "costInput.inputTokens", required=False),
                token_count(cost_input, "outputTokens", "costInput.outputTokens", required=False),
                token_count(cost_input, "cachedInputTokens", "costInput.cachedInputTokens", required=False),
                token_count(cost_input, "cacheWriteTokens", "costInput.cacheWriteTokens", required=False),
                token_count(cost_input, "reasoningTokens", "costInput.reasoningTokens", required=False),
                "costInput",
            )
        )

    meta = dict(optional_object(body, "meta", "meta"))
    json_text(meta, "meta")
    for link in ("subscriptionId", "entitlementId", "invoiceId"):
        value = optional_uuid(body, link, link)
        if value:
            meta[link] = value
    if generated:
        meta["idempotency_key_generated"] = True
    return EventDraft(
        customer=customer,
        event_type=event_name,
        occurred_at=occurred_at,
        idempotency_key=TANSO_KEY_PREFIX + key,
        calls=calls,
        cost_microdollars=None if cost is None else usd_to_microdollars(cost),
        revenue_microdollars=None if revenue is None else usd_to_microdollars(revenue),
        usage_units=usage_units,
        feature_key=optional_string(body, "featureKey", "featureKey"),
        feature_uuid=optional_uuid(body, "featureId", "featureId"),
        flow_id=optional_string(body, "flowId", "flowId"),
        meta=meta,
    )


def _usd(body: dict, key: str) -> Decimal | None:
    value = body.get(key)
    if value is None:
        return None
    return decimal_number(value, key, low=Decimal(0), high=MAX_AMOUNT_USD)
