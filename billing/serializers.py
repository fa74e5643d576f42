"""API shapes of billing configuration (Metronome's field names) and of our invoices.

Prices are cents as Decimal strings; invoice amounts are integer cents (`*_cents`); quantities are
Decimal strings. Nothing here is ever a float.
"""

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .collection.serializers import ExternalInvoiceSerializer, external_invoice_shape
from .metric_rules import metric_definition_errors
from .models import (
    BillableMetric,
    Contract,
    ContractOverride,
    Invoice,
    InvoiceLine,
    Product,
    Rate,
    RateCard,
    RollupRebuild,
)
from .presentation import plain


def _decimal(**kwargs) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=None, decimal_places=None, **kwargs)


class UpperChoiceField(serializers.ChoiceField):
    """Accepts any letter case (Metronome's examples use both)."""

    def __init__(self, *args, lower: bool = False, **kwargs):
        self.lower = lower
        super().__init__(*args, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = data.lower() if self.lower else data.upper()
        return super().to_internal_value(data)


# --- Billable metrics ------------------------------------------------------------------------------


class RollupRebuildSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = RollupRebuild
        fields = ["status", "events_done", "events_total", "percent", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class BillableMetricSerializer(serializers.ModelSerializer):
    group_keys = serializers.SerializerMethodField(help_text="Metronome shape: a list of group key sets.")
    rollup_rebuild = serializers.SerializerMethodField(
        help_text="The latest rebuild of the metric's usage rollups from the ledger (after it was created or "
        "changed), with its progress; null when none ran. Drafts are recomputed when it is done."
    )

    class Meta:
        model = BillableMetric
        fields = [
            "id",
            "name",
            "event_type_filter",
            "property_filters",
            "aggregation_type",
            "aggregation_key",
            "group_keys",
            "rollup_rebuild",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_group_keys(self, metric) -> list[list[str]]:
        return [list(metric.group_keys)] if metric.group_keys else []

    @extend_schema_field(RollupRebuildSerializer(allow_null=True))
    def get_rollup_rebuild(self, metric) -> dict | None:
        rebuild = metric.rebuilds.first()
        return None if rebuild is None else RollupRebuildSerializer(rebuild).data


class BillableMetricCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    aggregation_type = UpperChoiceField(choices=BillableMetric.AggregationType.values)
    aggregation_key = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        help_text=(
            "A property of the event, or a metering field: event_type, customer, cost_microdollars, "
            "revenue_microdollars, usage_units, feature_key, meta.KEY, or a model-call field (model, vendor, "
            "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, requests: "
            "the metric is then measured once per model call). Filters and group keys take the same names."
        ),
    )
    event_type_filter = serializers.JSONField(required=False, default=dict)
    property_filters = serializers.JSONField(required=False, default=list)
    group_keys = serializers.JSONField(
        required=False, default=list, help_text='[["user_id"]] (Metronome) or ["user_id"]; one key set.'
    )

    def validate_group_keys(self, value):
        if isinstance(value, list) and value and all(isinstance(item, list) for item in value):
            if len(value) > 1:
                raise serializers.ValidationError("Give one group key set; every key of it splits usage.")
            value = value[0]
        return value

    def validate(self, attrs):
        errors = metric_definition_errors(
            event_type_filter=attrs["event_type_filter"],
            property_filters=attrs["property_filters"],
            aggregation_type=attrs["aggregation_type"],
            aggregation_key=attrs["aggregation_key"],
            group_keys=attrs["group_keys"],
        )
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- Products ------------------------------------------------------------------------------------


class QuantityConversionSerializer(serializers.Serializer):
    conversion_factor = _decimal(min_value=0)
    operation = UpperChoiceField(choices=Product.Operation.values)
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")

    def validate_conversion_factor(self, value):
        if value <= 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return value


class ProductSerializer(serializers.ModelSerializer):
    billable_metric_id = serializers.UUIDField(allow_null=True, read_only=True)
    quantity_conversion = serializers.SerializerMethodField()
    composite_product_ids = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "type",
            "billable_metric_id",
            "presentation_group_key",
            "quantity_conversion",
            "composite_product_ids",
            "external_id",
            "stripe_product_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_quantity_conversion(self, product) -> dict | None:
        if product.conversion_factor is None:
            return None
        return {
            "conversion_factor": plain(product.conversion_factor),
            "operation": product.conversion_operation,
            "name": product.conversion_name,
        }

    def get_composite_product_ids(self, product) -> list[str]:
        return [str(pk) for pk in product.composite_products.values_list("pk", flat=True)]


class ProductCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255)
    type = UpperChoiceField(choices=Product.Type.values, lower=True, default=Product.Type.USAGE)
    billable_metric_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    presentation_group_key = serializers.ListField(
        child=serializers.CharField(max_length=255), required=False, default=list
    )
    quantity_conversion = QuantityConversionSerializer(required=False, allow_null=True, default=None)
    composite_product_ids = serializers.ListField(child=serializers.UUIDField(), required=False, default=list)
    external_id = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    stripe_product_id = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")

    def validate_billable_metric_id(self, value):
        if value is None:
            return None
        metric = BillableMetric.objects.filter(organization=self.context["organization"], pk=value).first()
        if metric is None:
            raise serializers.ValidationError("No billable metric with this id.")
        return metric

    def validate_composite_product_ids(self, value):
        products = list(Product.objects.filter(organization=self.context["organization"], pk__in=value))
        missing = set(value) - {product.pk for product in products}
        if missing:
            raise serializers.ValidationError(f"No product with id {sorted(map(str, missing))[0]}.")
        return products


# --- Rate cards and rates --------------------------------------------------------------------------


class RateCardSerializer(serializers.ModelSerializer):
    class Meta:
        model = RateCard
        fields = ["id", "name", "description", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class TierSerializer(serializers.Serializer):
    size = _decimal(required=False, allow_null=True, default=None, help_text="Units in this tier; omit on the last.")
    price = _decimal(min_value=0, help_text="Cents per unit.")


class RateSerializer(serializers.ModelSerializer):
    rate_card_id = serializers.UUIDField(read_only=True)
    product_id = serializers.UUIDField(read_only=True)
    price = _decimal(read_only=True, allow_null=True)
    quantity = _decimal(read_only=True)
    tiers = serializers.SerializerMethodField()
    markup = _decimal(read_only=True, allow_null=True)
    model_markups = serializers.DictField(child=serializers.CharField(), read_only=True)
    minimum_cents = _decimal(read_only=True, allow_null=True)
    included_cents = _decimal(read_only=True, allow_null=True)

    class Meta:
        model = Rate
        fields = [
            "id",
            "rate_card_id",
            "product_id",
            "entitled",
            "rate_type",
            "price",
            "tiers",
            "quantity",
            "markup",
            "model_markups",
            "minimum_cents",
            "included_cents",
            "included_tokens",
            "starting_at",
            "ending_before",
            "created_at",
        ]
        read_only_fields = fields

    def get_tiers(self, rate) -> list[dict]:
        return [
            {"size": None if tier.size is None else plain(tier.size), "price": plain(tier.price)}
            for tier in rate.tiers.all()
        ]

    def to_representation(self, rate):
        data = super().to_representation(rate)
        for key in ("price", "quantity", "markup", "minimum_cents", "included_cents"):
            if data[key] is not None:
                data[key] = plain(getattr(rate, key))
        data["model_markups"] = {slug: plain(Decimal(str(value))) for slug, value in rate.model_markups.items()}
        return data


class RateCreateSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    starting_at = serializers.DateTimeField()
    ending_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    entitled = serializers.BooleanField(required=False, default=True)
    rate_type = UpperChoiceField(choices=Rate.RateType.values, default=Rate.RateType.FLAT)
    price = _decimal(required=False, allow_null=True, default=None, min_value=0, help_text="Cents per unit.")
    tiers = TierSerializer(
        many=True,
        required=False,
        default=list,
        help_text="TIERED: graduated tiers. COST_PLUS (optional): tiers on the marked-up amount, sizes in cents, "
        "price the fraction charged (1 = in full, 0.8 = 20 % off).",
    )
    quantity = _decimal(required=False, default=1)
    markup = _decimal(
        required=False, allow_null=True, default=None, help_text="COST_PLUS: charged = cost x (1 + markup); 0.3 = 30 %."
    )
    model_markups = serializers.DictField(
        child=_decimal(min_value=0),
        required=False,
        default=dict,
        help_text='COST_PLUS: markup per model (catalog slug) replacing markup, e.g. {"openai/gpt-4o": "0.5"}.',
    )
    minimum_cents = _decimal(
        required=False, allow_null=True, default=None, help_text="COST_PLUS: least charge of a line that charges."
    )
    included_cents = _decimal(
        required=False,
        allow_null=True,
        default=None,
        help_text="COST_PLUS: usage included every period, cents of marked-up amount, drawn down first.",
    )
    included_tokens = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        max_value=2**63 - 1,
        help_text="COST_PLUS: input + output tokens included every period, drawn down first.",
    )

    def validate_product_id(self, value):
        product = Product.objects.filter(organization=self.context["organization"], pk=value).first()
        if product is None:
            raise serializers.ValidationError("No product with this id.")
        return product


# --- Contracts -------------------------------------------------------------------------------------


class OverrideSerializer(serializers.ModelSerializer):
    product_id = serializers.UUIDField(read_only=True)
    type = serializers.CharField(read_only=True, allow_null=True, help_text="OVERWRITE, MULTIPLIER or null.")
    overwrite_rate = serializers.SerializerMethodField()
    multiplier = _decimal(read_only=True, allow_null=True)

    class Meta:
        model = ContractOverride
        fields = [
            "id",
            "product_id",
            "starting_at",
            "ending_before",
            "entitled",
            "type",
            "overwrite_rate",
            "multiplier",
        ]
        read_only_fields = fields

    def get_overwrite_rate(self, override) -> dict | None:
        if override.type != ContractOverride.Type.OVERWRITE:
            return None
        return {"rate_type": "FLAT", "price": plain(override.price)}

    def to_representation(self, override):
        data = super().to_representation(override)
        data["type"] = override.type or None
        if override.multiplier is not None:
            data["multiplier"] = plain(override.multiplier)
        return data


class OverwriteRateSerializer(serializers.Serializer):
    rate_type = UpperChoiceField(choices=["FLAT"], default="FLAT")
    price = _decimal(min_value=0)


class OverrideCreateSerializer(serializers.Serializer):
    product_id = serializers.UUIDField()
    starting_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    ending_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    entitled = serializers.BooleanField(required=False, allow_null=True, default=None)
    type = UpperChoiceField(choices=["OVERWRITE", "MULTIPLIER"], required=False, allow_null=True, default=None)
    overwrite_rate = OverwriteRateSerializer(required=False, allow_null=True, default=None)
    multiplier = _decimal(required=False, allow_null=True, default=None)

    def validate_product_id(self, value):
        product = Product.objects.filter(organization=self.context["organization"], pk=value).first()
        if product is None:
            raise serializers.ValidationError("No product with this id.")
        return product

    def validate(self, attrs):
        kind = attrs.get("type") or ("OVERWRITE" if attrs.get("overwrite_rate") else "")
        if kind == "MULTIPLIER" and attrs.get("multiplier") is None:
            raise serializers.ValidationError({"multiplier": "A MULTIPLIER override needs a multiplier."})
        if kind == "OVERWRITE" and not attrs.get("overwrite_rate"):
            raise serializers.ValidationError({"overwrite_rate": "An OVERWRITE override needs overwrite_rate."})
        return {
            "product": attrs["product_id"],
            "starting_at": attrs["starting_at"],
            "ending_before": attrs["ending_before"],
            "entitled": attrs["entitled"],
            "type": kind,
            "price": attrs["overwrite_rate"]["price"] if kind == "OVERWRITE" else None,
            "multiplier": attrs.get("multiplier"),
        }


class ContractSerializer(serializers.ModelSerializer):
    customer_id = serializers.SerializerMethodField()
    rate_card_id = serializers.UUIDField(read_only=True)
    usage_statement_schedule = serializers.SerializerMethodField()
    overrides = OverrideSerializer(many=True, read_only=True)

    class Meta:
        model = Contract
        fields = [
            "id",
            "customer_id",
            "rate_card_id",
            "name",
            "starting_at",
            "ending_before",
            "usage_statement_schedule",
            "overrides",
            "created_at",
        ]
        read_only_fields = fields

    def get_customer_id(self, contract) -> str:
        return str(contract.customer.uuid)

    def get_usage_statement_schedule(self, contract) -> dict:
        return {"frequency": "MONTHLY", "day": contract.usage_statement_day}


class ScheduleSerializer(serializers.Serializer):
    frequency = UpperChoiceField(choices=["MONTHLY"], default="MONTHLY")
    day = UpperChoiceField(choices=Contract.StatementDay.values, default=Contract.StatementDay.FIRST_OF_MONTH)


class ContractCreateSerializer(serializers.Serializer):
    customer_id = serializers.CharField(max_length=255, help_text="The customer's id (uuid) or external id.")
    rate_card_id = serializers.UUIDField()
    starting_at = serializers.DateTimeField()
    ending_before = serializers.DateTimeField(required=False, allow_null=True, default=None)
    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    usage_statement_schedule = ScheduleSerializer(required=False, default=None)
    overrides = OverrideCreateSerializer(many=True, required=False, default=list)

    def validate_customer_id(self, value):
        from events.selectors import customer_get

        customer = customer_get(organization=self.context["organization"], customer_id=value)
        if customer is None:
            raise serializers.ValidationError("No customer with this id.")
        return customer

    def validate_rate_card_id(self, value):
        rate_card = RateCard.objects.filter(organization=self.context["organization"], pk=value).first()
        if rate_card is None:
            raise serializers.ValidationError("No rate card with this id.")
        return rate_card


# --- Invoices --------------------------------------------------------------------------------------


class InvoiceLineSerializer(serializers.ModelSerializer):
    product_id = serializers.UUIDField(read_only=True)
    presentation_group = serializers.JSONField(source="group_values", read_only=True)
    quantity = serializers.SerializerMethodField(help_text="Units (COST_PLUS lines: the calls' priced cost in cents).")
    unit_price = serializers.SerializerMethodField(
        help_text="Cents per unit (composite lines: the fraction; COST_PLUS lines: 1 + markup)."
    )
    markup = _decimal(read_only=True, allow_null=True, help_text="COST_PLUS: the markup applied to this line.")
    allowance_cents = _decimal(read_only=True, allow_null=True, help_text="COST_PLUS: included usage drawn, cents.")

    class Meta:
        model = InvoiceLine
        fields = [
            "product_id",
            "product_name",
            "product_type",
            "presentation_group",
            "period_start",
            "period_end",
            "quantity",
            "quantity_unit",
            "unit_price",
            "rate_type",
            "tier_index",
            "amount_cents",
            "model",
            "cost_microdollars",
            "markup",
            "tokens",
            "allowance_cents",
        ]
        read_only_fields = fields

    def to_representation(self, line):
        data = super().to_representation(line)
        for key in ("markup", "allowance_cents"):
            value = getattr(line, key)
            data[key] = None if value is None else plain(value)
        return data

    def get_quantity(self, line) -> str:
        return plain(line.quantity)

    def get_unit_price(self, line) -> str:
        return plain(line.unit_price)


class InvoiceSerializer(serializers.ModelSerializer):
    customer_id = serializers.SerializerMethodField()
    contract_id = serializers.UUIDField(read_only=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)
    external_invoice = serializers.SerializerMethodField(
        help_text="The Stripe invoice it was pushed to (customers billed through Stripe), else null"
    )

    class Meta:
        model = Invoice
        fields = [
            "id",
            "number",
            "customer_id",
            "contract_id",
            "status",
            "kind",
            "period_start",
            "period_end",
            "currency",
            "total_cents",
            "credits_applied_cents",
            "amount_due_cents",
            "computed_at",
            "finalized_at",
            "external_invoice",
            "lines",
        ]
        read_only_fields = fields

    def get_customer_id(self, invoice) -> str:
        return str(invoice.customer.uuid)

    @extend_schema_field(ExternalInvoiceSerializer(allow_null=True))
    def get_external_invoice(self, invoice) -> dict | None:
        return external_invoice_shape(invoice)


class InvoiceLinkCreateSerializer(serializers.Serializer):
    expires_in_days = serializers.IntegerField(min_value=1, max_value=365, required=False)
