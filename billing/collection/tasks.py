"""Celery tasks of collection through Stripe (names under `billing.tasks.`, so the `billing` queue
route applies). Each takes ids, calls one service and is idempotent."""

from celery import shared_task
from django.conf import settings

from accounts.tasking import enqueue
from billing.collection import services
from billing.collection.stripe_calls import CollectionTransientError


def backoff_seconds(attempt: int) -> int:
    """30 s, 60 s, 120 s, … capped at an hour."""
    return min(3600, 30 * 2**attempt)


@shared_task(name="billing.tasks.collection_push_invoice")
def push_invoice(external_invoice_id: str, attempt: int = 0) -> str:
    """Create and finalize the Stripe invoice of one finalized invoice. A transient Stripe error queues
    the next attempt after an exponential backoff, STRIPE_INVOICING_MAX_RETRIES times, then it is
    recorded on the invoice like a permanent error (admin / API "retry"). (Queued again rather than
    `self.retry`, so eager mode, without a broker, retries too.)"""
    try:
        row = services.external_invoice_push(external_invoice_id=external_invoice_id)
    except CollectionTransientError as exc:
        if attempt < settings.STRIPE_INVOICING_MAX_RETRIES:
            enqueue(services.PUSH_TASK, args=[external_invoice_id, attempt + 1], countdown=backoff_seconds(attempt))
            return "retrying"
        services.external_invoice_give_up(external_invoice_id=external_invoice_id, message=str(exc))
        return "failed"
    return "failed" if row.error else row.state


@shared_task(name="billing.tasks.collection_requeue_pending")
def requeue_pending() -> int:
    """Every 15 minutes: queue again the pushes that are neither done nor failed after 10 minutes."""
    return services.pending_pushes_requeue()
