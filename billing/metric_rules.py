"""Validation of billable metric definitions, over plain values.

Shared by model clean() (Django admin) and the API serializers, so an operator and an API client get
the same rules and messages. Pure: it imports no model, so models and serializers can both use it.
"""

from . import rating

AGGREGATION_TYPES = [aggregation.value for aggregation in rating.AggregationType]
_FILTER_KEYS = {"name", "exists", "in_values", "not_in_values"}
_EVENT_TYPE_FILTER_KEYS = {"in_values", "not_in_values"}


# Examples shown to operators (admin help texts); tests check that each one is valid.
EVENT_TYPE_FILTER_EXAMPLES = [
    {"in_values": ["chat", "summarize"]},
    {"not_in_values": ["test"]},
    {},  # every event type
]
PROPERTY_FILTER_EXAMPLES = [
    [{"name": "region", "in_values": ["eu", "us"]}],
    [{"name": "model", "exists": True}, {"name": "plan", "not_in_values": ["free"]}],
    [],  # no property filter
]


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
    if aggregation_type not in AGGREGATION_TYPES:
        errors["aggregation_type"] = f"Must be one of {', '.join(AGGREGATION_TYPES)}."
    elif aggregation_type != rating.AggregationType.COUNT and not aggregation_key:
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
