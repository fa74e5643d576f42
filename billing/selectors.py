"""Reads: metered usage from rollups (never from raw events), usage history, invoices."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import orjson
from django.db import connection
from django.db.models import QuerySet, Sum

from . import rating
from .models import BillableMetric, Invoice

# One row per plan segment of every request (unnest of parallel arrays), then, per segment, the
# rollups of its customer, metric and hours grouped by the product's presentation group (the metric's
# group values without the keys the product does not present). The LATERAL join reads each
# segment's rows through the rollup key index (customer, metric, hour, ...): the rows read grow with
# segments x hours x groups, never with raw events, and one statement serves every customer.
_SEGMENTS = """
WITH segment AS MATERIALIZED (
    SELECT s.request, s.segment, s.customer_id, s.metric_id, s.seg_start, s.seg_end,
           ARRAY(SELECT jsonb_array_elements_text(s.drop_keys)) AS drop_keys
    FROM unnest(%(requests)s::int[], %(segments)s::int[], %(customers)s::bigint[], %(metrics)s::uuid[],
                %(starts)s::timestamptz[], %(ends)s::timestamptz[], %(drops)s::jsonb[])
         AS s(request, segment, customer_id, metric_id, seg_start, seg_end, drop_keys)
)
"""

_USAGE_CELLS = _SEGMENTS + """
SELECT s.request, s.segment, c.grp, c.total, c.event_count, c.maximum, c.latest, c.tokens
FROM segment s CROSS JOIN LATERAL (
    SELECT (u.group_values - s.drop_keys)::text AS grp,
           sum(u.total) AS total, sum(u.event_count) AS event_count, max(u.maximum) AS maximum,
           (array_agg(u.latest_value ORDER BY u.latest_at DESC, u.latest_event_id DESC))[1] AS latest,
           sum(u.tokens) AS tokens
    FROM billing_usagerollup u
    WHERE u.customer_id = s.customer_id AND u.metric_id = s.metric_id
      AND u.hour >= s.seg_start AND u.hour < s.seg_end
    GROUP BY 1
) c
"""  # noqa: S608 (constant texts joined; every value is a parameter)

_UNIQUE_CELLS = _SEGMENTS + """
SELECT s.request, s.segment, c.grp, c.distinct_count
FROM segment s CROSS JOIN LATERAL (
    SELECT (u.group_values - s.drop_keys)::text AS grp, count(DISTINCT u.value) AS distinct_count
    FROM billing_uniquevaluerollup u
    WHERE u.customer_id = s.customer_id AND u.metric_id = s.metric_id
      AND u.hour >= s.seg_start AND u.hour < s.seg_end
    GROUP BY 1
) c
"""  # noqa: S608 (constant texts joined; every value is a parameter)


def _group(text: str, keys: Sequence[str]) -> rating.Group:
    values = orjson.loads(text)
    return tuple((key, values.get(key)) for key in keys)


@dataclass(frozen=True, slots=True)
class UsageRequest:
    """The usage of one product for one customer over a rating plan (its segments, in order)."""

    customer_id: int
    product: rating.ProductDefinition
    plan: Sequence[rating.Segment]


def usage_cells_many(requests: Sequence[UsageRequest]) -> list[list[rating.UsageCell]]:
    """`usage_cells` of every request, in the requests' order, from the hourly rollups in at most two
    queries (one for UNIQUE metrics, one for the others) however many customers and products."""
    results: list[list[rating.UsageCell]] = [[] for _ in requests]
    batches: dict[bool, dict[str, list]] = {}
    for number, request in enumerate(requests):
        metric = request.product.metric
        if metric is None or not request.plan:
            continue
        keys = request.product.presentation_group_key
        drop = orjson.dumps([key for key in metric.group_keys if key not in keys]).decode()
        batch = batches.setdefault(
            metric.aggregation_type is rating.AggregationType.UNIQUE,
            {name: [] for name in ("requests", "segments", "customers", "metrics", "starts", "ends", "drops")},
        )
        for index, segment in enumerate(request.plan):
            batch["requests"].append(number)
            batch["segments"].append(index)
            batch["customers"].append(request.customer_id)
            batch["metrics"].append(metric.id)
            batch["starts"].append(segment.start)
            batch["ends"].append(segment.end)
            batch["drops"].append(drop)
    with connection.cursor() as cursor:
        for unique, params in batches.items():
            cursor.execute(_UNIQUE_CELLS if unique else _USAGE_CELLS, params)
            for row in cursor.fetchall():
                results[row[0]].append(_cell(requests[row[0]].product, unique, row))
    return results


def _cell(product: rating.ProductDefinition, unique: bool, row) -> rating.UsageCell:
    metric, keys = product.metric, product.presentation_group_key
    if unique:
        _, segment, group, distinct = row
        quantity = rating.final_quantity(metric.aggregation_type, rating.Partial(), distinct)
        return rating.UsageCell(group=_group(group, keys), segment_index=segment, quantity=quantity)
    _, segment, group, total, count, maximum, latest, tokens = row
    partial = rating.Partial(total=total, count=int(count), maximum=maximum, latest_value=latest)
    quantity = rating.final_quantity(metric.aggregation_type, partial)
    return rating.UsageCell(group=_group(group, keys), segment_index=segment, quantity=quantity, tokens=int(tokens))


def usage_cells(
    *, customer_id: int, product: rating.ProductDefinition, plan: Sequence[rating.Segment]
) -> list[rating.UsageCell]:
    """The product's metric value per presentation group and plan segment, from hourly rollups.

    The rows read grow with hours x groups, never with the number of raw events.
    """
    return usage_cells_many([UsageRequest(customer_id=customer_id, product=product, plan=plan)])[0]


WINDOW_SIZES = {"hour": "hour", "day": "day", "month": "month"}

_HISTORY = """
SELECT date_trunc(%(size)s, hour, 'UTC') AS window_start,
       sum(total), sum(event_count), max(maximum),
       (array_agg(latest_value ORDER BY latest_at DESC, latest_event_id DESC))[1]
FROM billing_usagerollup
WHERE customer_id = %(customer)s AND metric_id = %(metric)s AND hour >= %(start)s AND hour < %(end)s
GROUP BY 1 ORDER BY 1
"""

_UNIQUE_HISTORY = """
SELECT date_trunc(%(size)s, hour, 'UTC') AS window_start, count(DISTINCT value)
FROM billing_uniquevaluerollup
WHERE customer_id = %(customer)s AND metric_id = %(metric)s AND hour >= %(start)s AND hour < %(end)s
GROUP BY 1 ORDER BY 1
"""


def usage_history(
    *, customer_id: int, metric: BillableMetric, start: datetime, end: datetime, window_size: str
) -> list[tuple[datetime, Decimal]]:
    """(window start, aggregated value) for every window in [start, end) that has usage, in order.

    Usage is counted in its billing hour (see billing.metering), across all group values.
    """
    aggregation = rating.AggregationType(metric.aggregation_type)
    params = {
        "size": WINDOW_SIZES[window_size],
        "customer": customer_id,
        "metric": metric.pk,
        "start": start,
        "end": end,
    }
    with connection.cursor() as cursor:
        if aggregation is rating.AggregationType.UNIQUE:
            cursor.execute(_UNIQUE_HISTORY, params)
            return [(window, Decimal(count)) for window, count in cursor.fetchall()]
        cursor.execute(_HISTORY, params)
        return [
            (
                window,
                rating.final_quantity(
                    aggregation, rating.Partial(total=total, count=int(count), maximum=maximum, latest_value=latest)
                ),
            )
            for window, total, count, maximum, latest in cursor.fetchall()
        ]


def customer_invoices(*, organization, customer) -> QuerySet[Invoice]:
    return Invoice.objects.filter(organization=organization, customer=customer).select_related("contract")


def current_draft(*, organization, customer) -> Invoice | None:
    """The customer's draft for the latest period (the one new usage lands on)."""
    return (
        customer_invoices(organization=organization, customer=customer)
        .filter(status=Invoice.Status.DRAFT, kind=Invoice.Kind.REGULAR)
        .order_by("-period_start")
        .first()
    )


# Invoices that count as revenue: the live draft (the current period) and finalized or paid ones.
REVENUE_STATUSES = (Invoice.Status.DRAFT, Invoice.Status.FINALIZED, Invoice.Status.PAID)


def invoice_revenue_by_customer(*, organization, starts_from: datetime, starts_before: datetime) -> dict:
    """(customer external id, period start) → total in cents of the customer's USD invoices whose
    period starts in [starts_from, starts_before): drafts, finalized and paid ones (void and
    uncollectible are not revenue). The total is before credits (credits are money paid earlier)."""
    rows = (
        Invoice.objects.filter(
            organization=organization,
            status__in=REVENUE_STATUSES,
            currency="USD",
            period_start__gte=starts_from,
            period_start__lt=starts_before,
        )
        .values("customer__external_id", "period_start")
        .annotate(total=Sum("total_cents"))
        .order_by()
    )
    return {(row["customer__external_id"], row["period_start"]): row["total"] for row in rows}
