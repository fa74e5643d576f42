"""Translate billing configuration rows into the pure rating structures, and validate metric definitions.

The validation here is shared by model clean() (Django admin) and the API serializers, so an
operator and an API client get the same rules and messages.
"""

from collections.abc import Iterable

from . import rating
from .models import BillableMetric, ContractOverride, Product, Rate

_FILTER_KEYS = {"name", "exists", "in_values", "not_in_values"}
_EVENT_TYPE_FILTER_KEYS = {"in_values", "not_in_values"}


def _string_list_error(value, what: str) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        return f"{what} must be a list of non-empty strings."
    if any("\x00" in item for item in value):
        return f"{what} must not contain NUL characters."
    return None


def metric_definition_errors(
    *, event_type_filter, property_filters, aggregation_type, aggregation_key, group_keys
) -> dict[str, str]:
    """Field → message for everything wrong with a billable metric definition (empty when valid)."""
    errors: dict[str, str] = {}
    if not isinstance(event_type_filter, dict):
        errors["event_type_filter"] = 'Must be an object like {"in_values": [...], "not_in_values": [...]}.'
    else:
        unknown = set(event_type_filter) - _EVENT_TYPE_FILTER_KEYS
        if unknown:
            errors["event_type_filter"] = f"Unknown key {sorted(unknown)[0]!r}; use in_values and not_in_values."
        for key in _EVENT_TYPE_FILTER_KEYS & set(event_type_filter):
            problem = _string_list_error(event_type_filter[key], f"event_type_filter.{key}")
            if problem:
                errors["event_type_filter"] = problem
    if not isinstance(property_filters, list):
        errors["property_filters"] = "Must be a list of filters."
    else:
        for index, flt in enumerate(property_filters):
            problem = _property_filter_error(flt)
            if problem:
                errors["property_filters"] = f"Filter {index + 1}: {problem}"
                break
    if aggregation_type not in BillableMetric.AggregationType.values:
        errors["aggregation_type"] = f"Must be one of {', '.join(BillableMetric.AggregationType.values)}."
    elif aggregation_type != BillableMetric.AggregationType.COUNT and not aggregation_key:
        errors["aggregation_key"] = f"{aggregation_type} needs an aggregation_key (the property to aggregate)."
    keys = [] if group_keys is None else group_keys  # a string is not a list of keys ("user" is not u, s, e, r)
    problem = _string_list_error(keys, "group_keys")
    if problem:
        errors["group_keys"] = problem
    elif len(set(keys)) != len(keys):
        errors["group_keys"] = "Group keys must not repeat."
    return errors


def _property_filter_error(flt) -> str | None:
    if not isinstance(flt, dict):
        return "must be an object."
    unknown = set(flt) - _FILTER_KEYS
    if unknown:
        return f"unknown key {sorted(unknown)[0]!r}; use name, exists, in_values, not_in_values."
    if not isinstance(flt.get("name"), str) or not flt["name"]:
        return "name is required."
    if "\x00" in flt["name"]:
        return "name must not contain NUL characters."
    if "exists" in flt and not isinstance(flt["exists"], bool):
        return "exists must be true or false."
    for key in ("in_values", "not_in_values"):
        if key in flt:
            problem = _string_list_error(flt[key], key)
            if problem:
                return problem
    if not ({"exists", "in_values", "not_in_values"} & set(flt)):
        return "give at least one of exists, in_values, not_in_values."
    if flt.get("exists") is False and ("in_values" in flt):
        return "exists false contradicts in_values."
    return None


def metric_definition(metric: BillableMetric) -> rating.MetricDefinition:
    event_filter = metric.event_type_filter or {}
    in_values = event_filter.get("in_values")
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
    tiers = sorted(rate.tiers.all(), key=lambda tier: tier.position)
    return rating.Price(
        rate_type=rating.RateType.TIERED,
        tiers=tuple(rating.Tier(price=tier.price, size=tier.size) for tier in tiers),
    )


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
