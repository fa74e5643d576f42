"""Reads: metered usage from rollups (never from raw events), usage history, invoices."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import orjson
from django.db import connection
from django.db.models import QuerySet, Sum

from . import rating
from .models import BillableMetric, Invoice

_USAGE_CELLS = """
SELECT (group_values - %(drop)s::text[])::text AS grp,
       width_bucket(hour, %(bounds)s::timestamptz[]) AS segment,
       sum(total), sum(event_count), max(maximum),
       (array_agg(latest_value ORDER BY latest_at DESC, latest_event_id DESC))[1],
       max(latest_at), sum(tokens)
FROM billing_usagerollup
WHERE customer_id = %(customer)s AND metric_id = %(metric)s AND hour >= %(start)s AND hour < %(end)s
GROUP BY 1, 2
"""

_UNIQUE_CELLS = """
SELECT (group_values - %(drop)s::text[])::text AS grp,
       width_bucket(hour, %(bounds)s::timestamptz[]) AS segment,
       count(DISTINCT value)
FROM billing_uniquevaluerollup
WHERE customer_id = %(customer)s AND metric_id = %(metric)s AND hour >= %(start)s AND hour < %(end)s
GROUP BY 1, 2
"""


def _group(text: str, keys: Sequence[str]) -> rating.Group:
    values = orjson.loads(text)
    return tuple((key, values.get(key)) for key in keys)


def usage_cells(
    *, customer_id: int, product: rating.ProductDefinition, plan: Sequence[rating.Segment]
) -> list[rating.UsageCell]:
    """The product's metric value per presentation group and plan segment, from hourly rollups.

    The rows read grow with hours x groups, never with the number of raw events.
    """
    metric = product.metric
    if metric is None or not plan:
        return []
    keys = product.presentation_group_key
    params = {
        "drop": [key for key in metric.group_keys if key not in keys],
        "bounds": [segment.start for segment in plan] + [plan[-1].end],
        "customer": customer_id,
        "metric": metric.id,
        "start": plan[0].start,
        "end": plan[-1].end,
    }
    cells = []
    with connection.cursor() as cursor:
        if metric.aggregation_type is rating.AggregationType.UNIQUE:
            cursor.execute(_UNIQUE_CELLS, params)
            for group, segment, distinct in cursor.fetchall():
                quantity = rating.final_quantity(metric.aggregation_type, rating.Partial(), distinct)
                cells.append(rating.UsageCell(group=_group(group, keys), segment_index=segment - 1, quantity=quantity))
        else:
            cursor.execute(_USAGE_CELLS, params)
            for group, segment, total, count, maximum, latest, latest_at, tokens in cursor.fetchall():
                partial = rating.Partial(
                    total=total, count=int(count), maximum=maximum, latest_value=latest, latest_at=latest_at
                )
                quantity = rating.final_quantity(metric.aggregation_type, partial)
                cells.append(
                    rating.UsageCell(
                        group=_group(group, keys), segment_index=segment - 1, quantity=quantity, tokens=int(tokens)
                    )
                )
    return cells


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
