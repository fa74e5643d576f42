"""OpenAPI shapes of the margins endpoints (seed 002), for drf-spectacular only: the views build plain
dicts (`margins.serializers`), and `tests/margins/test_openapi.py` checks these shapes against real answers.

Shapes are declared without the `{"data": …}` envelope that wraps every successful answer: the
project's schema class (`accounts.api.schema.EnvelopeAutoSchema`) adds it to the documented 2xx
responses, as the views add it to the bodies. Errors are the usual `{"error": {"code", "message",
"details"}}`, documented with `accounts.api.openapi.error_responses` as everywhere else.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, inline_serializer
from rest_framework import serializers

from accounts.api.openapi import error_responses

from .models import CustomerMapping, StripeConnection

_Int = serializers.IntegerField
_Str = serializers.CharField


def _percent(**kwargs) -> serializers.FloatField:
    return serializers.FloatField(allow_null=True, help_text="Percent, one decimal; null when revenue is 0", **kwargs)


def _counts(help_text: str) -> serializers.DictField:
    return serializers.DictField(child=_Int(), help_text=help_text)


_TEXT = {
    "s401": "authentication_required: no session (API keys are not accepted here)",
    "s403": "forbidden: role too low (details.required_role) or free plan (details.upgrade_url)",
    "s502": "stripe_sync_failed: Stripe refused or failed a request (details.transient)",
}


def errors(*statuses: int, **described: str) -> dict:
    """Error responses: the three every endpoint can give (session, plan/role) plus ``statuses``."""
    return error_responses(401, 403, *statuses, **{**_TEXT, **described})


CONNECTION = inline_serializer(
    "StripeConnection",
    {
        "id": serializers.UUIDField(),
        "keyPrefix": _Str(help_text="Masked key, e.g. rk_live_abcd...wxyz"),
        "status": serializers.ChoiceField(choices=StripeConnection.Status.values),
        "createdAt": serializers.DateTimeField(),
    },
)

DELETED = inline_serializer("StripeDisconnected", {"deleted": serializers.BooleanField()})

SYNC_MANUAL = inline_serializer(
    "RevenueSyncManual",
    {
        "orgId": serializers.UUIDField(),
        "customersProcessed": _Int(),
        "periodsUpdated": _Int(help_text="(Stripe customer, month) pairs whose revenue changed"),
        "autoMatchesCreated": _Int(),
        "invoicesFetched": _Int(),
        "invoicesSkipped": _Int(help_text="Paid invoices not in USD"),
        "skippedCurrencies": _counts("Currency → paid invoices skipped"),
        "durationMs": _Int(),
    },
)
SYNC_CRON = inline_serializer(
    "RevenueSyncCron",
    {"synced": _Int(help_text="Organizations synced"), "errors": _Int(help_text="Organizations that failed")},
)
SYNC = PolymorphicProxySerializer(
    component_name="RevenueSyncResult",
    serializers=[SYNC_MANUAL, SYNC_CRON],
    resource_type_field_name=None,
)

MAPPING = inline_serializer(
    "CustomerMapping",
    {
        "id": serializers.UUIDField(),
        "stripeCustomerId": _Str(),
        "tagKey": _Str(),
        "tagValue": _Str(help_text="The usage customer's external id"),
        "matchType": serializers.ChoiceField(choices=CustomerMapping.MatchType.values),
        "status": serializers.ChoiceField(choices=CustomerMapping.Status.values),
        "confidence": serializers.FloatField(allow_null=True, help_text="In [0, 1] for auto-matches, else null"),
        "createdAt": serializers.DateTimeField(),
        "updatedAt": serializers.DateTimeField(),
    },
)
MAPPINGS = type(MAPPING)(many=True)
MAPPING_DELETED = inline_serializer(
    "CustomerMappingDeleted", {"deleted": serializers.BooleanField(), "id": serializers.UUIDField()}
)

_SPARK_POINT = inline_serializer(
    "MarginSparkPoint",
    {
        "period": _Str(help_text="YYYY-MM"),
        "marginPercent": _percent(),
        "projected": serializers.BooleanField(required=False, help_text="Present (true) on the projected month only"),
    },
    many=True,
)
_HEALTH_TIER = serializers.ChoiceField(choices=["healthy", "at_risk", "critical"])
_REVENUE_SOURCE = serializers.ChoiceField(
    choices=["stripe", "invoices", "events", "none"],
    help_text="Where the revenue came from: stripe (an active Stripe mapping: paid Stripe invoices, plus revenue "
    "on events), invoices (no Stripe mapping: TokenLedger's own invoices of the month, draft or finalized), "
    "events (revenue carried on usage events), none",
)

MARGIN_TABLE = inline_serializer(
    "MarginTable",
    {
        "summary": inline_serializer(
            "MarginSummary",
            {
                "blendedMarginPercent": _percent(),
                "totalRevenueMicrodollars": _Int(),
                "totalCostMicrodollars": _Int(),
                "criticalCount": _Int(),
                "atRiskCount": _Int(),
                "lastSyncAt": serializers.DateTimeField(allow_null=True),
                "syncStatus": serializers.ChoiceField(choices=[*StripeConnection.Status.values, "disconnected"]),
                "skippedCurrencies": _counts("Currency → paid invoices of the period not counted (not USD)"),
            },
        ),
        "customers": inline_serializer(
            "MarginCustomer",
            {
                "stripeCustomerId": _Str(allow_null=True),
                "customerName": _Str(),
                "avatarUrl": _Str(allow_null=True),
                "tagValue": _Str(),
                "revenueMicrodollars": _Int(),
                "revenueSource": _REVENUE_SOURCE,
                "costMicrodollars": _Int(),
                "marginMicrodollars": _Int(),
                "marginPercent": _percent(),
                "healthTier": _HEALTH_TIER,
                "sparkline": _SPARK_POINT,
                "projectedTierWorsening": serializers.BooleanField(),
                "budgetSuggestionMicrodollars": _Int(
                    allow_null=True, help_text="Monthly cost budget that restores the target margin; null if met"
                ),
            },
            many=True,
        ),
    },
)
MARGIN_CSV = OpenApiResponse(OpenApiTypes.STR, description="JSON, or with format=csv the CSV file")

MARGIN_CUSTOMER = inline_serializer(
    "MarginCustomerDetail",
    {
        "stripeCustomerId": _Str(allow_null=True),
        "customerName": _Str(),
        "avatarUrl": _Str(allow_null=True),
        "tagValue": _Str(),
        "healthTier": _HEALTH_TIER,
        "marginPercent": _percent(),
        "revenueMicrodollars": _Int(),
        "revenueSource": _REVENUE_SOURCE,
        "costMicrodollars": _Int(),
        "revenueOverTime": inline_serializer(
            "MarginMonth",
            {"period": _Str(), "revenue": _Int(), "revenueSource": _REVENUE_SOURCE, "cost": _Int()},
            many=True,
        ),
        "modelBreakdown": inline_serializer(
            "MarginModelCost",
            {"model": _Str(), "cost": _Int(), "requestCount": _Int(), "inputTokens": _Int(), "outputTokens": _Int()},
            many=True,
        ),
    },
)

UNMATCHED = inline_serializer(
    "MarginsUnmatched",
    {
        "unmatchedStripeCustomers": inline_serializer(
            "UnmatchedStripeCustomer",
            {
                "stripeCustomerId": _Str(),
                "customerName": _Str(),
                "customerEmail": _Str(),
                "totalRevenueMicrodollars": _Int(),
            },
            many=True,
        ),
        "unmappedTagValues": inline_serializer(
            "UnmappedTagValue",
            {"tagValue": _Str(), "totalCostMicrodollars": _Int(), "requestCount": _Int()},
            many=True,
        ),
        "pendingAutoMatches": inline_serializer(
            "PendingAutoMatch",
            {
                "id": serializers.UUIDField(),
                "stripeCustomerId": _Str(),
                "customerName": _Str(),
                "tagValue": _Str(),
                "confidence": serializers.FloatField(),
            },
            many=True,
        ),
        "customerNames": serializers.DictField(child=_Str(), help_text="Stripe customer id → name"),
    },
)

MARGIN_SETTINGS = inline_serializer(
    "MarginSettings",
    {"healthyMinPercent": serializers.FloatField(), "atRiskMinPercent": serializers.FloatField(),
     "targetMarginPercent": serializers.FloatField()},
)

def _endpoint_fields() -> dict:
    # A fresh dict per serializer: the serializer metaclass pops the fields out of the dict it is given.
    return {
        "id": serializers.UUIDField(),
        "url": serializers.URLField(),
        "eventTypes": serializers.ListField(child=_Str()),
        "isActive": serializers.BooleanField(),
        "createdAt": serializers.DateTimeField(),
    }


WEBHOOK_ENDPOINTS = inline_serializer("WebhookEndpoint", _endpoint_fields(), many=True)
WEBHOOK_ENDPOINT_CREATED = inline_serializer(
    "WebhookEndpointCreated", {**_endpoint_fields(), "secret": _Str(help_text="whsec_…, shown once")}
)
WEBHOOK_ENDPOINT_DELETED = inline_serializer(
    "WebhookEndpointDeleted", {"deleted": serializers.BooleanField(), "id": serializers.UUIDField()}
)
