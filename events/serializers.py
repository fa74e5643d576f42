"""Serializers of our own endpoints (customers, budgets, the event list). The ingest dialects do not
use serializers: they are validated by the hand-written functions in `events.dialects`."""

from rest_framework import serializers

from .dialects import client_key
from .models import Budget, Customer, UsageEvent, VendorResponse


class CustomerSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    # Not `format: email` in the schema: a customer without an email answers "".
    email = serializers.CharField(read_only=True, help_text="An email address, or empty")

    class Meta:
        model = Customer
        fields = ["id", "external_id", "name", "email", "ingest_aliases", "stripe_customer_id", "created_at"]
        read_only_fields = fields


class CustomerCreateSerializer(serializers.Serializer):
    """Metronome-style: a name and the identifiers usage may name the customer by."""

    name = serializers.CharField(max_length=255)
    external_id = serializers.CharField(max_length=255, required=False, default="")
    email = serializers.EmailField(required=False, default="")
    ingest_aliases = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, default=list, max_length=100
    )
    stripe_customer_id = serializers.CharField(max_length=255, required=False, allow_null=True, default=None)


class BudgetSerializer(serializers.ModelSerializer):
    class Meta:
        model = Budget
        fields = [
            "id",
            "name",
            "scope",
            "scope_value",
            "limit_microdollars",
            "period",
            "action",
            "enabled",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"limit_microdollars": {"min_value": 0, "max_value": 2**63 - 1}}

    def validate(self, attrs):
        scope = attrs.get("scope", getattr(self.instance, "scope", None))
        if scope == Budget.Scope.ORGANIZATION and attrs.get("scope_value"):
            raise serializers.ValidationError({"scope_value": "must be blank for the organization scope"})
        return attrs


class VendorResponseSerializer(serializers.ModelSerializer):
    class Meta:
        model = VendorResponse
        fields = [
            "model",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "cost_microdollars",
            "price_id",
            "price_override_id",
        ]
        read_only_fields = fields


class UsageEventSerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.external_id", read_only=True)
    customer_uuid = serializers.UUIDField(source="customer.uuid", read_only=True)
    idempotency_key = serializers.SerializerMethodField()
    usage_units = serializers.DecimalField(max_digits=30, decimal_places=9, read_only=True, allow_null=True)
    vendor_responses = VendorResponseSerializer(many=True, read_only=True)

    class Meta:
        model = UsageEvent
        fields = [
            "id",
            "customer_id",
            "customer_uuid",
            "event_type",
            "occurred_at",
            "received_at",
            "idempotency_key",
            "source",
            "properties",
            "flow_id",
            "feature_key",
            "usage_units",
            "cost_microdollars",
            "revenue_microdollars",
            "unpriced",
            "meta",
            "vendor_responses",
        ]
        read_only_fields = fields

    def get_idempotency_key(self, event: UsageEvent) -> str:
        return client_key(event.idempotency_key)
