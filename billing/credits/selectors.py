"""Reads of the credit ledger, top-ups and limits. Balances are sums over entries, computed here."""

from datetime import datetime

from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from rest_framework.exceptions import NotFound

from billing.credits import arithmetic
from billing.credits.models import (
    AutoTopUpConfig,
    CreditEntry,
    SpendingLimit,
    StripePaymentAccount,
    TopUp,
)
from billing.invoicing import contract_usage_charges
from costcalc.money import MICRODOLLARS_PER_CENT
from events import selectors as event_selectors
from events.models import Customer


def customer_get(*, organization, customer_id: str) -> Customer:
    """The organization's customer named by our uuid or by its external id; another tenant's is a 404."""
    customer = event_selectors.customer_get(organization=organization, customer_id=customer_id)
    if customer is None:
        raise NotFound(f"No customer {customer_id!r} in this organization.")
    return customer


def credit_balance(*, customer) -> int:
    """The ledger balance in microdollars: the exact sum of every entry (expired lots included
    until their expiry entry is written, which the hourly expiry job does)."""
    return CreditEntry.objects.filter(customer=customer).aggregate(
        total=Coalesce(Sum("amount_microdollars"), 0)
    )["total"]


def credit_lots(*, customer) -> list[arithmetic.CreditLot]:
    """Every addition (grant, top-up, positive adjustment) with what is left of it."""
    rows = (
        CreditEntry.objects.filter(customer=customer, amount_microdollars__gt=0)
        .annotate(drawn=Coalesce(Sum("drawn_by__amount_microdollars"), 0))
        .values_list("id", "amount_microdollars", "drawn", "created_at", "expires_at")
    )
    return [
        arithmetic.CreditLot(id=lot_id, remaining=amount - drawn, granted_at=created_at, expires_at=expires_at)
        for lot_id, amount, drawn, created_at, expires_at in rows
    ]


def available_credit(*, customer, at: datetime | None = None) -> int:
    """Microdollars that can still be spent now: the balance without remainders that have expired."""
    return arithmetic.available_balance(credit_lots(customer=customer), at=at or timezone.now())


def pending_invoice_credit(*, customer) -> int:
    """Microdollars that open draft invoices have applied but not yet drawn from the ledger."""
    from billing.models import Invoice

    cents = Invoice.objects.filter(customer=customer, status=Invoice.Status.DRAFT).aggregate(
        total=Coalesce(Sum("credits_applied_cents"), 0)
    )["total"]
    return cents * MICRODOLLARS_PER_CENT


def spendable_credit(*, customer, at: datetime | None = None) -> int:
    """The balance customers see and auto top-up watches: usable credit minus what the current
    draft invoices already apply, so it goes down as usage is rated, not only at finalization."""
    return max(0, available_credit(customer=customer, at=at) - pending_invoice_credit(customer=customer))


def credit_entries(*, customer):
    return CreditEntry.objects.filter(customer=customer).select_related("created_by").order_by("-created_at", "-id")


def has_completed_topup(*, customer) -> bool:
    return TopUp.objects.filter(customer=customer, status=TopUp.Status.COMPLETED).exists()


def auto_topup_config(*, customer) -> AutoTopUpConfig | None:
    return AutoTopUpConfig.objects.filter(customer=customer).first()


def spending_limit(*, customer) -> SpendingLimit | None:
    return SpendingLimit.objects.filter(customer=customer).first()


def stripe_account(*, organization) -> StripePaymentAccount | None:
    return StripePaymentAccount.objects.filter(organization=organization).first()


def customer_spend(*, organization_id, customer_ids, start: datetime, end: datetime) -> dict[int, int]:
    """What each customer was charged for usage in [start, end), in microdollars: the revenue recorded
    on its usage events (MarginDash `revenue_amount_in_cents`, Tanso revenue; exact to the instant:
    whole days from the usage rollups, the window's partial edge days from the ledger,
    `events.selectors.revenue_in_window`) plus what its contracts' rates charge for the usage billed
    in the window (`billing.invoicing.contract_usage_charges`, whole hours up to the end of the
    current one)."""
    customer_ids = list(customer_ids)
    spend = event_selectors.revenue_in_window(
        organization_id=organization_id, customer_ids=customer_ids, start=start, end=end
    )
    for customer_id, cents in contract_usage_charges(customer_ids=customer_ids, start=start, end=end).items():
        spend[customer_id] = spend.get(customer_id, 0) + cents * MICRODOLLARS_PER_CENT
    return spend


def spend_history(*, customer, windows: list[tuple[datetime, datetime]]) -> list[int]:
    """What the customer was charged in each [start, end) window, in microdollars, counted as spending
    limits count it (`customer_spend`): one window at a time, since graduated tiers make a window's
    charge depend on what came before it in the billing period."""
    return [
        customer_spend(organization_id=customer.organization_id, customer_ids=[customer.pk], start=start, end=end).get(
            customer.pk, 0
        )
        for start, end in windows
    ]


def customers_over_spending_limit(*, organization, now: datetime | None = None) -> list[tuple[SpendingLimit, int]]:
    """Enabled limits whose customer has reached them in the current window, with what it spent."""
    now = now or timezone.now()
    over = []
    limits = SpendingLimit.objects.filter(organization=organization, enabled=True).select_related("customer")
    by_window: dict[tuple[datetime, datetime], list[SpendingLimit]] = {}
    for limit in limits:
        window = arithmetic.spending_window(now=now, duration=limit.duration, strategy=limit.strategy)
        by_window.setdefault(window, []).append(limit)
    for (start, end), group in by_window.items():
        spent = customer_spend(
            organization_id=organization.pk, customer_ids=[limit.customer_id for limit in group], start=start, end=end
        )
        for limit in group:
            amount = spent.get(limit.customer_id, 0)
            if arithmetic.over_limit(spent=amount, limit=limit.amount_microdollars):
                over.append((limit, amount))
    return over


def spending_in_window(*, limit: SpendingLimit, now: datetime | None = None) -> int:
    start, end = arithmetic.spending_window(now=now or timezone.now(), duration=limit.duration, strategy=limit.strategy)
    spent = customer_spend(
        organization_id=limit.organization_id, customer_ids=[limit.customer_id], start=start, end=end
    )
    return spent.get(limit.customer_id, 0)
