from rest_framework import serializers


class PriceTierSerializer(serializers.Serializer):
    above_input_tokens = serializers.IntegerField(help_text="Applies to calls with more input tokens than this")
    input_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20, coerce_to_string=True)
    output_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20, coerce_to_string=True)
    cache_read_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20, allow_null=True)
    cache_write_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20, allow_null=True)
    reasoning_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20, allow_null=True)


class ModelPriceSerializer(serializers.Serializer):
    """A priced model slug and the price in force now (USD per million tokens, as decimal strings)."""

    slug = serializers.CharField(help_text="vendor/model[:variant], the value of a vendor response's `model`")
    vendor = serializers.CharField()
    display_name = serializers.CharField()
    input_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20)
    output_per_mtok = serializers.DecimalField(max_digits=32, decimal_places=20)
    cache_read_per_mtok = serializers.DecimalField(
        max_digits=32, decimal_places=20, allow_null=True, help_text="null: cached input is billed as input"
    )
    cache_write_per_mtok = serializers.DecimalField(
        max_digits=32, decimal_places=20, allow_null=True, help_text="null: cache writes are billed as input"
    )
    reasoning_per_mtok = serializers.DecimalField(
        max_digits=32, decimal_places=20, allow_null=True, help_text="null: reasoning is billed as output"
    )
    request_fee_usd = serializers.DecimalField(max_digits=32, decimal_places=20)
    tiers = PriceTierSerializer(many=True)
    effective_from = serializers.DateTimeField(allow_null=True, help_text="null: since the beginning")
    effective_until = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField(help_text="genai-prices, openrouter, openrouter-history, manual or override")


class ModelListSerializer(serializers.Serializer):
    data = ModelPriceSerializer(many=True)


class MarginDashPricingSerializer(serializers.Serializer):
    input_per_1m_usd = serializers.FloatField(help_text="USD per million input tokens: an exact JSON number")
    output_per_1m_usd = serializers.FloatField(help_text="USD per million output tokens: an exact JSON number")


class MarginDashModelSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text="vendor/model[:variant]")
    vendor = serializers.CharField()
    pricing = MarginDashPricingSerializer()


class MarginDashModelListSerializer(serializers.Serializer):
    models = MarginDashModelSerializer(many=True)
