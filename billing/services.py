"""Writes of billing configuration. Each validates with the models' rules (the same ones Django admin
applies), writes in one transaction and maps database constraint violations to ValidationError.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from django.core import signing
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import rating
from .invoicing import contract_drafts_ensure, drafts_refresh_later
from .metering import lock_organization_exclusive, rollup_rebuild_queue
from .models import (
    BillableMetric,
    Contract,
    ContractOverride,
    Invoice,
    Product,
    Rate,
    RateCard,
    RateTier,
    composite_references_errors,
)
from .recompute import schedule_draft_recompute

_CONSTRAINT_FIELDS = {
    "rate_no_overlap_per_product": ("starting_at", "Overlaps another rate for this product on this rate card."),
    "contract_no_overlap_per_customer": ("starting_at", "The customer already has a contract in this time range."),
    "override_no_overlap_per_product": ("starting_at", "Overlaps another override for this product."),
    "billable_metric_unique_name": ("name", "A billable metric with this name already exists."),
    "rate_card_unique_name": ("name", "A rate card with this name already exists."),
}


def _save(instance) -> None:
    """full_clean() then save(); a constraint the database enforces under concurrency becomes a field error."""
    try:
        instance.full_clean()
    except ValidationError as error:
        # the (organization, name) unique constraints are reported without a field: name it
        messages = error.error_dict.get(NON_FIELD_ERRORS, []) if hasattr(error, "error_dict") else []
        if any(message.code == "unique_together" for message in messages):
            raise ValidationError(
                {"name": f"A {instance._meta.verbose_name} with this name already exists."}
            ) from error
        raise
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as error:
        for name, (field, message) in _CONSTRAINT_FIELDS.items():
            if name in str(error):
                raise ValidationError({field: message}) from error
        raise


# --- Billable metrics ------------------------------------------------------------------------------

METRIC_DEFINITION_FIELDS = (
    "event_type_filter",
    "property_filters",
    "aggregation_type",
    "aggregation_key",
    "group_keys",
)


@transaction.atomic
def billable_metric_create(
    *,
    organization,
    name: str,
    aggregation_type: str,
    aggregation_key: str = "",
    event_type_filter: dict | None = None,
    property_filters: list | None = None,
    group_keys: Sequence[str] = (),
) -> BillableMetric:
    """Create a metric. Usage that arrived before it is rolled up by a rebuild queued on commit
    (billing.metering: ingest goes on meanwhile); the drafts are recomputed when it is done."""
    metric = BillableMetric(
        organization=organization,
        name=name,
        aggregation_type=aggregation_type,
        aggregation_key=aggregation_key or "",
        event_type_filter=event_type_filter or {},
        property_filters=property_filters or [],
        group_keys=list(group_keys),
    )
    _save(metric)
    rollup_rebuild_queue(metric=metric)
    return metric


@transaction.atomic
def billable_metric_update(*, metric: BillableMetric, **changes) -> BillableMetric:
    """Change a metric. A change to its definition rebuilds its rollups from the ledger after commit."""
    definition_changed = any(
        key in METRIC_DEFINITION_FIELDS and getattr(metric, key) != value for key, value in changes.items()
    )
    for key, value in changes.items():
        setattr(metric, key, value)
    _save(metric)
    if definition_changed:
        rollup_rebuild_queue(metric=metric)
    return metric


# --- Products ------------------------------------------------------------------------------------


@transaction.atomic
def product_create(
    *,
    organization,
    name: str,
    type: str = Product.Type.USAGE,  # Metronome's field name
    billable_metric: BillableMetric | None = None,
    presentation_group_key: Sequence[str] = (),
    quantity_conversion: dict | None = None,
    composite_products: Sequence[Product] = (),
    external_id: str = "",
    stripe_product_id: str = "",
) -> Product:
    conversion = quantity_conversion or {}
    product = Product(
        organization=organization,
        name=name,
        type=type,
        billable_metric=billable_metric,
        presentation_group_key=list(presentation_group_key),
        conversion_factor=conversion.get("conversion_factor"),
        conversion_operation=conversion.get("operation", "") or "",
        conversion_name=conversion.get("name", "") or "",
        external_id=external_id,
        stripe_product_id=stripe_product_id,
    )
    errors = composite_references_errors(product, list(composite_products))
    if errors:
        raise ValidationError(errors)
    _save(product)
    if composite_products:
        product.composite_products.set(composite_products)
    return product


# --- Rate cards and rates --------------------------------------------------------------------------


@transaction.atomic
def rate_card_create(*, organization, name: str, description: str = "") -> RateCard:
    rate_card = RateCard(organization=organization, name=name, description=description)
    _save(rate_card)
    return rate_card


@transaction.atomic
def rate_create(
    *,
    rate_card: RateCard,
    product: Product,
    starting_at: datetime,
    ending_before: datetime | None = None,
    entitled: bool = True,
    rate_type: str = Rate.RateType.FLAT,
    price: Decimal | None = None,
    tiers: Sequence[dict] = (),
    quantity: Decimal = Decimal(1),
    markup: Decimal | None = None,
    model_markups: dict | None = None,
    minimum_cents: Decimal | None = None,
    included_cents: Decimal | None = None,
    included_tokens: int | None = None,
) -> Rate:
    """Add a rate. Overlapping another rate of the product on the card is a validation error on starting_at.
    COST_PLUS terms (markup, model_markups, minimum_cents, included_cents / included_tokens): see rating.CostPlus."""
    rate = Rate(
        rate_card=rate_card,
        product=product,
        starting_at=starting_at,
        ending_before=ending_before,
        entitled=entitled,
        rate_type=rate_type,
        price=price,
        quantity=quantity,
        markup=markup,
        model_markups=_markups_json(model_markups),
        minimum_cents=minimum_cents,
        included_cents=included_cents,
        included_tokens=included_tokens,
    )
    tier_rows = [
        RateTier(position=index, size=tier.get("size"), price=tier["price"])
        for index, tier in enumerate(tiers, start=1)
    ]
    errors = tier_errors(rate_type, tier_rows)
    if tier_rows and minimum_cents is not None:
        errors.setdefault("minimum_cents", "A COST_PLUS rate with tiers has no minimum (tiers price every cent).")
    if errors:
        raise ValidationError(errors)
    _save(rate)
    for tier in tier_rows:
        tier.rate = rate
    RateTier.objects.bulk_create(tier_rows)
    drafts_refresh_later(rate_card_id=rate_card.pk)
    return rate


def _markups_json(model_markups):
    """Markups travel to the JSON column as exact Decimal strings (a wrong shape is left for clean())."""
    if model_markups is None:
        return {}
    if isinstance(model_markups, dict):
        return {slug: str(value) if isinstance(value, Decimal) else value for slug, value in model_markups.items()}
    return model_markups


def tier_errors(rate_type: str, tiers: Sequence[RateTier]) -> dict[str, str]:
    """Tiers belong to TIERED rates (and, optionally, COST_PLUS rates: on the marked-up amount), in
    order, every tier but the last with a size; sizes and prices fit their columns exactly, as a
    FLAT price must (no silent rounding)."""
    if rate_type == Rate.RateType.COST_PLUS and not tiers:
        return {}
    if rate_type not in (Rate.RateType.TIERED, Rate.RateType.COST_PLUS):
        return {"tiers": "Only TIERED and COST_PLUS rates have tiers."} if tiers else {}
    ordered = sorted(tiers, key=lambda tier: tier.position)
    for tier in ordered:
        try:
            tier.clean_fields(exclude=["rate"])
        except ValidationError as error:
            field, messages = next(iter(error.message_dict.items()))
            return {"tiers": f"Tier {tier.position} {field}: {messages[0]}"}
    try:
        rating.validate_tiers([rating.Tier(price=tier.price, size=tier.size) for tier in ordered])
    except ValueError as error:
        return {"tiers": str(error).capitalize()}
    if any(tier.price is None or tier.price < 0 for tier in ordered):
        return {"tiers": "Tier prices must be 0 or more."}
    return {}


# --- Contracts -------------------------------------------------------------------------------------


@transaction.atomic
def contract_create(
    *,
    organization,
    customer,
    rate_card: RateCard,
    starting_at: datetime,
    ending_before: datetime | None = None,
    name: str = "",
    usage_statement_day: str = Contract.StatementDay.FIRST_OF_MONTH,
    overrides: Sequence[dict] = (),
) -> Contract:
    """Put a customer on a rate card. Drafts for the periods that have started are created at once,
    and usage already recorded for the customer (rollups) shows on them after the recompute.

    Takes the organization's billing lock exclusively: an ingest that is still open (and read, when
    it began, that the organization had no contract, so it will not queue a recompute) commits
    first, and the recompute queued here sees its usage."""
    lock_organization_exclusive(organization.pk)
    contract = Contract(
        organization=organization,
        customer=customer,
        rate_card=rate_card,
        starting_at=starting_at,
        ending_before=ending_before,
        name=name,
        usage_statement_day=usage_statement_day,
    )
    _save(contract)
    for index, spec in enumerate(overrides):
        try:
            contract_override_create(contract=contract, **spec)
        except ValidationError as error:
            raise ValidationError(
                {f"overrides[{index}].{field}": messages for field, messages in error.message_dict.items()}
            ) from error
    contract_drafts_ensure(contract=contract)
    customer_id = contract.customer_id
    transaction.on_commit(lambda: schedule_draft_recompute(customer_id))
    return contract


@transaction.atomic
def contract_override_create(
    *,
    contract: Contract,
    product: Product,
    starting_at: datetime | None = None,
    ending_before: datetime | None = None,
    entitled: bool | None = None,
    type: str = "",  # Metronome's field name
    price: Decimal | None = None,
    multiplier: Decimal | None = None,
) -> ContractOverride:
    override = ContractOverride(
        contract=contract,
        product=product,
        starting_at=starting_at or contract.starting_at,
        ending_before=ending_before,
        entitled=entitled,
        type=type or "",
        price=price,
        multiplier=multiplier,
    )
    _save(override)
    return override


# --- Customer links --------------------------------------------------------------------------------

LINK_SALT = "billing.invoice-link"


def invoice_link_token(*, invoice: Invoice, expires_at: datetime) -> str:
    """A signed token naming the invoice and its expiry. Anyone holding it may view that invoice until then."""
    return signing.dumps(
        {"invoice": str(invoice.pk), "exp": int(expires_at.timestamp())}, salt=LINK_SALT, compress=True
    )


class LinkExpired(Exception):
    pass


def invoice_from_link_token(token: str) -> Invoice:
    """The invoice a token names. Raises signing.BadSignature (tampered), LinkExpired, Invoice.DoesNotExist."""
    payload = signing.loads(token, salt=LINK_SALT)
    if not isinstance(payload, dict) or "invoice" not in payload or "exp" not in payload:
        raise signing.BadSignature("malformed link")
    if int(payload["exp"]) <= int(timezone.now().timestamp()):
        raise LinkExpired
    return Invoice.objects.select_related("customer", "contract", "organization").get(pk=payload["invoice"])
