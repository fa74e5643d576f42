"""Reconciliation, pure: per customer and period, metered vs invoiced vs collected, differences flagged.

Input is one `InvoiceFacts` per invoice of ours (loaded by `selectors.reconciliation_facts`); output is
one `ReconciliationRow` per (customer, currency). All amounts are our integer cents (hundredths of
the currency's unit); Stripe's minor units are converted before they get here.

- metered: what our rating says (invoice totals, drafts included); `due` is metered minus credits,
  what should be invoiced.
- invoiced: the totals Stripe reports for the invoices we sent (voided ones count 0).
- collected: what Stripe reports paid.

Flags (one per invoice and problem):
- `unsent`: a closed (not void) invoice of a customer billed through Stripe that is not finalized in Stripe
  (not pushed yet, or stuck before finalization) and not a $0 invoice that was skipped;
- `failed`: the push failed permanently (retry it), or Stripe's last payment attempt failed;
- `unpaid_past_due`: open in Stripe after its due date;
- `edited_in_stripe`: Stripe's total differs from the sum of the items we sent;
- `paid_but_not_metered`: Stripe collected more than we metered as due (and more than we sent, which
  can exceed it by the rounding of zero-decimal currencies).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class InvoiceFacts:
    invoice_id: str
    number: str
    customer_id: str  # external id
    customer_name: str
    currency: str
    status: str  # ours: draft, finalized, paid, void, uncollectible
    billed_through_stripe: bool
    metered_cents: int
    credits_cents: int
    due_cents: int
    push_state: str | None = None  # None: no Stripe twin
    push_error: str = ""
    stripe_invoice_id: str = ""
    stripe_status: str = ""
    sent_total_cents: int | None = None
    stripe_total_cents: int | None = None
    paid_cents: int = 0
    due_at: datetime | None = None
    payment_failed: bool = False


@dataclass(frozen=True)
class Flag:
    code: str
    invoice_id: str
    message: str


@dataclass
class ReconciliationRow:
    customer_id: str
    customer_name: str
    currency: str
    billed_through_stripe: bool = False
    invoices: int = 0
    metered_cents: int = 0
    credits_cents: int = 0
    due_cents: int = 0
    invoiced_cents: int = 0
    collected_cents: int = 0
    flags: list[Flag] = field(default_factory=list)

    @property
    def outstanding_cents(self) -> int:
        return self.invoiced_cents - self.collected_cents


FLAG_CODES = ("unsent", "failed", "unpaid_past_due", "edited_in_stripe", "paid_but_not_metered")


def invoice_flags(facts: InvoiceFacts, *, now: datetime) -> list[Flag]:
    flags = []
    label = facts.number or facts.invoice_id

    def flag(code: str, message: str) -> None:
        flags.append(Flag(code=code, invoice_id=facts.invoice_id, message=f"{label}: {message}"))

    in_stripe = facts.push_state == "finalized"
    if facts.push_error:
        flag("failed", f"the push to Stripe failed: {facts.push_error}")
    elif (
        facts.billed_through_stripe
        and facts.status not in ("draft", "void")
        and facts.push_state not in ("finalized", "skipped")
    ):
        flag("unsent", "finalized here but not finalized in Stripe")
    if facts.payment_failed and facts.stripe_status != "paid":
        flag("failed", "Stripe's last payment attempt failed")
    if in_stripe and facts.stripe_status == "open" and facts.due_at is not None and facts.due_at < now:
        flag("unpaid_past_due", f"unpaid since {facts.due_at:%Y-%m-%d %H:%M} UTC")
    if (
        facts.sent_total_cents is not None
        and facts.stripe_total_cents is not None
        and facts.stripe_total_cents != facts.sent_total_cents
    ):
        flag(
            "edited_in_stripe",
            f"Stripe's total is {facts.stripe_total_cents} cents, we sent {facts.sent_total_cents}",
        )
    # What we asked Stripe for may exceed what we metered by the rounding of zero-decimal currencies.
    asked = max(facts.due_cents, facts.sent_total_cents or 0, 0)
    if facts.paid_cents > asked:
        flag("paid_but_not_metered", f"{facts.paid_cents} cents collected, {facts.due_cents} metered as due")
    return flags


def reconcile(facts: list[InvoiceFacts], *, now: datetime) -> list[ReconciliationRow]:
    """One row per (customer, currency), ordered by customer id then currency."""
    rows: dict[tuple[str, str], ReconciliationRow] = {}
    for item in facts:
        key = (item.customer_id, item.currency)
        row = rows.get(key)
        if row is None:
            row = rows[key] = ReconciliationRow(
                customer_id=item.customer_id, customer_name=item.customer_name, currency=item.currency
            )
        row.billed_through_stripe = row.billed_through_stripe or item.billed_through_stripe
        row.invoices += 1
        row.metered_cents += item.metered_cents
        row.credits_cents += item.credits_cents
        row.due_cents += item.due_cents
        if item.stripe_total_cents is not None and item.stripe_status != "void":
            row.invoiced_cents += item.stripe_total_cents
        row.collected_cents += item.paid_cents
        row.flags.extend(invoice_flags(item, now=now))
    return [rows[key] for key in sorted(rows)]


def flag_counts(rows: list[ReconciliationRow]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        for item in row.flags:
            counts[item.code] += 1
    return {code: counts.get(code, 0) for code in FLAG_CODES}
