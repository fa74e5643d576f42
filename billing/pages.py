"""The customer-facing invoice page, reached through a signed, expiring link (no login)."""

from datetime import timedelta
from itertools import groupby

from django.core import signing
from django.shortcuts import render
from django.views.decorators.http import require_GET

from . import invoicing, presentation
from .models import Invoice
from .services import LinkExpired, invoice_from_link_token


def _private(response):
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"  # the link is the credential: never leak it in a Referer
    return response


@require_GET
def invoice_page(request, token: str):
    try:
        invoice = invoice_from_link_token(token)
    except LinkExpired:
        context = {"title": "This link has expired", "message": "Ask your account contact for a new link."}
        return _private(render(request, "billing/invoice_link_error.html", context, status=410))
    except (signing.BadSignature, Invoice.DoesNotExist, ValueError):
        context = {"title": "Invoice not found", "message": "This link is not valid. Check that it was copied whole."}
        return _private(render(request, "billing/invoice_link_error.html", context, status=404))

    # A live draft is exact when it is read: its customer's stale usage is recomputed first.
    if invoice.is_draft and invoicing.drafts_refresh(
        organization_id=invoice.organization_id, customer_ids=[invoice.customer_id]
    ):
        invoice.refresh_from_db()
    lines = list(invoice.lines.all())
    groups = []
    for label, members in groupby(lines, key=lambda line: line.presentation_group):
        members = list(members)
        groups.append(
            {
                "label": label,
                "rows": [
                    {
                        "description": line.product_name
                        if line.rate_type == "COMPOSITE"
                        else presentation.line_description(line),
                        "composite": line.rate_type == "COMPOSITE",
                        "period": None
                        if (line.period_start, line.period_end) == (invoice.period_start, invoice.period_end)
                        else (line.period_start, line.period_end),
                        "quantity": presentation.dollars(int(line.quantity))
                        if line.rate_type == "COMPOSITE"
                        else presentation.quantity_text(line.quantity),
                        "unit": line.quantity_unit,
                        "unit_price": presentation.unit_price_text(line),
                        "amount": presentation.dollars(line.amount_cents),
                    }
                    for line in members
                ],
                "subtotal": presentation.dollars(sum(line.amount_cents for line in members)),
            }
        )
    context = {
        "invoice": invoice,
        "customer": invoice.customer,
        "status": presentation.SEED_STATUS[invoice.status],
        "groups": groups,
        "total": presentation.dollars(invoice.total_cents),
        "credits": presentation.dollars(invoice.credits_applied_cents) if invoice.credits_applied_cents else None,
        "amount_due": presentation.dollars(invoice.amount_due_cents),
        "period_last_day": invoice.period_end - timedelta(seconds=1),
    }
    return _private(render(request, "billing/invoice.html", context))
