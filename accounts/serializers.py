from rest_framework import serializers

from .api.fields import StrictCharField
from .models import ApiKey, ApiKeyScope, Organization, Role


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "plan", "created_at"]


class CallerOrganizationSerializer(OrganizationSerializer):
    """`GET /api/v1/organization`: the organization, the caller's role in it and how the caller authenticated."""

    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    via = serializers.ChoiceField(choices=["api_key", "session"], read_only=True)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiKeyScope.choices),
        read_only=True,
        allow_null=True,
        help_text="The API key's scopes; null for a session (the role decides)",
    )

    class Meta(OrganizationSerializer.Meta):
        fields = [*OrganizationSerializer.Meta.fields, "role", "via", "scopes"]
        read_only_fields = fields


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = fields


class ApiKeyScopesSerializer(serializers.Serializer):
    scopes = serializers.MultipleChoiceField(
        choices=ApiKeyScope.choices,
        allow_empty=False,
        help_text="ingest (ingest dialects and the SDK blocklist), read (every GET), billing:write (every other "
        "write), admin (all, plus API keys and the Stripe account secret)",
    )

    def validate_scopes(self, value) -> list[str]:
        return [scope for scope in ApiKeyScope.values if scope in value]


class ApiKeyCreateSerializer(ApiKeyScopesSerializer):
    name = StrictCharField(max_length=200, allow_blank=True, required=False, default="")
    scopes = serializers.MultipleChoiceField(
        choices=ApiKeyScope.choices,
        allow_empty=False,
        required=False,
        default=[ApiKeyScope.ADMIN],
        help_text="Default [\"admin\"]. " + ApiKeyScopesSerializer._declared_fields["scopes"].help_text,
    )


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields
