"""Reads of collection through Stripe: billing configurations, Stripe twins, the reconciliation."""

from datetime import UTC, datetime

from django.utils import timezone

from billing import invoicing
from billing.collection import amounts, reconciliation
from billing.collection.models import CustomerBillingConfig, ExternalInvoice
from billing.models import Invoice


def billing_config(*, customer) -> CustomerBillingConfig | None:
    return CustomerBillingConfig.objects.filter(customer=customer).first()


def stripe_billed_customer_ids(*, organization) -> set[int]:
    """Customers whose invoices are collected through Stripe: their revenue arrives as Stripe invoices
    (which carry `metadata.tokenledger_invoice_id`), so a revenue source reading our own invoices
    should leave these customers to the Stripe side, or count each invoice twice."""
    return set(
        CustomerBillingConfig.objects.filter(organization=organization, bill_through_stripe=True).values_list(
            "customer_id", flat=True
        )
    )


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a `YYYY-MM` period, UTC; ValueError if malformed."""
    if len(period) != 7 or period[4] != "-" or not (period[:4] + period[5:]).isdigit():
        raise ValueError(period)
    year, month = int(period[:4]), int(period[5:])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def reconciliation_facts(*, organization, period: str) -> list[reconciliation.InvoiceFacts]:
    """One `InvoiceFacts` per invoice of the organization whose billing period starts in `period`."""
    start, end = period_bounds(period)
    invoicing.drafts_refresh(organization_id=organization.pk)  # metered amounts of drafts as of now
    billed = stripe_billed_customer_ids(organization=organization)
    invoices = (
        Invoice.objects.filter(organization=organization, period_start__gte=start, period_start__lt=end)
        .select_related("customer")
        .order_by("customer__external_id", "period_start", "id")
    )
    twins = {row.invoice_id: row for row in ExternalInvoice.objects.filter(invoice__in=invoices)}
    facts = []
    for invoice in invoices:
        twin = twins.get(invoice.pk)
        currency = invoice.currency.upper()
        extra = {}
        if twin is not None:

            def cents(minor, currency=twin.currency):
                return None if minor is None else amounts.to_cents(minor, currency)

            extra = {
                "push_state": twin.state,
                "push_error": twin.error,
                "stripe_invoice_id": twin.stripe_invoice_id,
                "stripe_status": twin.stripe_status,
                "sent_total_cents": cents(twin.sent_total),
                "stripe_total_cents": cents(twin.stripe_total),
                "paid_cents": cents(twin.amount_paid) or 0,
                "due_at": twin.due_at,
                "payment_failed": twin.payment_failed_at is not None,
            }
        facts.append(reconciliation.InvoiceFacts(
            invoice_id=str(invoice.pk),
            number=invoice.number or "",
            customer_id=invoice.customer.external_id,
            customer_name=invoice.customer.name,
            currency=currency,
            status=invoice.status,
            billed_through_stripe=invoice.customer_id in billed,
            metered_cents=invoice.total_cents,
            credits_cents=invoice.credits_applied_cents,
            due_cents=invoice.amount_due_cents,
            **extra,
        ))
    return facts


def reconciliation_rows(*, organization, period: str, now: datetime | None = None):
    return reconciliation.reconcile(
        reconciliation_facts(organization=organization, period=period), now=now or timezone.now()
    )
