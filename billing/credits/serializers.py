"""Input validation and output shapes of the credit endpoints.

The seed-004 (Cloudflare AI Gateway billing) endpoints take amounts as integer cents, as
Cloudflare's API does (`amount` in cents, with its minimums), and answer amounts as integer cents
too; `balance_microdollars` adds the exact balance. Nothing is a float.
"""

from datetime import datetime

from django.conf import settings
from rest_framework import serializers

from billing.credits import arithmetic
from billing.credits.models import AutoTopUpConfig, CreditEntry, SpendingLimit
from costcalc.money import MICRODOLLARS_PER_CENT

STRIPE_MAX_CENTS = 99_999_999  # Stripe's largest USD charge: $999,999.99
LARGEST_CENTS = 10**12  # keeps microdollars well inside a bigint


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer. Numbers with a fraction, booleans and numeric strings are refused, so an amount
    is never guessed from a float or a string."""

    default_error_messages = {"invalid": "Must be an integer (a JSON number without a fraction)."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCentsField(StrictIntegerField):
    """Integer cents (see StrictIntegerField)."""

    default_error_messages = {"invalid": "Must be an integer number of cents."}


class TopupCreateSerializer(serializers.Serializer):
    amount = StrictCentsField(
        min_value=1000, max_value=STRIPE_MAX_CENTS, help_text="Top-up amount in cents (min 1000)."
    )


class TopupStatusSerializer(serializers.Serializer):
    payment_intent_id = serializers.CharField(max_length=255)


class TopupConfigSerializer(serializers.Serializer):
    amount = StrictCentsField(
        min_value=1000, max_value=STRIPE_MAX_CENTS, help_text="Auto top-up amount in cents (min 1000)."
    )
    threshold = StrictCentsField(
        min_value=500, max_value=LARGEST_CENTS, help_text="Balance in cents below which it tops up (min 500)."
    )


class SpendingLimitSerializer(serializers.Serializer):
    amount = StrictCentsField(min_value=100, max_value=LARGEST_CENTS, help_text="Spending limit in cents (min 100).")
    duration = serializers.ChoiceField(choices=SpendingLimit.Duration.values)
    strategy = serializers.ChoiceField(choices=SpendingLimit.Strategy.values)
    enabled = serializers.BooleanField(default=True, help_text="TokenLedger extension; Cloudflare's API has no field.")


class CreditEntryCreateSerializer(serializers.Serializer):
    """POST .../credit-entries: a grant (positive) or an adjustment (either sign)."""

    kind = serializers.ChoiceField(choices=[CreditEntry.Kind.GRANT, CreditEntry.Kind.ADJUSTMENT])
    amount_microdollars = StrictIntegerField(min_value=-(10**16), max_value=10**16)
    reference = serializers.CharField(
        max_length=255, help_text="Your idempotency key: a second entry with the same kind and reference is a 409."
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        amount = attrs["amount_microdollars"]
        if amount == 0:
            raise serializers.ValidationError({"amount_microdollars": "Must not be zero."})
        if attrs["kind"] == CreditEntry.Kind.GRANT and amount < 0:
            raise serializers.ValidationError({"amount_microdollars": "A grant must be positive; use an adjustment."})
        if attrs.get("expires_at") is not None and amount < 0:
            raise serializers.ValidationError({"expires_at": "Only credit added can expire."})
        return attrs


class CreditEntrySerializer(serializers.ModelSerializer):
    customer_id = serializers.CharField(source="customer.external_id", read_only=True)
    amount_usd = serializers.SerializerMethodField()
    draws = serializers.SerializerMethodField()

    class Meta:
        model = CreditEntry
        fields = [
            "id", "customer_id", "kind", "amount_microdollars", "amount_usd", "expires_at", "reference",
            "description", "created_at", "draws",
        ]

    def get_amount_usd(self, entry) -> str:
        return arithmetic.dollars(entry.amount_microdollars)

    def get_draws(self, entry) -> list[dict]:
        return [
            {"lot": str(draw.lot_id), "amount_microdollars": draw.amount_microdollars, "line_key": draw.line_key}
            for draw in entry.draws.all()
        ]


class StripeAccountSerializer(serializers.Serializer):
    """PUT body. Omitted fields keep their stored value (a new account needs `secret_key`);
    `webhook_secret` null or "" removes the signing secret."""

    secret_key = serializers.CharField(max_length=255, write_only=True, required=False)
    webhook_secret = serializers.CharField(
        max_length=255, write_only=True, required=False, allow_blank=True, allow_null=True,
        help_text="Signing secret (whsec_…) of the webhook endpoint in this Stripe account; null or \"\" removes it",
    )

    def validate_secret_key(self, value: str) -> str:
        if not value.startswith("sk_"):
            raise serializers.ValidationError("Must be a Stripe secret key (sk_live_… or sk_test_…).")
        if settings.IS_PRODUCTION and value.startswith("sk_test_"):
            raise serializers.ValidationError("Test-mode keys are refused in production.")
        return value

    def validate_webhook_secret(self, value: str | None) -> str:
        if value and not value.startswith("whsec_"):
            raise serializers.ValidationError("Must be a Stripe webhook signing secret (whsec_…).")
        if value and any(character.isspace() or character == "\x00" for character in value):
            raise serializers.ValidationError("Must not contain spaces or NUL characters.")
        return value or ""

    def validate(self, data: dict) -> dict:
        if not data:
            raise serializers.ValidationError({"secret_key": "Give secret_key, webhook_secret or both."})
        return data


# --- Output shapes (seed 004) ---------------------------------------------------------------------


def cents(microdollars: int | None) -> int | None:
    """Microdollars → whole cents, rounded down (the cents that can actually be spent or charged)."""
    return None if microdollars is None else microdollars // MICRODOLLARS_PER_CENT


def unix_seconds(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def topup_config_shape(config: AutoTopUpConfig | None) -> dict:
    if config is None:
        return {"amount": None, "disabled_reason": None, "error": None, "last_failed_at": None, "threshold": None}
    return {
        "amount": cents(config.amount_microdollars),
        "disabled_reason": config.disabled_reason or None,
        "error": config.error or None,
        "last_failed_at": unix_seconds(config.last_failed_at),
        "threshold": cents(config.threshold_microdollars),
    }


def spending_limit_shape(limit: SpendingLimit | None) -> dict:
    if limit is None:
        return {"config": {"amount": None, "duration": None, "strategy": None}, "enabled": False}
    return {
        "config": {"amount": cents(limit.amount_microdollars), "duration": limit.duration, "strategy": limit.strategy},
        "enabled": limit.enabled,
    }
