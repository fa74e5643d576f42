"""Credits drawn down on invoices before `amount_due` (seed 004 `pretax_credit_amounts`).

- Drafts: billing's recompute calls `invoice_apply_credits` (an invoice adjuster) with the fresh
  lines; usable credit is applied line by line in whole cents, soonest-expiring first, and recorded
  per line (InvoiceCredit) without touching the ledger, so previews and the balance show it at once.
- Finalization: when billing saves the invoice as finalized (inside its finalize transaction), the
  same allocation is computed again and written to the ledger as one drawdown entry whose reference
  is the invoice id: the unique (customer, kind, reference) makes it exactly once. Voiding the
  invoice later returns the credit (adjustments, once per grant drawn).

Both steps take the customer's ledger lock, so the allocation the adjuster returned and the one
written at finalization are computed from the same lots; `at` is the period's end once it is over,
so both see the same expiries.

Several open drafts of one customer (several contracts) share the credit: a draft only sees what
drafts that come before it (earlier period, then id) have not already claimed.
"""

import logging
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from billing.credits import arithmetic
from billing.credits.models import CreditEntry, InvoiceCredit
from billing.credits.selectors import credit_lots
from billing.credits.services import credit_add, credit_deduct, lock_ledger, queue_auto_topup_evaluation
from costcalc.money import MICRODOLLARS_PER_CENT

logger = logging.getLogger(__name__)


def _at(invoice) -> datetime:
    return min(timezone.now(), invoice.period_end)


def _drawdown_for(invoice, lines, at: datetime) -> arithmetic.Drawdown:
    """The credit allocation of ``lines``: usable lots minus what earlier open drafts claim."""
    from billing.models import Invoice

    lots = credit_lots(customer=invoice.customer)
    earlier_claims = sum(
        cents
        for period_start, pk, cents in Invoice.objects.filter(
            customer_id=invoice.customer_id, status=Invoice.Status.DRAFT
        )
        .exclude(pk=invoice.pk)
        .values_list("period_start", "pk", "credits_applied_cents")
        if (period_start, str(pk)) < (invoice.period_start, str(invoice.pk))
    )
    if earlier_claims:
        claimed = dict(arithmetic.allocate(lots, earlier_claims * MICRODOLLARS_PER_CENT, at=at))
        lots = [
            arithmetic.CreditLot(
                id=lot.id, remaining=lot.remaining - claimed.get(lot.id, 0), granted_at=lot.granted_at,
                expires_at=lot.expires_at,
            )
            for lot in lots
        ]
    return arithmetic.apply_credits_to_lines(
        [arithmetic.LineCharge(key=line.pk, amount_cents=line.amount_cents) for line in lines], lots, at=at
    )


def customers_with_credit(customer_ids) -> set[int]:
    """The adjuster's scope: of ``customer_ids``, those with a credit ledger entry or an active auto
    top-up (one query). For any other customer `invoice_apply_credits` could only return 0 (no lot to
    draw from, no line credit to rewrite, no drawdown) and queue no top-up evaluation, so a draft
    recompute skips it for them."""
    from billing.credits.models import AutoTopUpConfig

    ids = [int(customer_id) for customer_id in customer_ids]
    if not ids:
        return set()
    with connection.cursor() as cursor:  # one array parameter: this runs after every ingest batch
        cursor.execute(
            f"SELECT customer_id FROM {CreditEntry._meta.db_table} WHERE customer_id = ANY(%s::bigint[]) "  # noqa: S608
            f"UNION SELECT customer_id FROM {AutoTopUpConfig._meta.db_table} "
            "WHERE customer_id = ANY(%s::bigint[]) AND disabled_reason = ''",
            [ids, ids],
        )
        return {customer_id for (customer_id,) in cursor.fetchall()}


def invoice_apply_credits(*, invoice, lines) -> int:
    """billing's invoice adjuster: apply credits to a draft's freshly computed lines; returns cents."""
    lock_ledger(invoice.customer_id)
    finalized = CreditEntry.objects.filter(
        customer_id=invoice.customer_id, kind=CreditEntry.Kind.DRAWDOWN, reference=str(invoice.pk)
    ).first()
    if finalized is not None:  # already drawn down: the ledger is the record
        return -finalized.amount_microdollars // MICRODOLLARS_PER_CENT
    InvoiceCredit.objects.filter(invoice=invoice).delete()
    drawdown = _drawdown_for(invoice, lines, _at(invoice))
    InvoiceCredit.objects.bulk_create(
        [InvoiceCredit(invoice=invoice, line_id=line.key, amount_cents=line.credit_cents)
         for line in drawdown.lines if line.credit_cents > 0]
    )
    customer_id = invoice.customer_id
    transaction.on_commit(lambda: queue_auto_topup_evaluation(customer_id))
    return drawdown.credit_cents


def invoice_drawdown_commit(*, invoice) -> CreditEntry | None:
    """At finalization: write the drawdown entry (once) and link it to the invoice's line credits."""
    if invoice.credits_applied_cents <= 0:
        return None
    lock_ledger(invoice.customer_id)
    lines = list(invoice.lines.order_by("position"))
    at = _at(invoice)
    drawdown = _drawdown_for(invoice, lines, at)
    if drawdown.credit_cents != invoice.credits_applied_cents:
        # Cannot happen while the ledger lock is held since the adjuster ran; refuse rather than
        # finalize an invoice whose credits the ledger does not back.
        raise RuntimeError(
            f"invoice {invoice.pk}: {drawdown.credit_cents} cents of credit now, "
            f"{invoice.credits_applied_cents} applied"
        )
    entry, _ = credit_deduct(
        customer=invoice.customer,
        kind=CreditEntry.Kind.DRAWDOWN,
        amount_microdollars=drawdown.credit_microdollars,
        reference=str(invoice.pk),
        description=f"Invoice {invoice.number or invoice.pk}",
        at=at,
        parts=[(lot_id, amount, str(line.key)) for line in drawdown.lines for lot_id, amount in line.parts],
    )
    InvoiceCredit.objects.filter(invoice=invoice).update(entry=entry)
    return entry


def invoice_void_restore(*, invoice) -> list[CreditEntry]:
    """A voided invoice gives its credits back: one adjustment per grant it drew from, with that
    grant's expiry, once per (invoice, grant)."""
    drawdown = CreditEntry.objects.filter(
        customer_id=invoice.customer_id, kind=CreditEntry.Kind.DRAWDOWN, reference=str(invoice.pk)
    ).first()
    if drawdown is None:
        return []
    restored = []
    for draw in drawdown.draws.select_related("lot").order_by("id"):
        entry, created = credit_add(
            customer=invoice.customer,
            kind=CreditEntry.Kind.ADJUSTMENT,
            amount_microdollars=draw.amount_microdollars,
            reference=f"void:{invoice.pk}:{draw.pk}",
            expires_at=draw.lot.expires_at,
            description=f"Credit returned: invoice {invoice.number or invoice.pk} voided",
        )
        if created:
            restored.append(entry)
    return restored


def invoice_saved(sender, instance, update_fields=None, **kwargs) -> None:
    """post_save of billing.Invoice: finalization (status saved as finalized) draws the credits down;
    voiding gives them back."""
    from billing.models import Invoice

    if not update_fields or "status" not in update_fields:
        return
    if instance.status == Invoice.Status.FINALIZED:
        invoice_drawdown_commit(invoice=instance)
    elif instance.status == Invoice.Status.VOID:
        invoice_void_restore(invoice=instance)


def pretax_credit_amounts(line) -> list[dict]:
    """Seed 004 `pretax_credit_amounts` of one invoice line (amounts in integer cents, like the line)."""
    try:
        credit = line.credit
    except InvoiceCredit.DoesNotExist:
        return []
    return [{
        "amount": credit.amount_cents,
        "type": "credit_balance_transaction",
        "credit_balance_transaction": str(credit.entry_id) if credit.entry_id else None,
        "discount": None,
    }]
