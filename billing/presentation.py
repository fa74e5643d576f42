"""How invoices look outside the database: text for people (admin, the customer page) and the seed 004
(Cloudflare AI Gateway billing, Stripe-like) shapes for the API.

Seed 004 types amounts, quantities and times as numbers. We keep them exact: amounts are integer
cents (Stripe's minor units), times are integer Unix seconds, and decimal quantities are written as
JSON numbers from their exact decimal text (`orjson.Fragment`), never through a float.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from accounts.api.renderers import json_number, plain_decimal
from costcalc.money import cents_to_microdollars, format_cents_price, format_quantity, format_usd

from .credits.invoicing import pretax_credit_amounts
from .models import Invoice, InvoiceLine

SEED_STATUS = {
    Invoice.Status.DRAFT: "draft",
    Invoice.Status.FINALIZED: "open",  # finalized and awaiting payment: Stripe's "open"
    Invoice.Status.PAID: "paid",
    Invoice.Status.VOID: "void",
    Invoice.Status.UNCOLLECTIBLE: "uncollectible",
}


# One exact-number writer for every dialect (accounts.api.renderers); the names billing has used.
plain = plain_decimal


def unix(instant: datetime) -> int:
    return int(instant.timestamp())


# --- For people ----------------------------------------------------------------------------------


def dollars(cents: int) -> str:
    """'$1,234.56' for an integer amount of cents."""
    return format_usd(cents_to_microdollars(cents))


def unit_price_text(line: InvoiceLine) -> str:
    """Unit price in dollars with as many decimals as it needs (at least two): 50¢ → '$0.50'."""
    if line.rate_type == "COMPOSITE":
        return f"{plain(line.unit_price * 100)}%"
    if line.rate_type == "COST_PLUS":  # the factor on the cost (1 + markup), or a tier's fraction
        return f"x {plain(line.unit_price)}"
    return format_cents_price(line.unit_price)


def quantity_text(quantity: Decimal) -> str:
    """'1,500,000' or '0.25' (up to 6 decimals shown; the API keeps the exact value)."""
    return format_quantity(quantity)


def line_description(line: InvoiceLine) -> str:
    parts = [line.product_name]
    if line.tier_index is not None:
        floor = line.tier_floor or Decimal(0)
        bounds = []
        if floor > 0:
            bounds.append(f"above {quantity_text(floor)}")
        if line.tier_ceiling is not None:
            bounds.append(f"up to {quantity_text(line.tier_ceiling)}")
        parts.append(f"tier {line.tier_index}" + (f" ({' '.join(bounds)})" if bounds else ""))
    if line.rate_type == "COMPOSITE":
        parts.append(f"{unit_price_text(line)} of {dollars(int(line.quantity))}")
    return ", ".join(parts)


# --- Seed 004 shapes -------------------------------------------------------------------------------


def _amounts(invoice: Invoice) -> dict:
    paid = invoice.amount_due_cents if invoice.status == Invoice.Status.PAID else 0
    remaining = 0 if invoice.status in {Invoice.Status.PAID, Invoice.Status.VOID} else invoice.amount_due_cents - paid
    return {
        "amount_due": invoice.amount_due_cents,
        "amount_paid": paid,
        "amount_remaining": remaining,
        "currency": invoice.currency.lower(),
    }


def seed_invoice_line(line: InvoiceLine, currency: str) -> dict:
    return {
        "amount": line.amount_cents,
        "currency": currency.lower(),
        "description": line_description(line) + (f" ({line.presentation_group})" if line.presentation_group else ""),
        "period": {"start": unix(line.period_start), "end": unix(line.period_end)},
        "pricing": {"unit_amount_decimal": plain(line.unit_price)},
        "quantity": json_number(line.quantity),
        "pretax_credit_amounts": pretax_credit_amounts(line),  # credits (billing/credits/invoicing.py)
    }


def seed_invoice_preview(invoice: Invoice) -> dict:
    """Seed 004 BillingInvoicePreviewResponse."""
    return {
        "id": str(invoice.pk),
        **_amounts(invoice),
        "invoice_lines": [seed_invoice_line(line, invoice.currency) for line in invoice.lines.all()],
        "period_start": unix(invoice.period_start),
        "period_end": unix(invoice.period_end),
        "status": SEED_STATUS[invoice.status],
    }


def seed_invoice_history_item(invoice: Invoice) -> dict:
    """One entry of seed 004 BillingInvoiceHistoryResponse.invoices."""
    return {
        **_amounts(invoice),
        "id": str(invoice.pk),
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": False,
        "created": unix(invoice.finalized_at or invoice.created_at),
        "created_by": None,
        "description": f"{invoice.number or 'Draft'}: {invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}",
        "invoice_origin": "tokenledger",
        "invoice_pdf": None,
        "status": SEED_STATUS[invoice.status],
    }
