"""The operator dashboard: server-rendered pages for signed-in members (Margins, Customer, Mappings, Usage).

Same rules as the Margins API: the caller's organization from their membership (`resolve_tenant`),
the Pro plan, viewer to read; the buttons that change something (Sync now, approve / reject / map a
customer) are shown to members and above only and call the existing JSON endpoints, which check
the role again. Pages only read, through the selectors of margins, events and billing; charts are
SVG drawn by `margins.charts`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from accounts.api.errors import Forbidden
from accounts.models import Role
from accounts.tenancy import resolve_tenant, user_memberships
from billing import selectors as billing_selectors
from billing import services as billing_services
from billing.credits.selectors import credit_balance
from costcalc.money import cents_to_microdollars
from events import selectors as event_selectors
from events.budgeting import period_bounds as budget_period_bounds
from events.models import Budget

from . import calculations, charts, selectors
from .views import MAX_YEAR, MIN_YEAR

INVOICE_LINK_HOURS = 24
USAGE_DEFAULT_DAYS = 30
USAGE_MAX_DAYS = 366
# The usage page's customer chart and table show the most expensive customers, then one line for
# the rest (?customers=all lists every one): 10k customers made a 4 MB page that took seconds.
USAGE_CUSTOMERS_SHOWN = 25

SORT_KEYS = {
    "customer": lambda row: row.customer_name.lower(),
    "revenue": lambda row: row.revenue,
    "cost": lambda row: row.cost,
    "margin": lambda row: row.margin,
    "percent": lambda row: (row.margin_percent is not None, row.margin_percent or 0),
    "tier": lambda row: calculations.TIERS.index(row.health_tier),
}
TIER_LABELS = {calculations.HEALTHY: "Healthy", calculations.AT_RISK: "At risk", calculations.CRITICAL: "Critical"}


def dashboard_page(view):
    """Sign-in required (redirect to the login page), then tenant, Pro plan and viewer role like the API."""

    @login_required
    @require_GET
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            tenant = resolve_tenant(request)
        except Forbidden as exc:
            return render(request, "margins/forbidden.html", {"message": str(exc.detail)}, status=403)
        if not tenant.organization.is_pro:
            return render(
                request,
                "margins/forbidden.html",
                {
                    "message": "The dashboard is part of the Pro plan. Upgrade your organization to use it.",
                    "upgrade_url": settings.UPGRADE_URL,
                    "organization": tenant.organization,
                },
                status=403,
            )
        request.tenant = tenant
        return view(request, *args, **kwargs)

    return wrapper


def _context(request, page: str, **extra) -> dict:
    tenant = request.tenant
    return {
        "page": page,
        "organization": tenant.organization,
        "role": tenant.role,
        "can_write": tenant.has_role(Role.MEMBER),
        "memberships": user_memberships(request.user),  # the organization switcher, with two or more
        **extra,
    }


def _period(request) -> tuple[str, str | None]:
    """The ?period=YYYY-MM (default: this month, UTC) and an error message for a bad one."""
    current = calculations.period_of(timezone.now())
    value = request.GET.get("period") or ""
    if not value:
        return current, None
    try:
        year, _ = calculations.parse_period(value)
    except ValueError:
        return current, f"“{value}” is not a month (YYYY-MM); showing {current}."
    if not MIN_YEAR <= year <= MAX_YEAR:
        return current, f"The year must be between {MIN_YEAR} and {MAX_YEAR}; showing {current}."
    return value, None


def _sparkline(row: selectors.CustomerMargin) -> str:
    return mark_safe(  # noqa: S308 - built by charts with every text escaped
        charts.sparkline(
            [charts.SparkValue(p.period, p.margin_percent, p.projected) for p in row.outlook.sparkline]
        )
    )


@dashboard_page
def margins_page(request):
    period, error = _period(request)
    sort = request.GET.get("sort") if request.GET.get("sort") in SORT_KEYS else "percent"
    descending = request.GET.get("order", "asc") == "desc"
    table = selectors.margin_table(organization=request.tenant.organization, period=period)
    rows = sorted(table.customers, key=SORT_KEYS[sort], reverse=descending)
    columns = [
        ("customer", "Customer"), ("revenue", "Revenue"), ("cost", "Cost"), ("margin", "Margin"),
        ("percent", "Margin %"), ("tier", "Health"),
    ]
    headers = [
        {
            "key": key,
            "label": label,
            "sorted": key == sort,
            "descending": descending,
            "order": "asc" if key == sort and descending else "desc" if key == sort else "asc",
        }
        for key, label in columns
    ]
    context = _context(
        request,
        "margins",
        period=period,
        previous_period=calculations.shift_period(period, -1),
        next_period=calculations.shift_period(period, 1),
        error=error,
        table=table,
        headers=headers,
        sort=sort,
        order="desc" if descending else "asc",
        rows=[
            {
                "row": row,
                "tier_label": TIER_LABELS[row.health_tier],
                "projected_tier_label": TIER_LABELS[row.outlook.projected_tier],
                "sparkline": _sparkline(row),
                "url": reverse("dashboard-customer", args=[row.tag_value]) + f"?period={period}",
            }
            for row in rows
        ],
        healthy_count=len(table.customers) - table.critical_count - table.at_risk_count,
        revenue_by_source=[
            (source, sum(row.revenue for row in table.customers if row.revenue_source == source))
            for source in selectors.REVENUE_SOURCES
            if any(row.revenue_source == source for row in table.customers) and source != selectors.NO_REVENUE
        ],
        csv_url=reverse("margins") + f"?period={period}&format=csv",
        connected=table.sync_status != "disconnected",
        can_sync=request.tenant.has_role(Role.MEMBER) and table.sync_status != "disconnected",
    )
    return render(request, "margins/margins.html", context)


def _budgets(organization, customer, now: datetime) -> list[dict]:
    """The budgets that apply to this customer (its own, per-customer ones, the organization's) with
    what it spent in the current period."""
    result = []
    for budget in event_selectors.budgets_of_customer(organization=organization, customer=customer):
        start, end = budget_period_bounds(budget.period, now)
        spent = event_selectors.customer_cost(organization=organization, customer=customer, start=start, end=end)
        result.append(
            {
                "budget": budget,
                "spent": spent,
                "percent": min(100, spent * 100 // budget.limit_microdollars) if budget.limit_microdollars else 100,
                "reached": spent >= budget.limit_microdollars,
                "whole_organization": budget.scope == Budget.Scope.ORGANIZATION,
                "start": start,
            }
        )
    return result


@dashboard_page
def customer_page(request, customer: str):
    organization = request.tenant.organization
    period, error = _period(request)
    # Every customer of the table has a page: one a Stripe customer is mapped to, and any usage
    # customer (revenue on its events or its invoices); the tag value is the usage customer's external id.
    if "\x00" in customer:  # PostgreSQL text cannot hold NUL: no customer has one in its id
        raise Http404("No such customer")
    usage_customer = event_selectors.customer_get(organization=organization, customer_id=customer)
    if usage_customer is not None and usage_customer.external_id != customer:
        usage_customer = None  # customer_get also reads our uuids; the page is by external id only
    if usage_customer is None and not selectors.customer_mapped(organization=organization, tag_value=customer):
        raise Http404("No such customer")
    (row,) = selectors.customer_margins(organization=organization, period=period, tag_values={customer})
    models = selectors.model_breakdown(organization=organization, tag_value=customer, period=period)
    months = [*row.months]
    categories = [m.period for m in months] + [row.outlook.sparkline[-1].period]
    chart = charts.columns(
        categories=categories,
        series=[
            charts.Series("Revenue", [m.revenue for m in months] + [row.outlook.projected_revenue], "revenue"),
            charts.Series("Cost", [m.cost for m in months] + [row.outlook.projected_cost], "cost"),
        ],
        projected=[False] * len(months) + [True],
        title=f"Revenue and cost of {row.customer_name} by month, {categories[0]} to {categories[-1]} (projected)",
    )
    draft = invoice_url = None
    credit = None
    budgets = []
    if usage_customer is not None:
        # Stale drafts were recomputed by customer_margins above (margins' revenue refreshes them).
        draft = billing_selectors.current_draft(organization=organization, customer=usage_customer)
        # A link is a credential to the customer's page: minted for members and above, as the API's
        # POST …/invoices/{id}/links is.
        if draft is not None and request.tenant.has_role(Role.MEMBER):
            token = billing_services.invoice_link_token(
                invoice=draft, expires_at=timezone.now() + timedelta(hours=INVOICE_LINK_HOURS)
            )
            invoice_url = reverse("billing:invoice-page", args=[token])
        credit = credit_balance(customer=usage_customer)
        budgets = _budgets(organization, usage_customer, timezone.now())
    context = _context(
        request,
        "margins",
        period=period,
        error=error,
        row=row,
        tier_label=TIER_LABELS[row.health_tier],
        projected_tier_label=TIER_LABELS[row.outlook.projected_tier],
        chart=mark_safe(chart),  # noqa: S308 - every text in it is escaped by charts
        months=[
            {"month": m, "margin": m.revenue - m.cost, "percent": calculations.margin_percent(m.revenue, m.cost)}
            for m in months
        ],
        models=models,
        model_totals={
            "cost": sum(m.cost for m in models),
            "requests": sum(m.request_count for m in models),
            "input_tokens": sum(m.input_tokens for m in models),
            "output_tokens": sum(m.output_tokens for m in models),
        },
        usage_customer=usage_customer,
        draft=draft,
        draft_last_day=None if draft is None else draft.period_end - timedelta(seconds=1),
        draft_total=None if draft is None else cents_to_microdollars(draft.amount_due_cents),
        invoice_url=invoice_url,
        invoice_link_hours=INVOICE_LINK_HOURS,
        credit=credit,
        budgets=budgets,
        back_url=reverse("dashboard-margins") + f"?period={period}",
    )
    return render(request, "margins/customer.html", context)


@dashboard_page
def mappings_page(request):
    organization = request.tenant.organization
    result = selectors.unmatched(organization=organization)
    active = selectors.active_mappings(organization=organization)
    context = _context(
        request,
        "mappings",
        unmatched=result,
        pending=[
            {
                "mapping": mapping,
                "name": result.customer_names.get(mapping.stripe_customer_id, ""),
                "confidence_percent": round(mapping.confidence * 100) if mapping.confidence is not None else None,
            }
            for mapping in result.pending
        ],
        active_mappings=[
            {"stripe_customer_id": stripe_id, "name": result.customer_names.get(stripe_id, ""), "tag_value": tag}
            for stripe_id, tag in sorted(active.items())
        ],
        customer_names=result.customer_names,
        tag_choices=[item["tagValue"] for item in result.tag_values],
    )
    return render(request, "margins/mappings.html", context)


def _usage_range(request) -> tuple[date, date, str | None]:
    """?start=YYYY-MM-DD&end=YYYY-MM-DD (both included, UTC days); default: the last 30 days with today."""
    today = timezone.now().astimezone(UTC).date()
    default = (today - timedelta(days=USAGE_DEFAULT_DAYS - 1), today)
    raw_start, raw_end = request.GET.get("start") or "", request.GET.get("end") or ""
    if not raw_start and not raw_end:
        return *default, None
    try:
        start = date.fromisoformat(raw_start) if raw_start else default[0]
        end = date.fromisoformat(raw_end) if raw_end else today
    except ValueError:
        return *default, "Dates are YYYY-MM-DD; showing the last 30 days."
    if end < start:
        return *default, "The end is before the start; showing the last 30 days."
    if (end - start).days + 1 > USAGE_MAX_DAYS:
        return *default, f"A range is at most {USAGE_MAX_DAYS} days; showing the last 30 days."
    return start, end, None


@dashboard_page
def usage_page(request):
    organization = request.tenant.organization
    start, end, error = _usage_range(request)
    all_customers = request.GET.get("customers") == "all"
    summary = event_selectors.usage_summary(
        organization=organization,
        start=datetime(start.year, start.month, start.day, tzinfo=UTC),
        end=datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1),
        customer_limit=None if all_customers else USAGE_CUSTOMERS_SHOWN,
    )
    day_chart = charts.columns(
        categories=[day.key[5:] for day in summary.days],
        series=[
            charts.Series("Revenue", [day.revenue_microdollars for day in summary.days], "revenue"),
            charts.Series("Cost", [day.cost_microdollars for day in summary.days], "cost"),
        ],
        title=f"Revenue and cost by day, {start} to {end}",
        max_labels=10,
    )
    model_chart = charts.bars(
        items=[(m.key, m.cost_microdollars) for m in summary.models], title="Cost by model", css_class="cost"
    )
    customer_chart = charts.bars(
        items=[(c.name or c.key, c.cost_microdollars) for c in summary.customers],
        title="Cost by customer",
        css_class="cost",
    )
    totals = {
        "cost": sum(day.cost_microdollars for day in summary.days),
        "revenue": sum(day.revenue_microdollars for day in summary.days),
        "requests": sum(day.requests for day in summary.days),
    }
    context = _context(
        request,
        "usage",
        start=start,
        end=end,
        error=error,
        summary=summary,
        totals=totals,
        margin_percent=calculations.margin_percent(totals["revenue"], totals["cost"]),
        day_chart=mark_safe(day_chart),  # noqa: S308 - every text in it is escaped by charts
        model_chart=mark_safe(model_chart),  # noqa: S308
        customer_chart=mark_safe(customer_chart),  # noqa: S308
        customers=[{"totals": c, "url": reverse("dashboard-customer", args=[c.key])} for c in summary.customers],
        more_customers=_more_customers(summary, totals),
        all_customers=all_customers,
        customers_shown=USAGE_CUSTOMERS_SHOWN,
        top_customers_url=f"?{urlencode({'start': start.isoformat(), 'end': end.isoformat()})}#by-customer",
        all_customers_url=f"?{urlencode({'start': start.isoformat(), 'end': end.isoformat(), 'customers': 'all'})}"
        "#by-customer",
    )
    return render(request, "margins/usage.html", context)


def _more_customers(summary, totals: dict) -> dict | None:
    """The customers the page leaves out, as one line: how many and their sums (the range's totals
    less the customers shown; the days and the customers add up the same usage)."""
    if not summary.more_customers:
        return None
    return {
        "count": summary.more_customers,
        "revenue": totals["revenue"] - sum(c.revenue_microdollars for c in summary.customers),
        "cost": totals["cost"] - sum(c.cost_microdollars for c in summary.customers),
        "requests": totals["requests"] - sum(c.requests for c in summary.customers),
    }
