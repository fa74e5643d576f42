"""Billing configuration (Metronome's concepts and field names), usage rollups and invoices.

Configuration: BillableMetric → Product → RateCard with Rates (and RateTiers) → Contract (a
customer on a rate card, with ContractOverrides). Metering: UsageRollup / UniqueValueRollup,
written by the ingest hook inside the ingest transaction (billing.metering). Invoices: Invoice
with InvoiceLines, recomputed from rollups while draft (billing.invoicing).

Instants that bound prices and periods (rates, overrides, contracts) are whole UTC hours, because
usage is pre-aggregated per hour: an hour never straddles two prices.
"""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, DateTimeRangeField, RangeBoundary, RangeOperators
from django.core.exceptions import ValidationError
from django.db import models, router
from django.db.models import F, Func, Q
from django.utils import timezone

from costcalc.money import format_cents_price, format_quantity, plain

from . import rating
from .fields import NumericField
from .metric_rules import metric_definition_errors
from .periods import earliest_contract_start

PRICE_DIGITS = {"max_digits": 30, "decimal_places": 12}  # cents per unit, e.g. 0.000050000000
QUANTITY_DIGITS = {"max_digits": 38, "decimal_places": 12}


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


def _active_range():
    return TsTzRange("starting_at", "ending_before", RangeBoundary())


# Monthly periods are computed a month ahead of an instant: the last representable year cannot start one.
LATEST_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)


def validate_whole_hour(value, field: str) -> dict[str, str]:
    if value is not None and (value.minute or value.second or value.microsecond):
        return {field: "Must be a whole hour in UTC (usage is rated per hour), e.g. 2026-01-01T00:00:00Z."}
    if value is not None and value >= LATEST_INSTANT:
        return {field: "Must be before 9999-01-01T00:00:00Z."}
    return {}


def validate_range(starting_at, ending_before) -> dict[str, str]:
    errors = {**validate_whole_hour(starting_at, "starting_at"), **validate_whole_hour(ending_before, "ending_before")}
    if starting_at and ending_before and ending_before <= starting_at:
        errors["ending_before"] = "Must be after starting_at."
    return errors


def ranges_overlap(a_start, a_end, b_start, b_end) -> bool:
    """[a_start, a_end) and [b_start, b_end) intersect; None ends are unbounded."""
    return (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)


class ExclusionCheckedInClean(models.Model):
    """Models whose overlap rule is reported by clean() with the field at fault.

    The database exclusion constraint stays the last word under concurrency; validating it again
    in full_clean() would only repeat clean()'s message without a field.
    """

    class Meta:
        abstract = True

    # Set by admin inline formsets, which check overlaps across all the rows being saved together
    # (an edit that shortens one rate and adds the next would otherwise clash with the old row).
    siblings_checked = False

    def validate_constraints(self, exclude=None):
        using = router.db_for_write(self.__class__, instance=self)
        errors: dict = {}
        for model_class, constraints in self.get_constraints():
            for constraint in constraints:
                if isinstance(constraint, ExclusionConstraint):
                    continue
                try:
                    constraint.validate(model_class, self, exclude=exclude, using=using)
                except ValidationError as error:
                    errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)


# --- Billable metrics ------------------------------------------------------------------------


class BillableMetric(models.Model):
    """What to count: which events match and how their values aggregate (Metronome billable metric)."""

    class AggregationType(models.TextChoices):
        SUM = "SUM", "Sum"
        COUNT = "COUNT", "Count"
        MAX = "MAX", "Max"
        UNIQUE = "UNIQUE", "Unique (distinct count)"
        LATEST = "LATEST", "Latest value"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    event_type_filter = models.JSONField(
        default=dict,
        blank=True,
        help_text='{"in_values": ["chat"], "not_in_values": ["test"]}; empty matches every event type.',
    )
    property_filters = models.JSONField(
        default=list,
        blank=True,
        help_text='[{"name": "region", "exists": true, "in_values": ["eu"], "not_in_values": []}]',
    )
    aggregation_type = models.CharField(max_length=8, choices=AggregationType.choices)
    aggregation_key = models.CharField(
        max_length=255, blank=True, help_text="Property aggregated (SUM, MAX, LATEST) or counted once (UNIQUE)."
    )
    group_keys = ArrayField(
        models.CharField(max_length=255),
        default=list,
        blank=True,
        help_text="Properties that split usage into groups, like GROUP BY (comma-separated).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="billable_metric_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        errors = metric_definition_errors(
            event_type_filter=self.event_type_filter,
            property_filters=self.property_filters,
            aggregation_type=self.aggregation_type,
            aggregation_key=self.aggregation_key,
            group_keys=self.group_keys,
        )
        if errors:
            raise ValidationError(errors)


# --- Products --------------------------------------------------------------------------------


class Product(models.Model):
    """How a metric (or a fixed charge) appears on invoices (Metronome product)."""

    class Type(models.TextChoices):
        USAGE = "usage", "Usage"
        FIXED = "fixed", "Fixed (one-time, first period)"
        COMPOSITE = "composite", "Composite (% of other usage products)"
        SUBSCRIPTION = "subscription", "Subscription (every period)"

    class Operation(models.TextChoices):
        MULTIPLY = "MULTIPLY", "Multiply"
        DIVIDE = "DIVIDE", "Divide"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255, help_text="Shown on invoices, e.g. Language Model 4 Tokens (millions).")
    type = models.CharField(max_length=16, choices=Type.choices, default=Type.USAGE)
    billable_metric = models.ForeignKey(
        BillableMetric, null=True, blank=True, on_delete=models.PROTECT, related_name="products"
    )
    presentation_group_key = ArrayField(
        models.CharField(max_length=255),
        default=list,
        blank=True,
        help_text="Group keys of the metric that split this product into one invoice line per value.",
    )
    conversion_factor = models.DecimalField(null=True, blank=True, **QUANTITY_DIGITS)
    conversion_operation = models.CharField(max_length=8, choices=Operation.choices, blank=True)
    conversion_name = models.CharField(
        max_length=255, blank=True, help_text="Unit after conversion, e.g. million tokens."
    )
    composite_products = models.ManyToManyField(
        "self",
        symmetrical=False,
        blank=True,
        related_name="composites",
        help_text="Usage products whose line amounts a composite product charges a percentage of.",
    )
    external_id = models.CharField(max_length=255, blank=True)
    stripe_product_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(conversion_factor__isnull=True, conversion_operation="")
                | Q(conversion_factor__gt=0) & ~Q(conversion_operation=""),
                name="product_conversion_complete",
                violation_error_message="A quantity conversion needs a positive factor and an operation.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def unit_name(self) -> str:
        """What one unit of the product's quantity is, for prices read by people: '$0.20 per request'."""
        if self.conversion_name:
            return self.conversion_name
        if self.type == self.Type.USAGE:
            metric = self.billable_metric if self.billable_metric_id else None
            if metric is not None and metric.aggregation_type == rating.AggregationType.COUNT:
                return "request"
            return "unit"
        return "charge" if self.type == self.Type.FIXED else "period"

    @property
    def quantity_conversion(self) -> rating.QuantityConversion | None:
        if self.conversion_factor is None:
            return None
        return rating.QuantityConversion(self.conversion_factor, rating.ConversionOperation(self.conversion_operation))

    def clean(self):
        errors: dict[str, str] = {}
        metric = self.billable_metric if self.billable_metric_id else None
        if self.type == self.Type.USAGE and metric is None:
            errors["billable_metric"] = "A usage product needs a billable metric."
        if self.type != self.Type.USAGE and metric is not None:
            errors["billable_metric"] = f"Only usage products have a billable metric (this one is {self.type})."
        if metric is not None and self.organization_id and metric.organization_id != self.organization_id:
            errors["billable_metric"] = "The billable metric belongs to another organization."
        keys = list(self.presentation_group_key or [])
        if keys:
            available = list(metric.group_keys) if metric else []
            unknown = [key for key in keys if key not in available]
            if unknown:
                errors["presentation_group_key"] = (
                    f"{', '.join(unknown)} is not a group key of the billable metric (group keys: "
                    f"{', '.join(available) or 'none'})."
                )
            elif len(set(keys)) != len(keys):
                errors["presentation_group_key"] = "Keys must not repeat."
        if (self.conversion_factor is None) != (not self.conversion_operation):
            errors["conversion_factor" if self.conversion_factor is None else "conversion_operation"] = (
                "A quantity conversion needs both a factor and an operation."
            )
        elif self.conversion_factor is not None and self.conversion_factor <= 0:
            errors["conversion_factor"] = "Must be greater than 0."
        if errors:
            raise ValidationError(errors)


def composite_references_errors(product: Product, referenced: list[Product]) -> dict[str, str]:
    """A composite product references usage products of its own organization (checked by forms and services)."""
    if product.type != Product.Type.COMPOSITE:
        return {"composite_products": "Only composite products reference other products."} if referenced else {}
    if not referenced:
        return {"composite_products": "A composite product needs at least one usage product."}
    for other in referenced:
        if other.organization_id != product.organization_id:
            return {"composite_products": f"{other} belongs to another organization."}
        if other.type != Product.Type.USAGE:
            return {"composite_products": f"{other} is a {other.type} product; composites reference usage products."}
    return {}


# --- Rate cards and rates --------------------------------------------------------------------


class RateCard(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="rate_card_unique_name")]

    def __str__(self) -> str:
        return self.name


class Rate(ExclusionCheckedInClean):
    """A product's price on a rate card for [starting_at, ending_before). One at a time per product."""

    class RateType(models.TextChoices):
        FLAT = "FLAT", "Flat"
        TIERED = "TIERED", "Tiered (graduated)"
        COST_PLUS = "COST_PLUS", "Cost plus markup (model calls)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    rate_card = models.ForeignKey(RateCard, on_delete=models.CASCADE, related_name="rates")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="rates")
    entitled = models.BooleanField(
        default=True, help_text="Shows on invoices by default; if off, only when a contract override entitles it."
    )
    rate_type = models.CharField(max_length=16, choices=RateType.choices, default=RateType.FLAT)
    price = models.DecimalField(
        null=True,
        blank=True,
        help_text="FLAT: cents per unit (composite products: the fraction, 0.1 = 10%).",
        **PRICE_DIGITS,
    )
    quantity = models.DecimalField(
        default=Decimal(1), help_text="Fixed and subscription products: units charged per period.", **QUANTITY_DIGITS
    )
    markup = models.DecimalField(
        null=True, blank=True, help_text="COST_PLUS: charged = cost x (1 + markup); 0.3 = 30 %.", **PRICE_DIGITS
    )
    model_markups = models.JSONField(
        default=dict,
        blank=True,
        help_text='COST_PLUS: markups per model (catalog slug) replacing markup, e.g. {"openai/gpt-4o": "0.5"}.',
    )
    minimum_cents = models.DecimalField(
        null=True,
        blank=True,
        help_text="COST_PLUS: the least a line that charges anything charges, cents.",
        **PRICE_DIGITS,
    )
    included_cents = models.DecimalField(
        null=True,
        blank=True,
        help_text="COST_PLUS: usage included every period, in cents of marked-up amount (drawn down first).",
        **PRICE_DIGITS,
    )
    included_tokens = models.BigIntegerField(
        null=True, blank=True, help_text="COST_PLUS: input + output tokens included every period (drawn down first)."
    )
    starting_at = models.DateTimeField()
    ending_before = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["rate_card", "product__name", "starting_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ending_before__isnull=True) | Q(ending_before__gt=F("starting_at")),
                name="rate_ends_after_it_starts",
            ),
            models.CheckConstraint(
                condition=~Q(rate_type="FLAT") | Q(price__isnull=False),
                name="rate_flat_has_price",
                violation_error_message="A FLAT rate needs a price.",
            ),
            ExclusionConstraint(
                name="rate_no_overlap_per_product",
                expressions=[
                    ("rate_card", RangeOperators.EQUAL),
                    ("product", RangeOperators.EQUAL),
                    (_active_range(), RangeOperators.OVERLAPS),
                ],
                violation_error_message="Another rate for this product on this rate card overlaps this time range.",
            ),
        ]

    def __str__(self) -> str:
        """'Agent runs at $0.20 per request from 2026-01-01 00:00' (prices are stored in cents)."""
        flat = self.rate_type == self.RateType.FLAT and self.price is not None
        if flat and self.product.type == Product.Type.COMPOSITE:  # the price is a fraction of other lines
            price = f"{plain(self.price * 100)}% of the usage charges"
        elif flat:
            price = f"{format_cents_price(self.price)} per {self.product.unit_name}"
        else:
            price = self.get_rate_type_display().lower()
        return f"{self.product} at {price} from {self.starting_at:%Y-%m-%d %H:%M}"

    def clean(self):
        errors = validate_range(self.starting_at, self.ending_before)
        if self.rate_type == self.RateType.FLAT and self.price is None:
            errors["price"] = "A FLAT rate needs a price (in cents)."
        if self.rate_type == self.RateType.TIERED and self.price is not None:
            errors["price"] = "A TIERED rate takes its prices from its tiers; leave price empty."
        errors.update(self._cost_plus_errors())
        if self.quantity is not None and self.quantity <= 0:
            errors["quantity"] = "Must be greater than 0."
        if self.rate_card_id and self.product_id and self.product.organization_id != self.rate_card.organization_id:
            errors["product"] = "The product belongs to another organization."
        if self.product_id and self.product.type == Product.Type.COMPOSITE and self.rate_type != self.RateType.FLAT:
            errors["rate_type"] = "A composite product's rate is FLAT: its price is the fraction charged (0.1 = 10%)."
        if not errors and self.rate_card_id and self.product_id and self.starting_at and not self.siblings_checked:
            clash = overlapping(
                Rate.objects.filter(rate_card_id=self.rate_card_id, product_id=self.product_id).exclude(pk=self.pk),
                self.starting_at,
                self.ending_before,
            )
            if clash is not None:
                errors["starting_at"] = (
                    f"Overlaps another rate for {self.product} on this rate card ({clash.range_text})."
                )
        if errors:
            raise ValidationError(errors)

    def _cost_plus_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        terms = {
            "markup": self.markup,
            "minimum_cents": self.minimum_cents,
            "included_cents": self.included_cents,
            "included_tokens": self.included_tokens,
        }
        if self.rate_type != self.RateType.COST_PLUS:
            for name, value in terms.items():
                if value is not None:
                    errors[name] = "Only COST_PLUS rates take this."
            if self.model_markups:
                errors["model_markups"] = "Only COST_PLUS rates take this."
            return errors
        if self.price is not None:
            errors["price"] = "A COST_PLUS rate charges the calls' cost times (1 + markup); leave price empty."
        if self.markup is None:
            errors["markup"] = "A COST_PLUS rate needs a markup (0.3 = 30 %)."
        for name in ("markup", "minimum_cents", "included_cents", "included_tokens"):
            if terms[name] is not None and terms[name] < 0:
                errors[name] = "Must be 0 or more."
        if self.included_cents is not None and self.included_tokens is not None:
            errors["included_tokens"] = "Give the included usage in cents or in tokens, not both."
        problem = model_markups_error(self.model_markups)
        if problem:
            errors["model_markups"] = problem
        product = self.product if self.product_id else None
        metric = product.billable_metric if product is not None and product.billable_metric_id else None
        if product is not None and (
            metric is None or metric.aggregation_type != "SUM" or metric.aggregation_key != "cost_microdollars"
        ):
            errors["rate_type"] = (
                "A COST_PLUS rate charges the cost of model calls: its product's billable metric must SUM "
                "cost_microdollars (group it by model to show one line per model)."
            )
        elif product is not None and product.conversion_factor is not None:
            errors["rate_type"] = "A COST_PLUS product has no quantity conversion (its quantity is the cost)."
        elif product is not None and self.model_markups and "model" not in (product.presentation_group_key or []):
            errors["model_markups"] = (
                "Per-model markups need lines per model: add model to the product's presentation_group_key."
            )
        return errors

    @property
    def range_text(self) -> str:
        end = f"{self.ending_before:%Y-%m-%d %H:%M}" if self.ending_before else "open-ended"
        return f"{self.starting_at:%Y-%m-%d %H:%M} to {end}"


def model_markups_error(value) -> str:
    """Model markups are {catalog slug: markup of 0 or more, at most 12 decimals} ('' when valid)."""
    if not isinstance(value, dict):
        return 'Must be an object like {"openai/gpt-4o": "0.5"}.'
    for slug, markup in value.items():
        if not isinstance(slug, str) or not slug.strip() or "\x00" in slug:
            return "Model slugs must be non-empty strings."
        try:
            number = Decimal(str(markup)) if not isinstance(markup, bool | dict | list) and markup is not None else None
        except ArithmeticError:
            number = None
        if number is None or not number.is_finite():
            return f"The markup of {slug} must be a number."
        if number < 0:
            return f"The markup of {slug} must be 0 or more."
        if number.as_tuple().exponent < -PRICE_DIGITS["decimal_places"] or abs(number) >= Decimal(10) ** 18:
            return f"The markup of {slug} must have at most 12 decimal places and 18 digits before the point."
    return ""


def overlapping(queryset, starting_at, ending_before):
    """The first row of ``queryset`` whose [starting_at, ending_before) intersects the given range."""
    condition = Q(ending_before__isnull=True) | Q(ending_before__gt=starting_at)
    if ending_before is not None:
        condition &= Q(starting_at__lt=ending_before)
    return queryset.filter(condition).order_by("starting_at").first()


class RateTier(models.Model):
    """One graduated tier of a TIERED rate: ``size`` units (empty: the unbounded last tier) at ``price`` cents."""

    rate = models.ForeignKey(Rate, on_delete=models.CASCADE, related_name="tiers")
    position = models.PositiveSmallIntegerField(help_text="1 for the first tier, 2 for the next, ...")
    size = models.DecimalField(null=True, blank=True, **QUANTITY_DIGITS)
    price = models.DecimalField(**PRICE_DIGITS)

    class Meta:
        ordering = ["rate", "position"]
        constraints = [
            models.UniqueConstraint(fields=["rate", "position"], name="rate_tier_unique_position"),
            models.CheckConstraint(condition=Q(size__isnull=True) | Q(size__gt=0), name="rate_tier_size_positive"),
        ]

    def __str__(self) -> str:
        size = "∞" if self.size is None else format_quantity(self.size)
        return f"tier {self.position}: {size} at {format_cents_price(self.price)} each"


# --- Contracts -------------------------------------------------------------------------------


class Contract(ExclusionCheckedInClean):
    """A customer billed from a rate card for [starting_at, ending_before), in monthly periods."""

    class StatementDay(models.TextChoices):
        FIRST_OF_MONTH = "FIRST_OF_MONTH", "Calendar months (1st of the month, UTC)"
        CONTRACT_START = "CONTRACT_START", "Monthly from the contract start"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.PROTECT, related_name="+")
    rate_card = models.ForeignKey(RateCard, on_delete=models.PROTECT, related_name="contracts")
    name = models.CharField(max_length=255, blank=True)
    starting_at = models.DateTimeField()
    ending_before = models.DateTimeField(null=True, blank=True)
    usage_statement_day = models.CharField(
        max_length=16,
        choices=StatementDay.choices,
        default=StatementDay.FIRST_OF_MONTH,
        help_text="Billing periods are monthly: calendar months, or months from the contract start.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "-starting_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ending_before__isnull=True) | Q(ending_before__gt=F("starting_at")),
                name="contract_ends_after_it_starts",
            ),
            ExclusionConstraint(
                name="contract_no_overlap_per_customer",
                expressions=[("customer", RangeOperators.EQUAL), (_active_range(), RangeOperators.OVERLAPS)],
                violation_error_message="The customer already has a contract in this time range.",
            ),
        ]

    def __str__(self) -> str:
        return self.name or f"{self.customer} on {self.rate_card}"

    def clean(self):
        errors = validate_range(self.starting_at, self.ending_before)
        if self.organization_id and self.customer_id and self.customer.organization_id != self.organization_id:
            errors["customer"] = "The customer belongs to another organization."
        if self.organization_id and self.rate_card_id and self.rate_card.organization_id != self.organization_id:
            errors["rate_card"] = "The rate card belongs to another organization."
        if "starting_at" not in errors and self.starting_at:
            errors.update(self._backdate_errors())
        if not errors and self.customer_id and self.starting_at:
            clash = overlapping(
                Contract.objects.filter(customer_id=self.customer_id).exclude(pk=self.pk),
                self.starting_at,
                self.ending_before,
            )
            if clash is not None:
                errors["starting_at"] = (
                    f"{self.customer} already has a contract from {clash.starting_at:%Y-%m-%d %H:%M}."
                )
        if errors:
            raise ValidationError(errors)


    def _backdate_errors(self) -> dict[str, str]:
        """A new contract starts at most BILLING_MAX_BACKDATE_MONTHS before now (every started month
        opens a draft). Existing contracts stay editable; only moving one's start earlier, past the
        limit, is refused, as it would open the same drafts."""
        months = settings.BILLING_MAX_BACKDATE_MONTHS
        earliest = earliest_contract_start(now=timezone.now(), max_backdate_months=months)
        if self.starting_at >= earliest:
            return {}
        if not self._state.adding:
            stored = Contract.objects.filter(pk=self.pk).values_list("starting_at", flat=True).first()
            if stored is not None and self.starting_at >= stored:
                return {}
        return {
            "starting_at": (
                f"Must be at most {months} months before now "
                f"(on or after {earliest:%Y-%m-%d %H:%M} UTC; BILLING_MAX_BACKDATE_MONTHS)."
            )
        }


class ContractOverride(ExclusionCheckedInClean):
    """A per-product change to the rate card inside one contract: price and/or entitlement."""

    class Type(models.TextChoices):
        NONE = "", "Entitlement only"
        OVERWRITE = "OVERWRITE", "Overwrite price"
        MULTIPLIER = "MULTIPLIER", "Multiply price"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="overrides")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    starting_at = models.DateTimeField()
    ending_before = models.DateTimeField(null=True, blank=True)
    entitled = models.BooleanField(null=True, blank=True, help_text="Empty: keep the rate card's entitlement.")
    type = models.CharField(max_length=10, choices=Type.choices, blank=True, default=Type.NONE)
    price = models.DecimalField(null=True, blank=True, help_text="OVERWRITE: a FLAT price in cents.", **PRICE_DIGITS)
    multiplier = models.DecimalField(
        null=True, blank=True, help_text="MULTIPLIER: e.g. 0.9 for 10% off.", **PRICE_DIGITS
    )

    class Meta:
        ordering = ["contract", "product__name", "starting_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ending_before__isnull=True) | Q(ending_before__gt=F("starting_at")),
                name="override_ends_after_it_starts",
            ),
            ExclusionConstraint(
                name="override_no_overlap_per_product",
                expressions=[
                    ("contract", RangeOperators.EQUAL),
                    ("product", RangeOperators.EQUAL),
                    (_active_range(), RangeOperators.OVERLAPS),
                ],
                violation_error_message="Another override for this product overlaps this time range.",
            ),
        ]

    def __str__(self) -> str:
        return f"override of {self.product}"

    def clean(self):
        errors = validate_range(self.starting_at, self.ending_before)
        if self.type == self.Type.OVERWRITE and self.price is None:
            errors["price"] = "An OVERWRITE override needs a price (in cents)."
        if self.type == self.Type.MULTIPLIER and (self.multiplier is None or self.multiplier < 0):
            errors["multiplier"] = "A MULTIPLIER override needs a multiplier of 0 or more."
        if self.type != self.Type.OVERWRITE and self.price is not None:
            errors["price"] = "Only OVERWRITE overrides take a price."
        if self.type != self.Type.MULTIPLIER and self.multiplier is not None:
            errors["multiplier"] = "Only MULTIPLIER overrides take a multiplier."
        if self.type == self.Type.NONE and self.entitled is None:
            errors["entitled"] = "An override changes the price (type) or the entitlement; this one changes neither."
        if self.contract_id and self.product_id and self.product.organization_id != self.contract.organization_id:
            errors["product"] = "The product belongs to another organization."
        if not errors and self.contract_id and self.product_id and self.starting_at and not self.siblings_checked:
            clash = overlapping(
                ContractOverride.objects.filter(contract_id=self.contract_id, product_id=self.product_id).exclude(
                    pk=self.pk
                ),
                self.starting_at,
                self.ending_before,
            )
            if clash is not None:
                errors["starting_at"] = f"Overlaps another override for {self.product}."
        if errors:
            raise ValidationError(errors)

    def as_rating(self) -> rating.Override:
        return rating.Override(
            starting_at=self.starting_at,
            ending_before=self.ending_before,
            entitled=self.entitled,
            overwrite_price=self.price if self.type == self.Type.OVERWRITE else None,
            multiplier=self.multiplier if self.type == self.Type.MULTIPLIER else None,
            id=self.pk,
        )


# --- Usage rollups ---------------------------------------------------------------------------


class UsageRollup(models.Model):
    """Usage of one metric for one customer, group value and billing hour, kept up to date at ingest.

    ``hour`` is the hour usage is billed in: the event's own hour, or, for an event that arrives
    after its period was finalized, the hour it arrived (so it lands on the current draft).
    """

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(BillableMetric, on_delete=models.CASCADE, related_name="+")
    group_values = models.JSONField(default=dict)
    hour = models.DateTimeField()
    total = NumericField(default=Decimal(0))
    event_count = models.BigIntegerField(default=0)
    maximum = NumericField(null=True)
    latest_value = NumericField(null=True)
    latest_at = models.DateTimeField(null=True)
    latest_event_id = models.BigIntegerField(default=0)
    tokens = models.BigIntegerField(default=0, help_text="Input + output tokens of the model calls measured.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "metric", "hour", "group_values"], name="usage_rollup_key"),
        ]
        indexes = [models.Index(fields=["metric", "hour"], name="usage_rollup_metric_hour")]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.group_values} at {self.hour:%Y-%m-%d %H:00}"


class UniqueValueRollup(models.Model):
    """The distinct values of a UNIQUE metric per customer, group value and billing hour."""

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(BillableMetric, on_delete=models.CASCADE, related_name="+")
    group_values = models.JSONField(default=dict)
    hour = models.DateTimeField()
    value = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "metric", "hour", "group_values", "value"], name="unique_value_rollup_key"
            ),
        ]
        indexes = [models.Index(fields=["metric", "hour"], name="unique_rollup_metric_hour")]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.value!r} at {self.hour:%Y-%m-%d %H:00}"


class RollupRebuild(models.Model):
    """One rebuild of a metric's rollups from the ledger, with its progress (billing.metering).

    Started by creating or changing a metric (or by hand). It briefly takes the organization's
    ledger lock exclusively to clear the metric's rollups and note the watermark, the newest event
    id then; ingest rolls up every later event itself, while the rebuild rolls up the events up to
    the watermark in chunks, each chunk one transaction under the shared lock that also records
    `last_event_id`. So ingest never waits for the whole rebuild, and no event is counted twice or
    missed, even when the rebuild is resumed after a crash. A newer rebuild of the same metric
    supersedes an older one.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        SUPERSEDED = "superseded", "Superseded (a newer rebuild of the metric took over)"

    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    metric = models.ForeignKey(BillableMetric, on_delete=models.CASCADE, related_name="rebuilds")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    watermark_event_id = models.BigIntegerField(
        null=True, blank=True, help_text="Events up to this id are the rebuild's; later ones were rolled up at ingest."
    )
    last_event_id = models.BigIntegerField(default=0, help_text="Rolled up through this event id.")
    events_total = models.BigIntegerField(default=0, help_text="Events of the ledger to read (up to the watermark).")
    events_done = models.BigIntegerField(default=0)
    matched = models.BigIntegerField(default=0, help_text="Measurements that matched the metric.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "status"], name="rollup_rebuild_org_status")]

    def __str__(self) -> str:
        return f"rebuild of {self.metric_id}: {self.status} {self.events_done}/{self.events_total}"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return 0 if not self.events_total else min(99, self.events_done * 100 // self.events_total)


# --- Invoices --------------------------------------------------------------------------------


class Invoice(models.Model):
    """One billing period of one contract. Lines are recomputed from rollups while it is a draft.

    Money is integer cents: ``total_cents`` is the exact sum of the lines; ``amount_due_cents`` is
    the total minus credits applied (``credits_applied_cents``, filled by invoice adjusters such as
    a credit ledger; 0 without one).
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        FINALIZED = "finalized", "Finalized"
        PAID = "paid", "Paid"
        VOID = "void", "Void"
        UNCOLLECTIBLE = "uncollectible", "Uncollectible"

    CLOSED = (Status.FINALIZED, Status.PAID, Status.VOID, Status.UNCOLLECTIBLE)

    class Kind(models.TextChoices):
        REGULAR = "regular", "Regular (a billing period)"
        CORRECTION = "correction", "Correction (late usage of an ended contract)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    customer = models.ForeignKey("events.Customer", on_delete=models.PROTECT, related_name="+")
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="invoices")
    number = models.CharField(max_length=32, null=True, blank=True, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    kind = models.CharField(
        max_length=16,
        choices=Kind.choices,
        default=Kind.REGULAR,
        help_text="A correction invoice bills usage of an ended contract's finalized periods that arrived after "
        "them; its period is the month the usage arrived in.",
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="Exclusive.")
    currency = models.CharField(max_length=3, default="USD")
    total_cents = models.BigIntegerField(default=0)
    credits_applied_cents = models.BigIntegerField(default=0)
    amount_due_cents = models.BigIntegerField(default=0)
    computed_at = models.DateTimeField(null=True, blank=True, help_text="When the lines were last recomputed.")
    finalized_at = models.DateTimeField(null=True, blank=True)
    # The organization's newest event id when it was finalized (under the exclusive ledger lock): its
    # customer's events with a later id arrived after it (late usage, read by the (customer, id) index).
    ledger_watermark = models.BigIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start", "customer"]
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "period_start", "kind"], name="invoice_one_per_contract_period"
            ),
            models.CheckConstraint(condition=Q(period_end__gt=F("period_start")), name="invoice_period_not_empty"),
            models.CheckConstraint(condition=Q(credits_applied_cents__gte=0), name="invoice_credits_not_negative"),
            models.CheckConstraint(
                condition=Q(amount_due_cents=F("total_cents") - F("credits_applied_cents")),
                name="invoice_amount_due_is_total_minus_credits",
            ),
        ]
        indexes = [models.Index(fields=["customer", "status", "period_end"], name="invoice_customer_status")]

    def __str__(self) -> str:
        label = self.number or "draft"
        if self.kind == self.Kind.CORRECTION:
            label = f"correction {label}"
        return f"{label} {self.customer} {self.period_start:%Y-%m-%d}-{self.period_end:%Y-%m-%d}"

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT


class InvoiceLine(models.Model):
    """One priced line: a product (and presentation group value, and tier) over part of the period."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="+")
    product_name = models.CharField(max_length=255)
    product_type = models.CharField(max_length=16, choices=Product.Type.choices)
    group_values = models.JSONField(default=dict, blank=True, help_text="Presentation group values of this line.")
    presentation_group = models.CharField(max_length=500, blank=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    quantity = models.DecimalField(**QUANTITY_DIGITS)
    quantity_unit = models.CharField(max_length=255, blank=True)
    unit_price = models.DecimalField(help_text="Cents per unit (composite: the fraction).", **PRICE_DIGITS)
    rate_type = models.CharField(max_length=10)
    tier_index = models.PositiveSmallIntegerField(null=True, blank=True)
    tier_floor = models.DecimalField(null=True, blank=True, **QUANTITY_DIGITS)
    tier_ceiling = models.DecimalField(null=True, blank=True, **QUANTITY_DIGITS)
    amount_cents = models.BigIntegerField()
    # COST_PLUS lines, so a customer can check them: the model, its calls' priced cost and tokens,
    # the markup applied and the included usage drawn (cents of marked-up amount).
    model = models.CharField(max_length=255, blank=True)
    cost_microdollars = models.BigIntegerField(null=True, blank=True)
    markup = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)
    tokens = models.BigIntegerField(null=True, blank=True)
    allowance_cents = models.DecimalField(null=True, blank=True, **PRICE_DIGITS)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_unique_position")]

    def __str__(self) -> str:
        return f"{self.product_name} {self.presentation_group}".strip()



class StaleDrafts(models.Model):
    """A customer whose usage changed since its drafts were last computed, left to be recomputed when
    they are next read. Without a worker (eager Celery, `make demo`), ingest adds one per contracted
    customer instead of recomputing their drafts inside the request (billing.recompute); every read
    of a draft (the API, vendors' invoice lists, pages, margins' revenue, the admin) takes the rows
    of the customers it shows (DELETE … RETURNING) and recomputes those drafts first
    (invoicing.drafts_refresh), and any recompute of a customer takes its row. So a draft is exact
    whenever it is read, as Stripe's upcoming invoice is, while ingest pays one insert."""

    customer = models.OneToOneField(
        "events.Customer", on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="+")
    marked_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "stale drafts"

    def __str__(self) -> str:
        return f"drafts of customer {self.customer_id} to recompute"

# --- Prepaid credits, top-ups, auto top-up, spending limits (seed 004); collection through Stripe --
# Defined in billing/credits/models.py and billing/collection/models.py (per-customer billing
# configuration, each invoice's Stripe twin); imported here so Django registers them in the billing app.
from billing.collection.models import CustomerBillingConfig, ExternalInvoice  # noqa: E402, F401
from billing.credits.models import (  # noqa: E402, F401
    AutoTopUpAttempt,
    AutoTopUpConfig,
    CreditDraw,
    CreditEntry,
    InvoiceCredit,
    SpendingLimit,
    StripePaymentAccount,
    StripeWebhookEvent,
    TopUp,
)
