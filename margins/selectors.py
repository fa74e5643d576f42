"""Read-side of margins: revenue (Stripe invoices mapped to customers + revenue carried on usage
events) against cost (the usage ledger, read through its daily rollups: `events.selectors`), per
customer and calendar month.

A "customer" here is a tag value: the usage customer's external id (`events.Customer.external_id`).
Revenue of a Stripe customer counts for the tag value of its *active* mapping, so re-pointing a
mapping re-attributes every invoice of that Stripe customer at once. Only paid USD invoices count.
"""

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, Subquery, Sum

from accounts.models import Organization
from billing import invoicing as billing_invoicing
from billing import selectors as billing_selectors
from costcalc.money import cents_to_microdollars
from events import selectors as event_selectors

from . import calculations
from .calculations import MonthAmounts, Outlook, Thresholds
from .models import CustomerMapping, MarginSettings, StripeConnection, StripeCustomer, StripeInvoice

SPARKLINE_MONTHS = 3

# Where a customer's revenue of a month comes from (`revenueSource`), first match wins:
STRIPE = "stripe"  # an active Stripe mapping: its paid USD Stripe invoices (+ revenue carried on events)
INVOICES = "invoices"  # no Stripe mapping, TokenLedger invoices in the month: their totals (draft/finalized/paid)
EVENTS = "events"  # otherwise: revenue carried on usage events (MarginDash revenue_amount_in_cents, Tanso)
NO_REVENUE = "none"  # none of those has revenue
REVENUE_SOURCES = (STRIPE, INVOICES, EVENTS, NO_REVENUE)


def thresholds_for(*, organization: Organization) -> Thresholds:
    row = MarginSettings.objects.filter(organization=organization).first()
    if row is None:
        return Thresholds(
            MarginSettings.DEFAULT_HEALTHY_MIN, MarginSettings.DEFAULT_AT_RISK_MIN, MarginSettings.DEFAULT_TARGET
        )
    return Thresholds(row.healthy_min_percent, row.at_risk_min_percent, row.target_margin_percent)


def active_mappings(*, organization: Organization) -> dict[str, str]:
    """Stripe customer id → tag value, for active `customer` mappings."""
    return dict(_active_mapping_rows(organization).values_list("stripe_customer_id", "tag_value"))


def _active_mapping_rows(organization: Organization):
    return CustomerMapping.objects.filter(
        organization=organization, tag_key=CustomerMapping.DEFAULT_TAG_KEY, status=CustomerMapping.Status.ACTIVE
    )


def stripe_revenue_by_customer(*, organization: Organization, periods: list[str]) -> dict[tuple[str, str], int]:
    """(Stripe customer id, period) → paid USD revenue in microdollars.

    Invoices TokenLedger pushed itself (`tokenledger_invoice_id`, from their metadata) count once per
    invoice of ours: should several Stripe invoices carry the same id (one made by hand in Stripe, or
    one voided there and paid anyway), only the first paid counts.
    """
    paid = StripeInvoice.objects.filter(
        organization=organization, status="paid", amount_paid_microdollars__isnull=False
    )
    first_paid_of_ours = (
        paid.exclude(tokenledger_invoice_id="")
        .order_by("tokenledger_invoice_id", "paid_at", "stripe_id")
        .distinct("tokenledger_invoice_id")
        .values("pk")
    )
    rows = (
        paid.filter(Q(tokenledger_invoice_id="") | Q(pk__in=first_paid_of_ours), period__in=periods)
        .values_list("stripe_customer_id", "period")
        .annotate(total=Sum("amount_paid_microdollars"))
        .order_by()  # tuples, and no join for the model's ordering: a row per customer and month
    )
    return {(stripe_id, period): total for stripe_id, period, total in rows}


@dataclass(frozen=True)
class LedgerAmounts:
    cost: int = 0
    revenue: int = 0
    events: int = 0


def _days_of(periods: list[str]):
    start, _ = calculations.period_bounds(min(periods))
    _, end = calculations.period_bounds(max(periods))
    return start.date(), end.date()


@dataclass(frozen=True)
class CustomersLedger:
    amounts: dict[tuple[str, str], LedgerAmounts]  # (external id, period) → the customer's usage
    names: dict[str, str]  # external id → the usage customer's name, for those that exist


def ledger_by_customer(*, organization: Organization, periods: list[str], tag_values) -> CustomersLedger:
    """Cost, revenue carried on events and event count of the named customers per period, and their
    names, from the usage rollups (events.selectors.usage_by_customer_month, one statement): the cost
    of a read follows the customers shown, not the size of the ledger."""
    start, end = _days_of(periods)
    read = event_selectors.usage_by_customer_month(
        organization_id=organization.pk, start=start, end=end, external_ids=tag_values
    )
    period_of = {month: f"{month:%Y-%m}" for month in {month for (_, month) in read.amounts}}  # each formatted once
    amounts = {
        (tag_value, period_of[month]): LedgerAmounts(usage.cost, usage.revenue, usage.events)
        for (tag_value, month), usage in read.amounts.items()
    }
    return CustomersLedger(amounts, read.names)


def invoice_revenue_by_customer(*, organization: Organization, periods: list[str]) -> dict[tuple[str, str], int]:
    """(external id, period) → microdollars of the customer's TokenLedger invoices whose billing period
    starts in that month (billing's own invoices: the live draft for the current period, then the
    finalized one)."""
    start, _ = calculations.period_bounds(min(periods))
    _, end = calculations.period_bounds(max(periods))
    # Drafts left stale by ingest without a worker are recomputed first (one indexed read when none is).
    billing_invoicing.drafts_refresh(organization_id=organization.pk)
    rows = billing_selectors.invoice_revenue_by_customer(
        organization=organization, starts_from=start, starts_before=end
    )
    revenue: dict[tuple[str, str], int] = defaultdict(int)
    for (external_id, period_start), cents in rows.items():
        revenue[(external_id, calculations.period_of(period_start))] += cents_to_microdollars(cents)
    return dict(revenue)


def revenue_of_month(
    *, mapped_to_stripe: bool, stripe: int, events: int, invoices: int | None
) -> tuple[int, str]:
    """A customer's revenue of one month and its source (see REVENUE_SOURCES). A customer billed
    through Stripe counts what Stripe collected; one that is not, and has TokenLedger invoices in the
    month, counts those instead of the revenue on its events (the invoices bill the same usage, so
    adding both would count it twice)."""
    if mapped_to_stripe:
        return stripe + events, STRIPE
    if invoices is not None:
        return invoices, INVOICES
    return events, EVENTS if events else NO_REVENUE


@dataclass(frozen=True)
class CustomerMargin:
    tag_value: str
    stripe_customer_id: str | None
    customer_name: str
    revenue: int
    revenue_source: str
    cost: int
    margin: int
    margin_percent: Decimal | None
    health_tier: str
    outlook: Outlook
    budget_suggestion: int | None
    months: list[MonthAmounts]


@dataclass(frozen=True)
class MarginTable:
    period: str
    customers: list[CustomerMargin]
    total_revenue: int
    total_cost: int
    blended_margin_percent: Decimal | None
    critical_count: int
    at_risk_count: int
    last_sync_at: object
    sync_status: str
    skipped_currencies: dict[str, int]


def _active_mappings_named(organization: Organization) -> list[tuple[str, str, str | None]]:
    """(Stripe customer id, tag value, the Stripe customer's name or None) of the active mappings:
    one query, the names read beside them."""
    name = StripeCustomer.objects.filter(
        organization=OuterRef("organization"), stripe_id=OuterRef("stripe_customer_id")
    ).values("name")[:1]
    return list(
        _active_mapping_rows(organization).order_by().values_list("stripe_customer_id", "tag_value", Subquery(name))
    )


def customer_margins(
    *, organization: Organization, period: str, tag_values: set[str] | None = None
) -> list[CustomerMargin]:
    """Margins of the period for each customer that has an active Stripe mapping, revenue on its events
    or a TokenLedger invoice in the period (or exactly ``tag_values`` when given), with the trailing months
    for the sparkline."""
    periods = calculations.trailing_periods(period, SPARKLINE_MONTHS)
    thresholds = thresholds_for(organization=organization)
    mapped = _active_mappings_named(organization)
    mappings = {stripe_id: tag_value for stripe_id, tag_value, _ in mapped}
    stripe_names = {stripe_id: name for stripe_id, _, name in mapped if name is not None}
    stripe_revenue = stripe_revenue_by_customer(organization=organization, periods=periods)
    invoiced = invoice_revenue_by_customer(organization=organization, periods=periods)
    stripe_ids_by_tag: dict[str, list[str]] = defaultdict(list)
    for stripe_id, tag_value in mappings.items():
        stripe_ids_by_tag[tag_value].append(stripe_id)
    if tag_values is None:
        start, end = _days_of([period])
        tag_values = (
            set(stripe_ids_by_tag)
            | event_selectors.customers_with_revenue(organization_id=organization.pk, start=start, end=end)
            | {tag for (tag, month), amount in invoiced.items() if month == period and amount > 0}
        )
    read = ledger_by_customer(organization=organization, periods=periods, tag_values=tag_values)
    ledger, usage_names = read.amounts, read.names

    stripe_by_tag: dict[tuple[str, str], int] = defaultdict(int)
    for (stripe_id, month), amount in stripe_revenue.items():
        if stripe_id in mappings:
            stripe_by_tag[(mappings[stripe_id], month)] += amount

    rows = []
    no_usage = LedgerAmounts()
    for tag_value in sorted(tag_values):
        months, sources = [], []
        for month in periods:
            usage = ledger.get((tag_value, month), no_usage)
            amount, source = revenue_of_month(
                mapped_to_stripe=tag_value in stripe_ids_by_tag,
                stripe=stripe_by_tag.get((tag_value, month), 0),
                events=usage.revenue,
                invoices=invoiced.get((tag_value, month)),
            )
            months.append(MonthAmounts(month, amount, usage.cost, source))
            sources.append(source)
        current = months[-1]
        # The Stripe customer shown for a tag: the one with the most revenue this period, then by id.
        candidates = sorted(
            stripe_ids_by_tag.get(tag_value, []), key=lambda s: (-stripe_revenue.get((s, period), 0), s)
        )
        stripe_id = candidates[0] if candidates else None
        name = (stripe_names.get(stripe_id) if stripe_id else "") or usage_names.get(tag_value) or tag_value
        percent = calculations.margin_percent(current.revenue, current.cost)
        rows.append(
            CustomerMargin(
                tag_value=tag_value,
                stripe_customer_id=stripe_id,
                customer_name=name,
                revenue=current.revenue,
                revenue_source=sources[-1],
                cost=current.cost,
                margin=current.revenue - current.cost,
                margin_percent=percent,
                health_tier=calculations.tier_of(percent, cost=current.cost, thresholds=thresholds),
                outlook=calculations.outlook(months=months, thresholds=thresholds),
                budget_suggestion=calculations.budget_suggestion(
                    revenue=current.revenue, cost=current.cost, target_margin_percent=thresholds.target_margin_percent
                ),
                months=months,
            )
        )
    return rows


def margin_table(*, organization: Organization, period: str) -> MarginTable:
    customers = customer_margins(organization=organization, period=period)
    total_revenue = sum(row.revenue for row in customers)
    total_cost = sum(row.cost for row in customers)
    # values(): reading the summary must not need the key (and must work if it can no longer be decrypted).
    connection = StripeConnection.objects.filter(organization=organization).values("last_synced_at", "status").first()
    skipped = dict(
        StripeInvoice.objects.filter(organization=organization, status="paid", period=period)
        .exclude(currency="usd")
        .values_list("currency")
        .annotate(n=Count("id"))
        .order_by("currency")
    )
    return MarginTable(
        period=period,
        customers=customers,
        total_revenue=total_revenue,
        total_cost=total_cost,
        blended_margin_percent=calculations.margin_percent(total_revenue, total_cost),
        critical_count=sum(row.health_tier == calculations.CRITICAL for row in customers),
        at_risk_count=sum(row.health_tier == calculations.AT_RISK for row in customers),
        last_sync_at=connection["last_synced_at"] if connection else None,
        sync_status=connection["status"] if connection else "disconnected",
        skipped_currencies=skipped,
    )


def customer_mapped(*, organization: Organization, tag_value: str) -> bool:
    """A customer has a margin page when a Stripe customer is actively mapped to it (seed 002: 404
    "Customer mapping not found" otherwise, even for a customer with usage)."""
    return _active_mapping_rows(organization).filter(tag_value=tag_value).exists()


@dataclass(frozen=True)
class ModelCost:
    model: str
    cost: int
    request_count: int
    input_tokens: int = 0
    output_tokens: int = 0


def model_breakdown(*, organization: Organization, tag_value: str, period: str) -> list[ModelCost]:
    """Cost, number of model calls and tokens (input, output) per model for one customer in one month,
    most expensive first (from the usage rollups). Unpriced calls count as requests with zero cost."""
    start, end = _days_of([period])
    rows = event_selectors.model_usage(organization_id=organization.pk, start=start, end=end, external_id=tag_value)
    return [ModelCost(row.model, row.cost, row.requests, row.input_tokens, row.output_tokens) for row in rows]


@dataclass(frozen=True)
class Unmatched:
    stripe_customers: list[dict]
    tag_values: list[dict]
    pending: list[CustomerMapping]
    customer_names: dict[str, str]


def unmatched(*, organization: Organization) -> Unmatched:
    """Stripe customers without an active mapping (with their all-time USD revenue), usage customers that no
    Stripe customer is actively mapped to (with their all-time cost and event count), pending suggestions."""
    mappings = active_mappings(organization=organization)
    revenue = dict(
        StripeInvoice.objects.filter(organization=organization, status="paid", amount_paid_microdollars__isnull=False)
        .values_list("stripe_customer_id")
        .annotate(total=Sum("amount_paid_microdollars"))
        .order_by()
    )
    stripe_customers = [
        {"stripeCustomerId": c.stripe_id, "customerName": c.name, "customerEmail": c.email,
         "totalRevenueMicrodollars": revenue.get(c.stripe_id, 0)}
        for c in StripeCustomer.objects.filter(organization=organization).exclude(stripe_id__any=list(mappings))
        .order_by("stripe_id")
    ]
    usage = event_selectors.usage_totals_by_customer(
        organization_id=organization.pk, exclude_external_ids=set(mappings.values())
    )
    tag_values = [
        {"tagValue": external_id, "totalCostMicrodollars": cost, "requestCount": events}
        for external_id, cost, events in usage
    ]
    pending = list(
        CustomerMapping.objects.filter(organization=organization, status=CustomerMapping.Status.PENDING).order_by(
            "-confidence", "stripe_customer_id"
        )
    )
    names = dict(
        StripeCustomer.objects.filter(organization=organization).exclude(name="").values_list("stripe_id", "name")
    )
    return Unmatched(stripe_customers, tag_values, pending, names)
