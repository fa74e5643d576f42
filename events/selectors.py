"""events' read API: customers, the usage ledger, usage sums (from the rollups: events.usage) and the
blocklist, always scoped to an organization."""

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from costcalc.models import ModelPrice, OrganizationPriceOverride

from . import usage
from .budgeting import EMPTY_BLOCKED
from .dialects import KEY_PREFIXES
from .hooks import RecordedCall, RecordedEvent
from .models import BlocklistState, Budget, Customer, UsageEvent, UsageEventKey, VendorResponse
from .usage import (  # noqa: F401  (the rollup reads are part of this read API)
    DayUsage,
    ModelUsage,
    UsageAmounts,
    UsageSummary,
    UsageTotals,
    customers_with_revenue,
    model_usage,
    revenue_in_window,
    usage_by_customer_month,
    usage_by_day,
    usage_in_window,
    usage_totals_by_customer,
)


def customer_find(*, organization, identifier: str) -> Customer | None:
    """The organization's customer named by any identifier: external id, ingest alias, our uuid or
    Stripe customer id (in that order of precedence); None when nothing matches."""
    query = Q(external_id=identifier) | Q(ingest_aliases__contains=[identifier]) | Q(stripe_customer_id=identifier)
    with contextlib.suppress(ValueError):
        query |= Q(uuid=uuid.UUID(identifier))
    matches = list(Customer.objects.filter(query, organization=organization)[:5])
    for test in (
        lambda c: c.external_id == identifier,
        lambda c: identifier in c.ingest_aliases,
        lambda c: str(c.uuid) == identifier.lower(),
        lambda c: c.stripe_customer_id == identifier,
    ):
        for customer in matches:
            if test(customer):
                return customer
    return None


def customer_get(*, organization, customer_id: str) -> Customer | None:
    """A customer of ``organization`` by our uuid or by the organization's external id (None if absent)."""
    if "\x00" in str(customer_id):  # PostgreSQL text cannot hold NUL: no customer has such an id
        return None
    customers = Customer.objects.filter(organization=organization)
    try:
        return customers.get(uuid=uuid.UUID(str(customer_id)))
    except (ValueError, Customer.DoesNotExist):
        return customers.filter(external_id=customer_id).first()


_METERED_EVENTS = """
SELECT e.id, e.organization_id, e.customer_id, c.external_id, e.event_type, e.occurred_at, e.received_at, e.properties,
       e.cost_microdollars, e.revenue_microdollars, e.usage_units, e.feature_key, e.meta,
       (SELECT json_agg(json_build_array(coalesce(p.slug, o.slug, v.model), v.input_tokens, v.output_tokens,
                                         v.cached_input_tokens, v.cache_write_tokens, v.reasoning_tokens,
                                         v.cost_microdollars) ORDER BY v.id)
        FROM {responses} v
        LEFT JOIN {prices} p ON p.id = v.price_id
        LEFT JOIN {overrides} o ON o.id = v.price_override_id
        WHERE v.event_id = e.id)
FROM {events} e JOIN {customers} c ON c.id = e.customer_id
WHERE {where}
ORDER BY e.id
LIMIT %(limit)s
"""


def metered_event_rows(
    *, organization, event_types=None, after_id: int = 0, through_id: int | None = None, limit: int = 5000
) -> list[RecordedEvent]:
    """Up to ``limit`` events of the ledger with ``after_id < id <= through_id``, in id order, as the
    ingest hooks received them (`RecordedEvent`, with the model calls' catalog slugs and costs): what
    a rebuild of billing's rollups reads. Keyset-paged by id, one query per page."""
    where = "e.organization_id = %(organization)s AND e.id > %(after)s AND e.id <= %(through)s"
    if event_types is not None:
        where += " AND e.event_type = ANY(%(types)s::text[])"
    params = {
        "organization": getattr(organization, "pk", organization),
        "after": after_id,
        "through": through_id if through_id is not None else 2**63 - 1,
        "limit": limit,
        "types": sorted(event_types or ()),
    }
    return _metered(where, params)


def late_event_rows(
    *, customer_id: int, occurred_from, occurred_before, received_from, after_event_id: int | None = None
) -> list[RecordedEvent]:
    """The customer's events that occurred in [occurred_from, occurred_before) and arrived late, as
    `metered_event_rows` gives them: with an id above ``after_event_id`` (the organization's newest
    event id when the period closed, taken under the exclusive ledger lock, so exactly the events
    stored after it), or else (periods closed before watermarks were kept) received at or after
    ``received_from``."""
    if after_event_id is not None:
        # The (customer, id) index from the watermark, in the window's partitions only: it reads the
        # late events themselves, not the customer's history nor its events of later months.
        where = (
            "e.customer_id = %(customer)s AND e.id > %(after)s "
            "AND e.occurred_at >= %(start)s AND e.occurred_at < %(end)s"
        )
    else:
        # The organization (from the customer row) makes it an index range on (organization,
        # customer, occurred_at) over the window, instead of every event of the customer.
        customers = Customer._meta.db_table
        where = (
            f"e.organization_id = (SELECT organization_id FROM {customers} WHERE id = %(customer)s) "  # noqa: S608
            "AND e.customer_id = %(customer)s AND e.occurred_at >= %(start)s AND e.occurred_at < %(end)s "
            "AND e.received_at >= %(received)s"
        )
    params = {
        "customer": customer_id,
        "start": occurred_from,
        "end": occurred_before,
        "received": received_from,
        "after": after_event_id,
        "limit": None,
    }
    return _metered(where, params)


def _metered(where: str, params: dict) -> list[RecordedEvent]:
    sql = _METERED_EVENTS.format(
        responses=VendorResponse._meta.db_table,
        prices=ModelPrice._meta.db_table,
        overrides=OrganizationPriceOverride._meta.db_table,
        events=UsageEvent._meta.db_table,
        customers=Customer._meta.db_table,
        where=where,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        RecordedEvent(
            id=event_id,
            organization_id=organization_id,
            customer_id=customer_id,
            event_type=event_type,
            occurred_at=occurred_at,
            properties=_json(properties) or {},
            cost_microdollars=cost,
            revenue_microdollars=revenue,
            usage_units=usage_units,
            calls=tuple(RecordedCall(*call) for call in (_json(calls) or ())),
            customer_external_id=external_id,
            feature_key=feature_key,
            meta=_json(meta) or None,
            received_at=received_at,
        )
        for (
            event_id,
            organization_id,
            customer_id,
            external_id,
            event_type,
            occurred_at,
            received_at,
            properties,
            cost,
            revenue,
            usage_units,
            feature_key,
            meta,
            calls,
        ) in rows
    ]


def latest_event_id(*, organization) -> int:
    """The newest event id of the organization's ledger (0 when it has none)."""
    newest = UsageEvent.objects.filter(organization=organization).order_by("-id").values_list("id", flat=True).first()
    return newest or 0


def event_count(*, organization, event_types=None, through_id: int) -> int:
    """How many of the organization's events (of those types) have an id up to ``through_id``."""
    events = UsageEvent.objects.filter(organization=organization, id__lte=through_id)
    if event_types is not None:
        events = events.filter(event_type__in=sorted(event_types))
    return events.count()


def _json(value):
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def usage_event_list(
    *,
    organization,
    customer: Customer | None = None,
    event_type: str | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
    idempotency_key: str | None = None,
) -> QuerySet[UsageEvent]:
    """The ledger, newest first, with customers and vendor responses loaded in two more queries."""
    events = UsageEvent.objects.filter(organization=organization)
    if customer is not None:
        events = events.filter(customer=customer)
    if event_type:
        events = events.filter(event_type=event_type)
    if occurred_after is not None:
        events = events.filter(occurred_at__gte=occurred_after)
    if occurred_before is not None:
        events = events.filter(occurred_at__lt=occurred_before)
    if idempotency_key:
        # Through the keys table (the ledger has no index on the key): the event's id and time, so
        # the read touches only the partition that holds it.
        stored = UsageEventKey.objects.filter(
            organization_id=getattr(organization, "pk", organization),
            idempotency_key__in=[prefix + idempotency_key for prefix in KEY_PREFIXES],
        ).values_list("event_id", "occurred_at")
        match = Q()
        for event_id, occurred_at in stored:
            match |= Q(pk=event_id, occurred_at=occurred_at)
        events = events.filter(match) if match else events.none()
    return events.select_related("customer").prefetch_related(
        Prefetch("vendor_responses", queryset=VendorResponse.objects.order_by("id"))
    )


@dataclass(frozen=True, slots=True)
class Blocklist:
    version: int
    blocked: dict


def blocklist_get(*, organization) -> Blocklist:
    state = BlocklistState.objects.filter(organization=organization).values_list("version", "blocked").first()
    if state is None:
        return Blocklist(0, dict(EMPTY_BLOCKED))
    version, blocked = state
    return Blocklist(version, {**EMPTY_BLOCKED, **(blocked or {})})


def usage_summary(
    *, organization, start: datetime, end: datetime, customer_limit: int | None = None
) -> UsageSummary:
    """Cost and revenue of the organization's usage in [start, end) by day, by model and by customer
    (the ``customer_limit`` most expensive when given), from the daily rollups
    (`events.usage.usage_summary`; the edges of a window that starts or ends inside a day from the
    ledger)."""
    return usage.usage_summary(organization_id=organization.pk, start=start, end=end, customer_limit=customer_limit)


def customer_cost(*, organization, customer: Customer, start: datetime, end: datetime) -> int:
    """The cost of a customer's usage in [start, end), in microdollars (budgets' spend to date), from
    the daily rollups (`events.usage.usage_in_window`)."""
    amounts = usage.usage_in_window(organization_id=organization.pk, customer_ids=[customer.pk], start=start, end=end)
    return amounts.get(customer.pk, usage.UsageAmounts()).cost


def budgets_of_customer(*, organization, customer: Customer) -> list[Budget]:
    """The enabled budgets that count this customer's cost: the organization's, the ones for each
    customer, and the customer's own (event-type budgets are not per customer)."""
    return list(
        Budget.objects.filter(organization=organization, enabled=True)
        .filter(
            Q(scope=Budget.Scope.ORGANIZATION)
            | Q(scope=Budget.Scope.CUSTOMER, scope_value__in=["", customer.external_id])
        )
        .order_by("scope", "name", "pk")
    )
