"""Writes of collection through Stripe: billing configuration, the push of a finalized invoice, and
Stripe's answers (webhooks).

The push (`external_invoice_push`, run by the Celery task `billing.tasks.collection_push_invoice`) is
exactly once by construction:
- one `ExternalInvoice` row per invoice (one-to-one), created in the finalization transaction;
- one worker at a time per row (a session advisory try-lock: a second run returns at once);
- each step is committed before the next, and each Stripe write carries an idempotency key derived
  from our invoice id (`tl-invoice-<id>-create`, `-line-<line id>`, `-credits`, `-finalize`);
- a step that may have reached Stripe without being recorded here (a crash between the call and the
  commit) is found again: the Stripe invoice by its metadata `tokenledger_invoice_id` among the
  customer's invoices, items by `tokenledger_line_id` among the invoice's lines; finalization by the
  Stripe invoice's status.
State: `pending` (nothing recorded in Stripe yet) -> `sent` (the Stripe draft holds every line) ->
`finalized`. A permanent Stripe error is kept in `error` and stops the push until `external_invoice_retry`;
transient errors raise `CollectionTransientError` for the task to retry with backoff.
"""

import logging
import re
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from accounts.api.errors import Conflict
from accounts.tasking import enqueue_on_commit
from billing.collection import amounts, stripe_calls
from billing.collection.models import CustomerBillingConfig, ExternalInvoice
from billing.collection.stripe_calls import CollectionTransientError
from billing.credits import payments
from billing.credits.models import StripeWebhookEvent
from billing.invoicing import invoice_set_status
from billing.models import Invoice
from events.locks import uuid_lock_key
from events.models import Customer

logger = logging.getLogger(__name__)

PUSH_TASK = "billing.tasks.collection_push_invoice"
STRIPE_CUSTOMER_ID = re.compile(r"cus_[A-Za-z0-9_]{1,251}")
_PUSH_LOCK_NAMESPACE = 0x5715E  # "stripe invoice push": a 64-bit key per row (events.locks.uuid_lock_key)

INVOICE_EVENTS = frozenset({
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "invoice.updated",
})
OUR_STATUS = {"paid": Invoice.Status.PAID, "void": Invoice.Status.VOID, "uncollectible": Invoice.Status.UNCOLLECTIBLE}


# --- Configuration ---------------------------------------------------------------------------------


def billing_config_clean(values: dict) -> dict:
    """The rules shared by the API and admin; returns the values normalized, raises ValidationError."""
    errors = {}
    currency = (values.get("currency") or "USD").upper()
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        errors["currency"] = "An ISO 4217 currency code such as USD, EUR or JPY."
    method = values.get("collection_method") or CustomerBillingConfig.CollectionMethod.CHARGE_AUTOMATICALLY
    days = values.get("days_until_due")
    if method == CustomerBillingConfig.CollectionMethod.SEND_INVOICE:
        if days is None or not 1 <= days <= 365:
            errors["days_until_due"] = "send_invoice needs days_until_due between 1 and 365."
    elif days is not None:
        errors["days_until_due"] = "Only send_invoice has days until due."
    stripe_customer_id = values.get("stripe_customer_id")
    if stripe_customer_id and not STRIPE_CUSTOMER_ID.fullmatch(stripe_customer_id):
        errors["stripe_customer_id"] = "A Stripe customer id (cus_ followed by letters and digits)."
    if errors:
        raise ValidationError(errors)
    return {**values, "currency": currency, "collection_method": method, "days_until_due": days}


@transaction.atomic
def billing_config_set(
    *,
    customer: Customer,
    bill_through_stripe: bool,
    currency: str = "USD",
    collection_method: str = CustomerBillingConfig.CollectionMethod.CHARGE_AUTOMATICALLY,
    days_until_due: int | None = None,
    auto_advance: bool = True,
    send_zero_amount_invoices: bool = False,
    stripe_customer_id: str | None = None,
) -> CustomerBillingConfig:
    """Create or replace the customer's billing configuration.

    `stripe_customer_id` links an existing Stripe customer (stored on the customer, where top-ups and
    the revenue sync read it too); omitted, the Stripe customer is created on the first push
    (`payments.ensure_stripe_customer`: name, email, `metadata[customer_id]`). Open drafts take the
    currency at once; finalized invoices keep theirs.
    """
    values = billing_config_clean({
        "currency": currency, "collection_method": collection_method, "days_until_due": days_until_due,
        "stripe_customer_id": stripe_customer_id,
    })
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if stripe_customer_id and stripe_customer_id != customer.stripe_customer_id:
        clash = Customer.objects.filter(organization_id=customer.organization_id, stripe_customer_id=stripe_customer_id)
        if clash.exclude(pk=customer.pk).exists():
            raise ValidationError({"stripe_customer_id": "Another customer is linked to this Stripe customer."})
        Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer_id)
    config, _ = CustomerBillingConfig.objects.update_or_create(
        customer=customer,
        defaults={
            "organization_id": customer.organization_id,
            "bill_through_stripe": bill_through_stripe,
            "currency": values["currency"],
            "collection_method": values["collection_method"],
            "days_until_due": values["days_until_due"],
            "auto_advance": auto_advance,
            "send_zero_amount_invoices": send_zero_amount_invoices,
        },
    )
    Invoice.objects.filter(customer=customer, status=Invoice.Status.DRAFT).exclude(currency=config.currency).update(
        currency=config.currency
    )
    return config


@transaction.atomic
def billing_config_delete(*, customer: Customer) -> None:
    CustomerBillingConfig.objects.filter(customer=customer).delete()


# --- Finalization: the Stripe twin ---------------------------------------------------------------


def _should_skip(invoice: Invoice, config: CustomerBillingConfig) -> bool:
    return invoice.amount_due_cents == 0 and not config.send_zero_amount_invoices


def drafts_prepare(*, drafts) -> None:
    """billing's draft preparer: new period drafts take their customer's billing currency (one query
    for all of them, before billing inserts them in bulk)."""
    currencies = dict(
        CustomerBillingConfig.objects.filter(customer_id__in={draft.customer_id for draft in drafts}).values_list(
            "customer_id", "currency"
        )
    )
    for draft in drafts:
        draft.currency = currencies.get(draft.customer_id, draft.currency)


def invoice_saved(sender, instance: Invoice, created: bool = False, update_fields=None, **kwargs) -> None:
    """post_save of billing.Invoice. A new draft takes the customer's billing currency. At finalization
    (inside its transaction) the invoice takes it again (the configuration may have changed) and, for a
    customer billed through Stripe, gets its `ExternalInvoice` (pending, or skipped when $0 is not
    sent); the push is queued once the finalization commits."""
    finalizing = bool(update_fields) and "number" in update_fields and instance.status == Invoice.Status.FINALIZED
    if not (created or finalizing):
        return
    config = CustomerBillingConfig.objects.filter(customer_id=instance.customer_id).first()
    if config is None:
        return
    if instance.currency != config.currency:
        Invoice.objects.filter(pk=instance.pk).update(currency=config.currency)
        instance.currency = config.currency
    if finalizing and config.bill_through_stripe:
        _open_external_invoice(instance, config)


def _open_external_invoice(invoice: Invoice, config: CustomerBillingConfig) -> ExternalInvoice:
    skipped = _should_skip(invoice, config)
    row, created = ExternalInvoice.objects.get_or_create(
        invoice=invoice,
        defaults={
            "organization_id": invoice.organization_id,
            "customer_id": invoice.customer_id,
            "currency": invoice.currency.lower(),
            "state": ExternalInvoice.State.SKIPPED if skipped else ExternalInvoice.State.PENDING,
        },
    )
    if created and not skipped:
        enqueue_on_commit(PUSH_TASK, args=[str(row.pk)], robust=True)
    return row


@transaction.atomic
def external_invoice_retry(*, invoice: Invoice) -> ExternalInvoice:
    """Push (again) an invoice to Stripe: clears a permanent error, or opens the Stripe twin of a closed
    invoice finalized before its customer was billed through Stripe, and queues the push."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.is_draft:
        raise Conflict("A draft is pushed to Stripe when it is finalized.", details={"status": invoice.status})
    row = ExternalInvoice.objects.select_for_update().filter(invoice=invoice).first()
    if row is None:
        config = CustomerBillingConfig.objects.filter(customer_id=invoice.customer_id, bill_through_stripe=True).first()
        if config is None:
            raise Conflict("This customer is not billed through Stripe; set its billing configuration first.")
        if invoice.status != Invoice.Status.FINALIZED:
            raise Conflict(f"A {invoice.status} invoice is not sent to Stripe.", details={"status": invoice.status})
        row = _open_external_invoice(invoice, config)
        if row.state == ExternalInvoice.State.SKIPPED:
            raise Conflict("The amount due is 0 and this customer's $0 invoices are not sent.")
        return row
    if row.state in (ExternalInvoice.State.FINALIZED, ExternalInvoice.State.SKIPPED) and not row.error:
        raise Conflict(f"This invoice is already {row.state} in Stripe.", details={"state": row.state})
    ExternalInvoice.objects.filter(pk=row.pk).update(error="", updated_at=timezone.now())
    enqueue_on_commit(PUSH_TASK, args=[str(row.pk)], robust=True)
    row.refresh_from_db()
    return row


# --- The push ------------------------------------------------------------------------------------


@contextmanager
def _push_lock(row_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [uuid_lock_key(row_id, _PUSH_LOCK_NAMESPACE)])
        (acquired,) = cursor.fetchone()
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [uuid_lock_key(row_id, _PUSH_LOCK_NAMESPACE)])


def external_invoice_push(*, external_invoice_id) -> ExternalInvoice:
    """Create, fill and finalize the Stripe invoice of one finalized invoice; safe to run any number of
    times, concurrently, or after a crash at any point. Raises CollectionTransientError (retry later)."""
    with _push_lock(external_invoice_id) as acquired:
        row = ExternalInvoice.objects.select_related("invoice", "customer", "organization").get(pk=external_invoice_id)
        if not acquired or row.error or row.state in (ExternalInvoice.State.FINALIZED, ExternalInvoice.State.SKIPPED):
            return row
        ExternalInvoice.objects.filter(pk=row.pk).update(attempts=F("attempts") + 1)
        try:
            client = payments.client_for(row.organization)
            if row.state == ExternalInvoice.State.PENDING:
                _send(row, client)
            if row.state == ExternalInvoice.State.SENT:
                _finalize(row, client)
        except payments.StripeNotConfigured as exc:
            _fail(row, str(exc.detail))
        except stripe.StripeError as exc:
            message = f"{type(exc).__name__}: {exc.user_message or str(exc) or 'no message'}"
            if stripe_calls.is_transient(exc):
                logger.warning("Stripe push of invoice %s will be retried: %s", row.invoice_id, message)
                raise CollectionTransientError(message) from exc
            _fail(row, message)
        row.refresh_from_db()
        return row


def external_invoice_give_up(*, external_invoice_id, message: str) -> None:
    """The task ran out of retries on transient errors: record it like a permanent one (retry action)."""
    _fail(ExternalInvoice.objects.get(pk=external_invoice_id), f"Gave up after repeated transient errors: {message}")


def _fail(row: ExternalInvoice, message: str) -> None:
    logger.error("Stripe push of invoice %s failed: %s", row.invoice_id, message)
    ExternalInvoice.objects.filter(pk=row.pk).update(error=message[:4000], updated_at=timezone.now())


def _config(row: ExternalInvoice) -> CustomerBillingConfig:
    config = CustomerBillingConfig.objects.filter(customer_id=row.customer_id).first()
    return config or CustomerBillingConfig(customer_id=row.customer_id, organization_id=row.organization_id)


def _invoice_params(row: ExternalInvoice, config: CustomerBillingConfig, stripe_customer_id: str) -> dict:
    invoice = row.invoice
    params = {
        "customer": stripe_customer_id,
        "currency": row.currency,
        "collection_method": config.collection_method,
        "auto_advance": False,  # finalized by us once every line is on it; config.auto_advance applies then
        "pending_invoice_items_behavior": "exclude",
        "description": (
            f"{invoice.number}: usage from {invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d} (UTC)"
            if invoice.kind != Invoice.Kind.CORRECTION
            else f"{invoice.number}: correction, late usage of an ended contract that arrived in "
            f"{invoice.period_start:%Y-%m} (UTC)"
        ),
        "metadata": {
            "tokenledger_invoice_id": str(invoice.pk),
            "tokenledger_invoice_number": invoice.number or "",
            "tokenledger_invoice_kind": invoice.kind,
            "tokenledger_customer_id": row.customer.external_id,
        },
    }
    if config.collection_method == CustomerBillingConfig.CollectionMethod.SEND_INVOICE:
        params["days_until_due"] = config.days_until_due
    return params


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def invoice_items(row: ExternalInvoice, stripe_customer_id: str) -> list[tuple[str, dict]]:
    """(key, Stripe invoice item params) per line of our invoice, then one negative item for prepaid
    credits applied. Keys are our line ids ("credits" for the credit item); they name the idempotency
    key and the item's `tokenledger_line_id` metadata."""
    invoice = row.invoice
    common = {"customer": stripe_customer_id, "currency": row.currency}
    items = []
    for line in invoice.lines.order_by("position"):
        minor = amounts.to_minor(line.amount_cents, row.currency)
        pricing = amounts.item_pricing(quantity=line.quantity, amount_minor=minor)
        label = line.product_name + (f" ({line.presentation_group})" if line.presentation_group else "")
        quantity_text = amounts.plain(line.quantity) + (f" {line.quantity_unit}" if line.quantity_unit else "")
        description = label if pricing.exact_quantity else f"{label}: {quantity_text}"
        items.append((str(line.pk), {
            **common,
            "description": description[:500],
            "quantity": pricing.quantity,
            "unit_amount_decimal": pricing.unit_amount_decimal,
            "period": {"start": _unix(line.period_start), "end": _unix(line.period_end)},
            "metadata": {
                "tokenledger_invoice_id": str(invoice.pk),
                "tokenledger_line_id": str(line.pk),
                "quantity": amounts.plain(line.quantity),
                "unit_price_cents": amounts.plain(line.unit_price),
                "amount_cents": str(line.amount_cents),
            },
        }))
    if invoice.credits_applied_cents:
        items.append(("credits", {
            **common,
            "description": "Prepaid credits applied",
            "amount": -amounts.to_minor(invoice.credits_applied_cents, row.currency),
            "period": {"start": _unix(invoice.period_start), "end": _unix(invoice.period_end)},
            "metadata": {"tokenledger_invoice_id": str(invoice.pk), "tokenledger_line_id": "credits"},
        }))
    return items


def _item_amount(params: dict) -> int:
    """Minor units of one item: exact by construction (`amounts.item_pricing`)."""
    if "amount" in params:
        return params["amount"]
    return int(Decimal(params["unit_amount_decimal"]) * params["quantity"])


def _send(row: ExternalInvoice, client: stripe.StripeClient) -> None:
    """pending -> sent: the Stripe customer, the Stripe draft invoice, one item per line (+ credits)."""
    config = _config(row)
    # Once the Stripe invoice exists, its items go to its customer, whatever the link says since.
    stripe_customer_id = row.stripe_customer_id or payments.ensure_stripe_customer(client=client, customer=row.customer)
    key = f"tl-invoice-{row.invoice_id}"
    if not row.stripe_invoice_id:
        found = stripe_calls.find_invoice(
            client=client, stripe_customer_id=stripe_customer_id, invoice_id=str(row.invoice_id)
        )
        if found is None:
            found = stripe_calls.create_invoice(
                client=client, params=_invoice_params(row, config, stripe_customer_id), idempotency_key=f"{key}-create"
            )
        _record_stripe_invoice(row, found["id"], stripe_customer_id)
    present = {
        (line.get("metadata") or {}).get("tokenledger_line_id")
        for line in stripe_calls.invoice_lines(client=client, stripe_invoice_id=row.stripe_invoice_id)
    }
    items = invoice_items(row, stripe_customer_id)
    for line_key, params in items:
        if line_key in present:
            continue
        stripe_calls.create_item(
            client=client, params={**params, "invoice": row.stripe_invoice_id}, idempotency_key=f"{key}-line-{line_key}"
        )
    sent_total = sum(_item_amount(params) for _, params in items)
    ExternalInvoice.objects.filter(pk=row.pk).update(
        state=ExternalInvoice.State.SENT, sent_total=sent_total, updated_at=timezone.now()
    )
    row.state, row.sent_total = ExternalInvoice.State.SENT, sent_total


# Hook for tests that simulate a worker dying right after Stripe created the invoice.
def _record_stripe_invoice(row: ExternalInvoice, stripe_invoice_id: str, stripe_customer_id: str) -> None:
    ExternalInvoice.objects.filter(pk=row.pk).update(
        stripe_invoice_id=stripe_invoice_id, stripe_customer_id=stripe_customer_id, updated_at=timezone.now()
    )
    row.stripe_invoice_id, row.stripe_customer_id = stripe_invoice_id, stripe_customer_id


def _finalize(row: ExternalInvoice, client: stripe.StripeClient) -> None:
    """sent -> finalized: finalize the Stripe draft (unless it already left draft) and store its links."""
    config = _config(row)
    current = stripe_calls.retrieve_invoice(client=client, stripe_invoice_id=row.stripe_invoice_id)
    if current.get("status") == "draft":
        current = stripe_calls.finalize_invoice(
            client=client, stripe_invoice_id=row.stripe_invoice_id, auto_advance=config.auto_advance,
            idempotency_key=f"tl-invoice-{row.invoice_id}-finalize",
        )
    with transaction.atomic():
        locked = ExternalInvoice.objects.select_for_update().get(pk=row.pk)
        _apply_stripe_invoice(locked, current)
        locked.state = ExternalInvoice.State.FINALIZED
        locked.save()
        _follow_status(locked)
    row.state = ExternalInvoice.State.FINALIZED


# --- Stripe's view of the invoice ------------------------------------------------------------------


def _at(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _apply_stripe_invoice(row: ExternalInvoice, stripe_invoice: dict) -> bool:
    """Copy Stripe's invoice onto the (locked) row unless its status is older than what we hold.
    Returns whether it was applied."""
    status = stripe_invoice.get("status") or ""
    if not amounts.status_advances(row.stripe_status, status):
        return False
    transitions = stripe_invoice.get("status_transitions") or {}
    row.stripe_status = status
    row.stripe_number = stripe_invoice.get("number") or row.stripe_number
    row.hosted_invoice_url = stripe_invoice.get("hosted_invoice_url") or row.hosted_invoice_url
    row.invoice_pdf = stripe_invoice.get("invoice_pdf") or row.invoice_pdf
    for field in ("amount_due", "amount_paid", "amount_remaining"):
        if stripe_invoice.get(field) is not None:
            setattr(row, field, int(stripe_invoice[field]))
    if stripe_invoice.get("total") is not None:
        row.stripe_total = int(stripe_invoice["total"])
    row.stripe_finalized_at = _at(transitions.get("finalized_at")) or row.stripe_finalized_at
    row.paid_at = _at(transitions.get("paid_at")) or row.paid_at
    due = _at(stripe_invoice.get("due_date"))
    if due is None and row.stripe_finalized_at and stripe_invoice.get("collection_method") != "send_invoice":
        due = row.stripe_finalized_at + timedelta(hours=settings.STRIPE_INVOICING_PAST_DUE_HOURS)
    row.due_at = due or row.due_at
    if status == "paid":
        row.payment_failed_at = None
        row.last_payment_error = ""
    row.raw = stripe_invoice
    return True


def _follow_status(row: ExternalInvoice) -> str:
    """Our invoice follows Stripe's paid / void / uncollectible. Returns a note when it cannot."""
    wanted = OUR_STATUS.get(row.stripe_status)
    invoice = Invoice.objects.get(pk=row.invoice_id)
    if wanted is None or invoice.status == wanted:
        return ""
    try:
        invoice_set_status(invoice=invoice, status=wanted)
    except ValidationError:
        note = f"Stripe says {row.stripe_status}; our invoice is {invoice.status} and stays so"
        logger.warning("invoice %s: %s", invoice.pk, note)
        return note
    return ""


def stripe_invoice_event(*, event: dict, endpoint_organization) -> tuple[str, object, str]:
    """Handle an `invoice.*` webhook (registered with billing.credits.webhooks): Stripe's invoice as of
    the event is applied to our twin unless it is older news (statuses only move forward), our invoice
    follows to paid / void / uncollectible, and a failed payment is recorded. Duplicates are harmless:
    the same object applies to the same values."""
    stripe_invoice = (event.get("data") or {}).get("object") or {}
    rows = ExternalInvoice.objects.filter(stripe_invoice_id=stripe_invoice.get("id") or "-")
    if endpoint_organization is not None:
        rows = rows.filter(organization=endpoint_organization)
    with transaction.atomic():
        row = rows.select_for_update().first()
        if row is None:
            return StripeWebhookEvent.Status.IGNORED, None, "not a TokenLedger invoice of this organization"
        applied = _apply_stripe_invoice(row, stripe_invoice)
        notes = [] if applied else [f"older than what we hold ({row.stripe_status}); not applied"]
        if event.get("type") == "invoice.payment_failed" and row.stripe_status not in amounts.TERMINAL:
            row.payment_failed_at = _at(event.get("created")) or timezone.now()
            attempts = stripe_invoice.get("attempt_count")
            row.last_payment_error = f"payment attempt {attempts} failed" if attempts else "payment attempt failed"
        row.last_event_id = str(event.get("id") or "")
        row.save()
        if applied:
            notes.append(_follow_status(row))
    return StripeWebhookEvent.Status.PROCESSED, row.organization_id, "; ".join(filter(None, notes))


def pending_pushes_requeue(*, older_than_seconds: int = 600) -> int:
    """Beat: queue the push of every twin still pending or sent without an error after a while (a
    queue message lost with a broker restart, a worker killed mid-push). Returns how many."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        ExternalInvoice.objects.filter(
            state__in=[ExternalInvoice.State.PENDING, ExternalInvoice.State.SENT], error="", updated_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for row_id in ids:
        enqueue_on_commit(PUSH_TASK, args=[str(row_id)], robust=True)
    return len(ids)

