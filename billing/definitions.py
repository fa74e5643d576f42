"""Translate billing configuration rows into the pure rating structures."""

from collections.abc import Iterable
from decimal import Decimal

from . import rating
from .meterable import names_call_fields
from .models import BillableMetric, ContractOverride, Product, Rate


def metric_definition(metric: BillableMetric) -> rating.MetricDefinition:
    event_filter = metric.event_type_filter or {}
    in_values = event_filter.get("in_values")
    names = [metric.aggregation_key or "", *(metric.group_keys or ())]
    names += [flt.get("name", "") for flt in metric.property_filters or ()]
    return rating.MetricDefinition(
        id=metric.pk,
        aggregation_type=rating.AggregationType(metric.aggregation_type),
        aggregation_key=metric.aggregation_key or None,
        event_types_in=frozenset(in_values) if in_values is not None else None,
        event_types_not_in=frozenset(event_filter.get("not_in_values") or ()),
        property_filters=tuple(
            rating.PropertyFilter(
                name=flt["name"],
                exists=flt.get("exists"),
                in_values=frozenset(flt["in_values"]) if "in_values" in flt else None,
                not_in_values=frozenset(flt["not_in_values"]) if "not_in_values" in flt else None,
            )
            for flt in metric.property_filters or ()
        ),
        group_keys=tuple(metric.group_keys or ()),
        per_call=names_call_fields(names),
    )


def product_definition(product: Product, composite_ids: Iterable = ()) -> rating.ProductDefinition:
    metric = product.billable_metric if product.billable_metric_id else None
    return rating.ProductDefinition(
        id=product.pk,
        name=product.name,
        type=rating.ProductType(product.type),
        metric=metric_definition(metric) if metric is not None else None,
        presentation_group_key=tuple(product.presentation_group_key or ()),
        quantity_conversion=product.quantity_conversion,
        composite_product_ids=tuple(composite_ids),
    )


def rate_price(rate: Rate) -> rating.Price:
    if rate.rate_type == Rate.RateType.FLAT:
        return rating.Price(rate_type=rating.RateType.FLAT, price=rate.price)
    tiers = tuple(
        rating.Tier(price=tier.price, size=tier.size) for tier in sorted(rate.tiers.all(), key=lambda t: t.position)
    )
    if rate.rate_type == Rate.RateType.COST_PLUS:
        return rating.Price(
            rate_type=rating.RateType.COST_PLUS,
            cost_plus=rating.CostPlus(
                markup=rate.markup,
                model_markups=tuple(sorted((slug, Decimal(str(value))) for slug, value in rate.model_markups.items())),
                minimum_cents=rate.minimum_cents,
                included_cents=rate.included_cents,
                included_tokens=rate.included_tokens,
                tiers=tiers,
            ),
        )
    return rating.Price(rate_type=rating.RateType.TIERED, tiers=tiers)


def rate_version(rate: Rate) -> rating.RateVersion:
    return rating.RateVersion(
        starting_at=rate.starting_at,
        ending_before=rate.ending_before,
        entitled=rate.entitled,
        price=rate_price(rate),
        quantity=rate.quantity,
        id=rate.pk,
    )


def override_version(override: ContractOverride) -> rating.Override:
    return override.as_rating()
