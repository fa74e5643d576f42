from rest_framework import serializers

from .models import ApiKey, Organization, Role


class OrganizationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "plan", "created_at"]


class CallerOrganizationSerializer(OrganizationSerializer):
    """`GET /api/v1/organization`: the organization, the caller's role in it and how the caller authenticated."""

    role = serializers.ChoiceField(choices=Role.choices, read_only=True)
    via = serializers.ChoiceField(choices=["api_key", "session"], read_only=True)

    class Meta(OrganizationSerializer.Meta):
        fields = [*OrganizationSerializer.Meta.fields, "role", "via"]
        read_only_fields = fields


class ApiKeySerializer(serializers.ModelSerializer):
    is_active = serializers.BooleanField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at", "is_active"]
        read_only_fields = fields


class ApiKeyCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, allow_blank=True, required=False, default="")


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown only in this response.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields
