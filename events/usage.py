# ruff: noqa: S608  (SQL built from table names only; values are parameters)
"""Reads of usage sums, from the usage rollups (events.models.UsageDay, ModelUsageDay,
OrganizationUsageDay), never from the ledger for a whole period. Re-exported by events.selectors.

A rollup row covers one UTC day. A window that starts or ends inside a day (a spending limit's
rolling window, say) is answered exactly: its whole days from the rollups, its partial first and
last day from the ledger (an index range on the customer and `occurred_at`, at most two days per
customer). Budgets and margins use whole days and months only, so they read rollups alone.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from .models import Customer, ModelUsageDay, OrganizationUsageDay, UsageDay, UsageEvent

_DAYS = UsageDay._meta.db_table
_MODEL_DAYS = ModelUsageDay._meta.db_table
_ORGANIZATION_DAYS = OrganizationUsageDay._meta.db_table
_CUSTOMERS = Customer._meta.db_table
_EVENTS = UsageEvent._meta.db_table


@dataclass(frozen=True, slots=True)
class UsageAmounts:
    events: int = 0
    cost: int = 0  # microdollars
    revenue: int = 0  # microdollars


def _rows(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _day(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)

# --- Per customer and month (margins) ------------------------------------------------------------


def usage_by_customer_month(
    *, organization_id, start: date, end: date, external_ids: Iterable[str]
) -> dict[tuple[str, date], UsageAmounts]:
    """(customer external id, first day of the month) → events, cost and revenue of its usage on the
    days [start, end), for the named customers only (the caller's table rows)."""
    external_ids = sorted(set(external_ids))
    if not external_ids:
        return {}
    # The customers' ids first, so the rollup read is an index range per customer (a join lets the
    # planner scan the organization's whole period instead).
    names = dict(
        Customer.objects.filter(organization_id=organization_id, external_id__in=external_ids).values_list(
            "pk", "external_id"
        )
    )
    if not names:
        return {}
    rows = _rows(
        "SELECT customer_id, date_trunc('month', day)::date, sum(event_count), sum(cost_microdollars), "
        f"sum(revenue_microdollars) FROM {_DAYS} WHERE organization_id = %(organization)s "
        "AND customer_id = ANY(%(customers)s) AND day >= %(start)s AND day < %(end)s GROUP BY 1, 2",
        {"organization": organization_id, "customers": sorted(names), "start": start, "end": end},
    )
    return {
        (names[customer_id], month): UsageAmounts(int(events), int(cost), int(revenue))
        for customer_id, month, events, cost, revenue in rows
    }


def customers_with_revenue(*, organization_id, start: date, end: date) -> set[str]:
    """External ids of the customers whose events carried revenue on the days [start, end) (a partial
    index holds only the rollup rows with revenue)."""
    rows = _rows(
        f"SELECT DISTINCT c.external_id FROM {_DAYS} d JOIN {_CUSTOMERS} c ON c.id = d.customer_id "
        "WHERE d.organization_id = %(organization)s AND d.day >= %(start)s AND d.day < %(end)s "
        "AND d.revenue_microdollars > 0",
        {"organization": organization_id, "start": start, "end": end},
    )
    return {external_id for (external_id,) in rows}


def usage_totals_by_customer(*, organization_id, exclude_external_ids: Iterable[str] = ()) -> list[tuple]:
    """(external id, all-time cost, event count) of every customer with usage, most expensive first
    (then by external id), leaving out ``exclude_external_ids``."""
    return [
        (external_id, int(cost), int(events))
        for external_id, cost, events in _rows(
            f"SELECT c.external_id, sum(d.cost_microdollars), sum(d.event_count) FROM {_DAYS} d "
            f"JOIN {_CUSTOMERS} c ON c.id = d.customer_id WHERE d.organization_id = %(organization)s "
            "AND NOT (c.external_id = ANY(%(excluded)s)) GROUP BY c.external_id "
            "HAVING sum(d.event_count) > 0 ORDER BY 2 DESC, 1",
            {"organization": organization_id, "excluded": sorted(set(exclude_external_ids))},
        )
    ]


@dataclass(frozen=True, slots=True)
class ModelUsage:
    model: str
    cost: int
    requests: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int


def model_usage(*, organization_id, start: date, end: date, external_id: str | None = None) -> list[ModelUsage]:
    """Per model: calls, their cost and tokens on the days [start, end), of one customer or of the
    whole organization; most expensive first, then by model. Unpriced calls count with zero cost."""
    customer_filter = ""
    params = {"organization": organization_id, "start": start, "end": end}
    if external_id is not None:
        customer_filter = (
            f"AND d.customer_id = (SELECT id FROM {_CUSTOMERS} "
            "WHERE organization_id = %(organization)s AND external_id = %(customer)s) "
        )
        params["customer"] = external_id
    rows = _rows(
        "SELECT d.model, sum(d.cost_microdollars), sum(d.request_count), sum(d.input_tokens), sum(d.output_tokens), "
        f"sum(d.cached_input_tokens) FROM {_MODEL_DAYS} d WHERE d.organization_id = %(organization)s "
        f"{customer_filter}AND d.day >= %(start)s AND d.day < %(end)s GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    )
    return [ModelUsage(model, *(int(value) for value in values)) for model, *values in rows]


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    events: int
    cost: int
    revenue: int


def usage_by_day(*, organization_id, start: date, end: date, customer_id: int | None = None) -> list[DayUsage]:
    """Events, cost and revenue per UTC day in [start, end) (days without usage are left out), of one
    customer (its id) or of the whole organization."""
    if customer_id is None:
        sql = (
            "SELECT day, sum(event_count), sum(cost_microdollars), sum(revenue_microdollars) "
            f"FROM {_ORGANIZATION_DAYS} WHERE organization_id = %(organization)s "
            "AND day >= %(start)s AND day < %(end)s GROUP BY 1 ORDER BY 1"
        )
    else:
        sql = (
            f"SELECT day, sum(event_count), sum(cost_microdollars), sum(revenue_microdollars) FROM {_DAYS} "
            "WHERE organization_id = %(organization)s AND customer_id = %(customer)s "
            "AND day >= %(start)s AND day < %(end)s GROUP BY 1 ORDER BY 1"
        )
    rows = _rows(sql, {"organization": organization_id, "customer": customer_id, "start": start, "end": end})
    return [DayUsage(day, int(events), int(cost), int(revenue)) for day, events, cost, revenue in rows if events]


# --- Exact windows (spending limits) -------------------------------------------------------------


def revenue_in_window(
    *, organization_id, customer_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, int]:
    """Customer id → revenue carried on its events that occurred in [start, end), exact to the
    microsecond: the whole UTC days inside the window from the rollups, the partial days at its
    edges from the ledger (at most two days per customer)."""
    customer_ids = sorted(set(customer_ids))
    if not customer_ids or end <= start:
        return {}
    first_whole = _day(start) if _midnight(_day(start)) == start else _day(start) + timedelta(days=1)
    last_whole = _day(end)  # exclusive
    parts: list[str] = []
    params: dict = {"organization": organization_id, "customers": customer_ids}
    if first_whole < last_whole:
        parts.append(
            f"SELECT customer_id, revenue_microdollars FROM {_DAYS} WHERE organization_id = %(organization)s "
            "AND customer_id = ANY(%(customers)s) AND day >= %(first)s AND day < %(last)s"
        )
        params.update(first=first_whole, last=last_whole)
        edges = [(start, _midnight(first_whole)), (_midnight(last_whole), end)]
    else:
        edges = [(start, end)]  # inside one day, or across one midnight with no whole day
    for number, (edge_start, edge_end) in enumerate(edges):
        if edge_end <= edge_start:
            continue
        parts.append(
            f"SELECT customer_id, revenue_microdollars FROM {_EVENTS} WHERE organization_id = %(organization)s "
            f"AND customer_id = ANY(%(customers)s) AND occurred_at >= %(edge_start{number})s "
            f"AND occurred_at < %(edge_end{number})s"
        )
        params[f"edge_start{number}"], params[f"edge_end{number}"] = edge_start, edge_end
    rows = _rows(
        f"SELECT customer_id, sum(revenue_microdollars) FROM ({' UNION ALL '.join(parts)}) AS u GROUP BY 1", params
    )
    return {customer_id: int(amount) for customer_id, amount in rows}
