"""Request validation (DRF serializers with the seed's camelCase names) and response shapes (plain dicts).

Percentages and confidences are JSON numbers (they are not money); amounts are integer microdollars.
Timestamps are ISO 8601 UTC with milliseconds, as in the seed: "2026-04-05T10:00:00.000Z".
"""

import re
from datetime import UTC, datetime
from decimal import Decimal

from django.core.validators import URLValidator
from rest_framework import serializers

from .calculations import Thresholds
from .models import CustomerMapping, MarginSettings, WebhookEndpoint
from .selectors import CustomerMargin, MarginTable, ModelCost
from .webhooks import target_refusal

_STRIPE_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]+$")


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def number(value: Decimal | None) -> float | int | None:
    """A rounded Decimal as a JSON number: whole values as integers (70), others as floats (42.5)."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


# --- Requests ---------------------------------------------------------------------------------


class StripeConnectSerializer(serializers.Serializer):
    stripeKey = serializers.CharField(max_length=300, trim_whitespace=True)


class CustomerMappingWriteSerializer(serializers.Serializer):
    stripeCustomerId = serializers.CharField(max_length=255)
    tagValue = serializers.CharField(max_length=255)
    tagKey = serializers.CharField(max_length=64, required=False, default=CustomerMapping.DEFAULT_TAG_KEY)
    matchType = serializers.ChoiceField(
        choices=CustomerMapping.MatchType.values, required=False, default=CustomerMapping.MatchType.MANUAL
    )

    def validate_stripeCustomerId(self, value: str) -> str:
        if not _STRIPE_CUSTOMER_ID.match(value):
            raise serializers.ValidationError("Must be a Stripe customer id (cus_…).")
        return value

    def validate_tagKey(self, value: str) -> str:
        if value != CustomerMapping.DEFAULT_TAG_KEY:
            raise serializers.ValidationError(
                f"Only the '{CustomerMapping.DEFAULT_TAG_KEY}' tag key is supported: usage is attributed to customers."
            )
        return value


class MarginSettingsWriteSerializer(serializers.Serializer):
    healthyMinPercent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(-100), max_value=Decimal(100), required=False
    )
    atRiskMinPercent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(-100), max_value=Decimal(100), required=False
    )
    targetMarginPercent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(0), max_value=Decimal("99.99"), required=False
    )

    FIELDS = {
        "healthyMinPercent": "healthy_min_percent",
        "atRiskMinPercent": "at_risk_min_percent",
        "targetMarginPercent": "target_margin_percent",
    }

    def model_values(self) -> dict[str, Decimal]:
        return {self.FIELDS[key]: value for key, value in self.validated_data.items()}


class WebhookEndpointWriteSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000, validators=[URLValidator(schemes=["http", "https"])])
    eventTypes = serializers.ListField(
        child=serializers.ChoiceField(choices=[WebhookEndpoint.EVENT_THRESHOLD_CROSSED]),
        required=False,
        default=list,
    )

    def validate_url(self, value: str) -> str:
        refusal = target_refusal(value)
        if refusal is not None:
            raise serializers.ValidationError(f"The URL {refusal}.")
        return value


# --- Responses --------------------------------------------------------------------------------


def connection_json(connection) -> dict:
    return {
        "id": str(connection.id),
        "keyPrefix": connection.key_prefix,
        "status": connection.status,
        "createdAt": iso(connection.created_at),
    }


def mapping_json(mapping: CustomerMapping) -> dict:
    return {
        "id": str(mapping.id),
        "stripeCustomerId": mapping.stripe_customer_id,
        "tagKey": mapping.tag_key,
        "tagValue": mapping.tag_value,
        "matchType": mapping.match_type,
        "status": mapping.status,
        "confidence": number(mapping.confidence),
        "createdAt": iso(mapping.created_at),
        "updatedAt": iso(mapping.updated_at),
    }


def _spark_point(point) -> dict:
    body = {"period": point.period, "marginPercent": number(point.margin_percent)}
    if point.projected:
        body["projected"] = True
    return body


def margin_row_json(row: CustomerMargin) -> dict:
    return {
        "stripeCustomerId": row.stripe_customer_id,
        "customerName": row.customer_name,
        "avatarUrl": None,
        "tagValue": row.tag_value,
        "revenueMicrodollars": row.revenue,
        "revenueSource": row.revenue_source,
        "costMicrodollars": row.cost,
        "marginMicrodollars": row.margin,
        "marginPercent": number(row.margin_percent),
        "healthTier": row.health_tier,
        "sparkline": [
            _spark_point(point) for point in row.outlook.sparkline
        ],
        "projectedTierWorsening": row.outlook.projected_tier_worsening,
        "budgetSuggestionMicrodollars": row.budget_suggestion,
    }


def margin_table_json(table: MarginTable) -> dict:
    return {
        "summary": {
            "blendedMarginPercent": number(table.blended_margin_percent),
            "totalRevenueMicrodollars": table.total_revenue,
            "totalCostMicrodollars": table.total_cost,
            "criticalCount": table.critical_count,
            "atRiskCount": table.at_risk_count,
            "lastSyncAt": iso(table.last_sync_at),
            "syncStatus": table.sync_status,
            "skippedCurrencies": table.skipped_currencies,
        },
        "customers": [margin_row_json(row) for row in table.customers],
    }


def customer_detail_json(row: CustomerMargin, models: list[ModelCost]) -> dict:
    return {
        "stripeCustomerId": row.stripe_customer_id,
        "customerName": row.customer_name,
        "avatarUrl": None,
        "tagValue": row.tag_value,
        "healthTier": row.health_tier,
        "marginPercent": number(row.margin_percent),
        "revenueMicrodollars": row.revenue,
        "revenueSource": row.revenue_source,
        "costMicrodollars": row.cost,
        "revenueOverTime": [
            {"period": m.period, "revenue": m.revenue, "revenueSource": m.revenue_source, "cost": m.cost}
            for m in row.months
        ],
        "modelBreakdown": [
            {
                "model": m.model,
                "cost": m.cost,
                "requestCount": m.request_count,
                "inputTokens": m.input_tokens,
                "outputTokens": m.output_tokens,
            }
            for m in models
        ],
    }


def margin_settings_json(margin_settings: MarginSettings | Thresholds) -> dict:
    return {
        "healthyMinPercent": number(margin_settings.healthy_min_percent),
        "atRiskMinPercent": number(margin_settings.at_risk_min_percent),
        "targetMarginPercent": number(margin_settings.target_margin_percent),
    }


def webhook_endpoint_json(endpoint: WebhookEndpoint) -> dict:
    return {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "eventTypes": endpoint.event_types,
        "isActive": endpoint.is_active,
        "createdAt": iso(endpoint.created_at),
    }
