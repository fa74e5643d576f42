"""OpenAPI shapes of the three ingest dialects, for drf-spectacular only.

The dialects (`events.dialects`) parse the bodies by hand and the views answer plain dicts, so these
serializers are never run: they describe, with the dialects' own limits, what each endpoint takes
and answers (tests/events/test_openapi.py checks them against the parsers and real answers). Optional
fields accept null as absent, as the parsers do. Errors use the shared envelope
(`accounts.api.openapi`).
"""

from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from accounts.api.openapi import error_responses

from .dialects import margindash, metronome, tanso
from .dialects.fields import MAX_TOKENS

_Int = serializers.IntegerField


def _string(max_length: int = 255, *, required: bool = True, **kwargs) -> serializers.CharField:
    """A non-empty string without NUL characters (`fields.required_string` / `optional_string`)."""
    if not required:
        kwargs.update(required=False, allow_null=True)
    return serializers.CharField(max_length=max_length, **kwargs)


def _tokens(help_text: str = "", *, required: bool = False) -> serializers.IntegerField:
    """`fields.token_count`: an integer (an integral float is accepted too) from 0 to 100,000,000."""
    optional = {} if required else {"required": False, "allow_null": True}
    return _Int(min_value=0, max_value=MAX_TOKENS, help_text=help_text, **optional)


def _uuid(help_text: str) -> serializers.UUIDField:
    return serializers.UUIDField(required=False, allow_null=True, help_text=help_text)


# --- MarginDash: POST /api/v1/events -------------------------------------------------------------

_VENDOR_RESPONSE = inline_serializer(
    "MarginDashVendorResponse",
    {
        "model": _string(
            help_text="Catalog slug (vendor/model), e.g. openai/gpt-4o; Anthropic API ids are read as slugs"
        ),
        "input_tokens": _tokens("At least one of input_tokens and output_tokens must be > 0", required=True),
        "output_tokens": _tokens("At least one of input_tokens and output_tokens must be > 0", required=True),
        "cached_input_tokens": _tokens("Part of input_tokens: cached + cache_creation ≤ input_tokens"),
        "cache_creation_input_tokens": _tokens("Part of input_tokens: cached + cache_creation ≤ input_tokens"),
        "reasoning_tokens": _tokens("Part of output_tokens: reasoning ≤ output_tokens"),
    },
)

_MARGINDASH_EVENT = inline_serializer(
    "MarginDashEvent",
    {
        "customer_id": _string(
            help_text="External id, ingest alias or our uuid; an unknown id creates the customer when the event "
            "is stored"
        ),
        "event_type": _string(required=False, default=margindash.DEFAULT_EVENT_TYPE),
        "vendor_responses": serializers.ListField(
            child=_VENDOR_RESPONSE,
            min_length=1,
            max_length=margindash.MAX_VENDOR_RESPONSES,
            help_text="One per model call; the event's cost is their sum, priced as of occurred_at",
        ),
        "revenue_amount_in_cents": serializers.FloatField(
            min_value=0,
            max_value=margindash.MAX_REVENUE_CENTS,
            required=False,
            allow_null=True,
            help_text="Revenue of the event in US cents (fractions allowed); 0 when absent",
        ),
        "occurred_at": serializers.DateTimeField(
            required=False,
            allow_null=True,
            help_text="ISO 8601, within the last 90 days and at most 1 hour ahead; without an offset it is UTC; "
            "default: when received",
        ),
        "idempotency_key": _string(
            margindash.MAX_KEY_LENGTH,
            required=False,
            help_text="Unique per organization for ever; a repeat answers duplicate with the stored id. Events "
            "without a key are never deduplicated",
        ),
        "unique_request_token": _string(
            margindash.MAX_KEY_LENGTH,
            required=False,
            help_text="The name MarginDash's own SDK gives the same key: deduplicated exactly like "
            "idempotency_key (a token equal to an earlier key is a duplicate); when both are given they must be equal",
        ),
    },
)

MARGINDASH_BATCH = inline_serializer(
    "MarginDashBatch",
    {
        "events": serializers.ListField(
            child=_MARGINDASH_EVENT,
            min_length=1,
            max_length=margindash.MAX_EVENTS,
            help_text="Each event is validated on its own: an invalid one gets an error result and does not sink "
            "the others",
        )
    },
)

_STORED = inline_serializer(
    "MarginDashEventStored",
    {
        "id": _Int(help_text="The stored event's id (the original's for a duplicate)"),
        "status": serializers.ChoiceField(choices=["created", "duplicate"]),
    },
)
_FAILED = inline_serializer(
    "MarginDashEventFailed",
    {
        "status": serializers.ChoiceField(choices=["error"]),
        "error": inline_serializer(
            "MarginDashEventError",
            {
                "code": serializers.CharField(
                    help_text="validation_error; unknown_model (not in the price catalog: see suggestions); "
                    "price_not_in_effect (no price of the model at occurred_at); not_found"
                ),
                "message": serializers.CharField(),
                "field": serializers.CharField(help_text="e.g. events[0].vendor_responses[1].model"),
                "suggestions": serializers.ListField(
                    child=serializers.CharField(),
                    required=False,
                    help_text="unknown_model only: up to three priced slugs close to the model",
                ),
            },
        ),
    },
)

MARGINDASH_RESULT = inline_serializer(
    "MarginDashIngestResult",
    {
        "budget_state_version": _Int(help_text="The blocklist version after this ingest"),
        "results": serializers.ListField(
            child=PolymorphicProxySerializer(
                component_name="MarginDashEventResult",
                serializers=[_STORED, _FAILED],
                resource_type_field_name=None,
            ),
            help_text="One per event, in the order sent",
        ),
    },
)

MARGINDASH_ERRORS = error_responses(
    400,
    401,
    403,
    413,
    s400="validation_error: the body is not an object with an `events` array of 1 to 100 events "
    "(details.field is events; details.max_events when over), or malformed JSON (details.field is body). An "
    "invalid event is not a 400: it gets an error result",
)


# --- Metronome: POST /api/v1/ingest --------------------------------------------------------------

_METRONOME_EVENT = inline_serializer(
    "MetronomeUsageEvent",
    {
        "transaction_id": _string(
            metronome.MAX_TRANSACTION_ID_LENGTH,
            help_text="Deduplication key, kept for ever: an event sent again is stored once",
        ),
        "customer_id": _string(help_text="External id, ingest alias or our uuid; an unknown id creates the customer"),
        "event_type": _string(),
        "timestamp": serializers.DateTimeField(
            help_text="RFC 3339 with an offset, within the last 34 days and at most 1 hour ahead"
        ),
        "properties": serializers.DictField(required=False, allow_null=True, help_text="Any JSON object"),
    },
)


class MetronomeBatch(serializers.Serializer):
    """The Metronome body: a bare JSON array of 1 to 100 usage events (see `_MetronomeBatchSchema`)."""


class _MetronomeBatchSchema(OpenApiSerializerExtension):
    """drf-spectacular cannot bound a top-level array (`many=True` loses min/max length, a raw schema
    cannot refer to a serializer), so this maps `MetronomeBatch` to an array component itself."""

    target_class = MetronomeBatch

    def get_name(self, auto_schema, direction):
        return "MetronomeBatch"

    def map_serializer(self, auto_schema, direction):
        event = auto_schema.resolve_serializer(_METRONOME_EVENT, direction)
        return {"type": "array", "items": event.ref, "minItems": 1, "maxItems": metronome.MAX_EVENTS}


METRONOME_RESULT = inline_serializer(
    "MetronomeIngestResult",
    {
        "budget_state_version": _Int(help_text="The blocklist version after this ingest"),
        "created": _Int(help_text="Events stored by this request"),
        "duplicate": _Int(help_text="Events whose transaction_id was already stored"),
    },
)

METRONOME_ERRORS = error_responses(
    400,
    401,
    403,
    413,
    s400="validation_error: the body is not an array of 1 to 100 events (details.field is usage), or an event "
    "is invalid: details.errors lists every one ({index, code, message, field}), details.field the first; "
    "nothing is stored",
)


# --- Tanso: POST /api/v1/usage-events ------------------------------------------------------------

_USD = {"min_value": 0, "max_value": int(tanso.MAX_AMOUNT_USD), "required": False, "allow_null": True}


def _cost_input() -> serializers.Serializer:
    # Built where it is used: a serializer's fields keep the order in which they were created.
    return inline_serializer(
        "TansoCostInput",
        {
            "model": _string(help_text="Required when costInput is given"),
            "provider": _string(required=False, help_text="Prefixes the model (provider/model) when it has no slash"),
            "inputTokens": _tokens(),
            "outputTokens": _tokens(),
            "cachedInputTokens": _tokens("Part of inputTokens: cached + cache write ≤ inputTokens"),
            "cacheWriteTokens": _tokens("Part of inputTokens: cached + cache write ≤ inputTokens"),
            "reasoningTokens": _tokens("Part of outputTokens: reasoning ≤ outputTokens"),
        },
        required=False,
        allow_null=True,
        help_text="A model call to price when costAmount is absent",
    )


TANSO_EVENT = inline_serializer(
    "TansoUsageEvent",
    {
        "eventName": _string(),
        "customerReferenceId": _string(
            required=False,
            help_text="Exactly one of customerReferenceId, stripeCustomerId and customerId. Your id for the "
            "customer (external id, ingest alias or our uuid); an unknown one creates the customer",
        ),
        "stripeCustomerId": _string(required=False, help_text="An unknown Stripe id creates a customer linked to it"),
        "customerId": _uuid("Our customer uuid; it must exist (else 404)"),
        "eventIdempotencyKey": _string(
            tanso.MAX_KEY_LENGTH,
            required=False,
            help_text="Ignored when the Idempotency-Key header is sent; generated when both are absent",
        ),
        "occurredAt": serializers.DateTimeField(
            required=False,
            allow_null=True,
            help_text="RFC 3339 with an offset, within the last 90 days and at most 1 hour ahead; default: when "
            "received",
        ),
        "flowId": _string(required=False),
        "featureKey": _string(
            required=False, help_text="A feature of the organization, by key; an unknown key is ignored"
        ),
        "featureId": _uuid("A feature of the organization, by uuid; it must exist (else 404)"),
        "costAmount": serializers.FloatField(
            **_USD, help_text="USD, read exactly; else costInput priced, else the feature's cost per unit x usageUnits"
        ),
        "revenueAmount": serializers.FloatField(
            **_USD, help_text="USD, read exactly; else the feature's price per unit x usageUnits"
        ),
        "usageUnits": serializers.FloatField(
            min_value=0,
            max_value=int(tanso.MAX_USAGE_UNITS),
            required=False,
            allow_null=True,
            help_text="At most 9 decimal places",
        ),
        "costInput": _cost_input(),
        "meta": serializers.DictField(required=False, allow_null=True, help_text="Any JSON object, kept as is"),
        "subscriptionId": _uuid("Kept in meta"),
        "entitlementId": _uuid("Kept in meta"),
        "invoiceId": _uuid("Kept in meta"),
    },
)

TANSO_IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": tanso.MAX_KEY_LENGTH},
    OpenApiParameter.HEADER,
    description="Wins over eventIdempotencyKey. Unique per organization for ever: a repeat is a 409",
)


def _decimal(help_text: str, **kwargs) -> serializers.DecimalField:
    """Money and units are answered as exact decimal strings."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, help_text=help_text, **kwargs)


TANSO_EVENT_STORED = inline_serializer(
    "TansoUsageEventStored",
    {
        "id": _Int(),
        "eventIdempotencyKey": serializers.CharField(help_text="As sent, or the generated evt_… key"),
        "eventName": serializers.CharField(),
        "occurredAt": serializers.DateTimeField(),
        "customerId": serializers.UUIDField(help_text="Our customer uuid"),
        "customerReferenceId": serializers.CharField(help_text="The customer's external id"),
        "featureKey": serializers.CharField(allow_null=True),
        "flowId": serializers.CharField(allow_null=True),
        "usageUnits": _decimal("Decimal string", allow_null=True),
        "costAmount": _decimal("USD, decimal string"),
        "revenueAmount": _decimal("USD, decimal string"),
        "unpriced": serializers.BooleanField(
            help_text="A model the catalog cannot price was accepted (the organization's ingest settings)"
        ),
        "budgetStateVersion": _Int(help_text="The blocklist version after this ingest"),
    },
)

TANSO_ERRORS = error_responses(
    400,
    401,
    403,
    404,
    409,
    413,
    s400="validation_error: details.field names the field (customerReferenceId when not exactly one customer "
    "identifier is given), or malformed JSON (details.field is body); unknown_model (details.suggestions) / "
    "price_not_in_effect: costInput.model cannot be priced",
    s404="not_found: no customer with this customerId, or no feature with this featureId (details.field)",
    s409="conflict: the idempotency key was already recorded; details: {id: the original event's id, "
    "eventIdempotencyKey}",
)
