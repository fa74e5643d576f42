# ruff: noqa: S608  (SQL built from table names only; values are parameters)
"""Reads of usage sums, from the usage rollups (events.models.UsageDay, ModelUsageDay,
OrganizationUsageDay), never from the ledger for a whole period. Re-exported by events.selectors.

A rollup row covers one UTC day. A window that starts or ends inside a day (a spending limit's
rolling window, say) is answered exactly: its whole days from the rollups, its partial first and
last day from the ledger (an index range on the customer and `occurred_at`, at most two days per
customer). Budgets, margins and the dashboard's usage and customer pages use whole days and months
only, so they read rollups alone.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection

from .models import Customer, ModelUsageDay, OrganizationUsageDay, UsageDay, UsageEvent, VendorResponse

_DAYS = UsageDay._meta.db_table
_MODEL_DAYS = ModelUsageDay._meta.db_table
_ORGANIZATION_DAYS = OrganizationUsageDay._meta.db_table
_CUSTOMERS = Customer._meta.db_table
_EVENTS = UsageEvent._meta.db_table
_CALLS = VendorResponse._meta.db_table


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


@dataclass(frozen=True, slots=True)
class CustomerMonths:
    """What `usage_by_customer_month` read: the named customers that exist and their usage per month."""

    names: dict[str, str]  # external id → name ("" when it has none)
    amounts: dict[tuple[str, date], UsageAmounts]  # (external id, first day of the month) → its usage


def _month_starts(start: date, end: date) -> list[date]:
    """The first day of each calendar month that has a day in [start, end), in order."""
    months, month = [], start.replace(day=1)
    while month < end:
        months.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return months


def usage_by_customer_month(
    *, organization_id, start: date, end: date, external_ids: Iterable[str]
) -> CustomerMonths:
    """Events, cost and revenue of the named customers' usage on the days [start, end), per calendar
    month, with their names (the caller's table rows): one statement."""
    external_ids = sorted(set(external_ids))
    months = _month_starts(start, end)
    if not external_ids or not months:
        return CustomerMonths({}, {})
    # The named customers first, then the rollup read by their ids as an array (an index range per
    # customer; a join lets the planner scan the organization's whole period instead), summed per
    # month and joined back to every named customer (those without usage too, for their names).
    # The month of a day is its bucket among the months' first days (width_bucket: a binary search
    # on dates, where date_trunc went through a timestamp with time zone for each of ~13k rows).
    rows = _rows(
        f"WITH named AS MATERIALIZED (SELECT id, external_id, name FROM {_CUSTOMERS} "
        "WHERE organization_id = %(organization)s AND external_id = ANY(%(external_ids)s)), "
        "sums AS (SELECT customer_id, width_bucket(day, %(months)s::date[]) AS month, sum(event_count) AS events, "
        "sum(cost_microdollars) AS cost, sum(revenue_microdollars) AS revenue "
        f"FROM {_DAYS} WHERE organization_id = %(organization)s "
        "AND customer_id = ANY(ARRAY(SELECT id FROM named)) AND day >= %(start)s AND day < %(end)s "
        "GROUP BY 1, 2) "
        "SELECT named.external_id, named.name, sums.month, sums.events, sums.cost, sums.revenue "
        "FROM named LEFT JOIN sums ON sums.customer_id = named.id",
        {
            "organization": organization_id,
            "external_ids": external_ids,
            "months": months,
            "start": start,
            "end": end,
        },
    )
    names, amounts = {}, {}
    for external_id, name, bucket, events, cost, revenue in rows:
        names[external_id] = name
        if bucket is not None:  # width_bucket: 1 for the first month (every day read is on or after it)
            amounts[(external_id, months[bucket - 1])] = UsageAmounts(int(events), int(cost), int(revenue))
    return CustomerMonths(names, amounts)


def customers_with_revenue(*, organization_id, start: date, end: date) -> set[str]:
    """External ids of the customers whose events carried revenue on the days [start, end) (a partial
    index holds only the rollup rows with revenue: `has_revenue`)."""
    rows = _rows(
        f"SELECT DISTINCT c.external_id FROM {_DAYS} d JOIN {_CUSTOMERS} c ON c.id = d.customer_id "
        "WHERE d.organization_id = %(organization)s AND d.day >= %(start)s AND d.day < %(end)s "
        "AND d.has_revenue",
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


# --- Exact windows (spending limits, budgets on the customer page, the usage page) ---------------


def _split(start: datetime, end: datetime) -> tuple[tuple[date, date] | None, list[tuple[datetime, datetime]]]:
    """[start, end) as its whole UTC days [first, last) (None when it holds none), read from the
    rollups, and the partial days at its edges (empty intervals left out), read from the ledger."""
    if end <= start:
        return None, []
    first_whole = _day(start) if _midnight(_day(start)) == start else _day(start) + timedelta(days=1)
    last_whole = _day(end)  # exclusive
    if first_whole < last_whole:
        edges = [(start, _midnight(first_whole)), (_midnight(last_whole), end)]
        whole = (first_whole, last_whole)
    else:
        edges, whole = [(start, end)], None  # inside one day, or across one midnight with no whole day
    return whole, [(edge_start, edge_end) for edge_start, edge_end in edges if edge_start < edge_end]


def _union(rollup_select: str, ledger_select: str, start: datetime, end: datetime, params: dict) -> str | None:
    """`rollup_select` over the window's whole days (it filters on `%(first)s <= day < %(last)s`) UNION ALL
    `ledger_select` over each edge (`%(edge_startN)s <= occurred_at < %(edge_endN)s`, written with the
    placeholders `{edge_start}` / `{edge_end}`); fills ``params``. None when the window is empty."""
    whole, edges = _split(start, end)
    parts = []
    if whole is not None:
        parts.append(rollup_select)
        params["first"], params["last"] = whole
    for number, (edge_start, edge_end) in enumerate(edges):
        parts.append(ledger_select.format(edge_start=f"%(edge_start{number})s", edge_end=f"%(edge_end{number})s"))
        params[f"edge_start{number}"], params[f"edge_end{number}"] = edge_start, edge_end
    return " UNION ALL ".join(parts) or None


def usage_in_window(
    *, organization_id, customer_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, UsageAmounts]:
    """Customer id → events, cost and revenue of its usage that occurred in [start, end), exact to the
    microsecond: the whole UTC days inside the window from the rollups, the partial days at its
    edges from the ledger (at most two days per customer). Customers without usage are left out."""
    customer_ids = sorted(set(customer_ids))
    if not customer_ids:
        return {}
    params: dict = {"organization": organization_id, "customers": customer_ids}
    union = _union(
        f"SELECT customer_id, event_count, cost_microdollars, revenue_microdollars FROM {_DAYS} "
        "WHERE organization_id = %(organization)s AND customer_id = ANY(%(customers)s) "
        "AND day >= %(first)s AND day < %(last)s",
        f"SELECT customer_id, 1, cost_microdollars, revenue_microdollars FROM {_EVENTS} "
        "WHERE organization_id = %(organization)s AND customer_id = ANY(%(customers)s) "
        "AND occurred_at >= {edge_start} AND occurred_at < {edge_end}",
        start, end, params,
    )
    if union is None:
        return {}
    rows = _rows(
        "SELECT customer_id, sum(event_count), sum(cost_microdollars), sum(revenue_microdollars) "
        f"FROM ({union}) AS u (customer_id, event_count, cost_microdollars, revenue_microdollars) GROUP BY 1",
        params,
    )
    return {
        customer_id: UsageAmounts(int(events), int(cost), int(revenue)) for customer_id, events, cost, revenue in rows
    }


def revenue_in_window(
    *, organization_id, customer_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, int]:
    """Customer id → revenue carried on its events that occurred in [start, end), exact to the
    microsecond (`usage_in_window`)."""
    usage = usage_in_window(organization_id=organization_id, customer_ids=customer_ids, start=start, end=end)
    return {customer_id: amounts.revenue for customer_id, amounts in usage.items()}


@dataclass(frozen=True, slots=True)
class UsageTotals:
    key: str  # a day (YYYY-MM-DD, UTC), a model slug or a customer external id
    cost_microdollars: int
    revenue_microdollars: int
    requests: int  # events (days, customers) or model calls (models)
    input_tokens: int = 0
    output_tokens: int = 0
    name: str = ""  # the customer's name (customers)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    days: list[UsageTotals]  # every day of the range, oldest first, zeros included
    models: list[UsageTotals]  # most expensive first; revenue is 0 (events carry revenue, not model calls)
    customers: list[UsageTotals]  # most expensive first
    more_customers: int = 0  # customers with usage left out of `customers` by a `customer_limit`


def usage_summary(
    *, organization_id, start: datetime, end: datetime, customer_limit: int | None = None
) -> UsageSummary:
    """An organization's usage that occurred in [start, end), by UTC day, by model (the calls' model as
    sent; unpriced calls count with zero cost) and by customer (those with usage; the
    ``customer_limit`` most expensive when given, with the number left out), exact to the
    microsecond like `usage_in_window`: whole days from the rollups (`OrganizationUsageDay`,
    `ModelUsageDay`, `UsageDay`), partial edge days from the ledger. Three grouped queries."""
    if customer_limit is not None and customer_limit < 1:
        raise ValueError("customer_limit is at least 1 (None: every customer)")
    organization = {"organization": organization_id}
    day_params, model_params, customer_params = dict(organization), dict(organization), dict(organization)
    by_day = _union(
        f"SELECT day, event_count, cost_microdollars, revenue_microdollars FROM {_ORGANIZATION_DAYS} "
        "WHERE organization_id = %(organization)s AND day >= %(first)s AND day < %(last)s",
        "SELECT (occurred_at AT TIME ZONE 'UTC')::date, 1, cost_microdollars, revenue_microdollars "
        f"FROM {_EVENTS} WHERE organization_id = %(organization)s "
        "AND occurred_at >= {edge_start} AND occurred_at < {edge_end}",
        start, end, day_params,
    )
    by_model = _union(
        f"SELECT model, request_count, cost_microdollars, input_tokens, output_tokens FROM {_MODEL_DAYS} "
        "WHERE organization_id = %(organization)s AND day >= %(first)s AND day < %(last)s",
        "SELECT c.model, 1, coalesce(c.cost_microdollars, 0), c.input_tokens, c.output_tokens "
        f"FROM {_EVENTS} e JOIN {_CALLS} c ON c.event_id = e.id WHERE e.organization_id = %(organization)s "
        "AND e.occurred_at >= {edge_start} AND e.occurred_at < {edge_end}",
        start, end, model_params,
    )
    by_customer = _union(
        f"SELECT customer_id, event_count, cost_microdollars, revenue_microdollars FROM {_DAYS} "
        "WHERE organization_id = %(organization)s AND day >= %(first)s AND day < %(last)s",
        f"SELECT customer_id, 1, cost_microdollars, revenue_microdollars FROM {_EVENTS} "
        "WHERE organization_id = %(organization)s AND occurred_at >= {edge_start} AND occurred_at < {edge_end}",
        start, end, customer_params,
    )
    days: list[UsageTotals] = []
    more_customers = 0
    if by_day is None:  # an empty window (still listing the day it is in, as the ledger read did)
        day_sums, models, customers = {}, [], []
    else:
        day_sums = {
            day: (int(events), int(cost), int(revenue))
            for day, events, cost, revenue in _rows(
                "SELECT day, sum(event_count), sum(cost_microdollars), sum(revenue_microdollars) "
                f"FROM ({by_day}) AS u (day, event_count, cost_microdollars, revenue_microdollars) GROUP BY 1",
                day_params,
            )
        }
        models = [
            UsageTotals(model, int(cost), 0, int(requests), int(input_tokens), int(output_tokens))
            for model, requests, cost, input_tokens, output_tokens in _rows(
                "SELECT model, sum(request_count), sum(cost_microdollars), sum(input_tokens), sum(output_tokens) "
                f"FROM ({by_model}) AS u (model, request_count, cost_microdollars, input_tokens, output_tokens) "
                "GROUP BY 1 ORDER BY 3 DESC, 1",
                model_params,
            )
        ]
        # LIMIT NULL is no limit; the window count is taken over every group, before the LIMIT.
        customer_params["limit"] = customer_limit
        rows = _rows(
            "SELECT c.external_id, c.name, sum(u.event_count), sum(u.cost_microdollars), "
            f"sum(u.revenue_microdollars), count(*) OVER () FROM ({by_customer}) "
            "AS u (customer_id, event_count, cost_microdollars, revenue_microdollars) "
            f"JOIN {_CUSTOMERS} c ON c.id = u.customer_id GROUP BY c.id HAVING sum(u.event_count) > 0 "
            "ORDER BY 4 DESC, 1 LIMIT %(limit)s",
            customer_params,
        )
        customers = [
            UsageTotals(external_id, int(cost), int(revenue), int(events), name=name)
            for external_id, name, events, cost, revenue, _ in rows
        ]
        more_customers = rows[0][5] - len(rows) if rows else 0
    day = _day(start)
    while _midnight(day) < end:
        events, cost, revenue = day_sums.get(day, (0, 0, 0))
        days.append(UsageTotals(day.isoformat(), cost, revenue, events))
        day += timedelta(days=1)
    return UsageSummary(days, models, customers, more_customers)
