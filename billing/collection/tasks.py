"""Celery tasks of collection through Stripe (names under `billing.tasks.`, so the `billing` queue
route applies). Each takes ids, calls one service and is idempotent."""

from celery import shared_task
from django.conf import settings

from billing.collection import services
from billing.collection.stripe_calls import CollectionTransientError


@shared_task(name="billing.tasks.collection_push_invoice", bind=True, max_retries=None)
def push_invoice(self, external_invoice_id: str) -> str:
    """Create and finalize the Stripe invoice of one finalized invoice. Transient Stripe errors are
    retried with exponential backoff (30 s, 60 s, … capped at an hour) STRIPE_INVOICING_MAX_RETRIES
    times, then recorded on the invoice like a permanent error (admin / API "retry")."""
    try:
        row = services.external_invoice_push(external_invoice_id=external_invoice_id)
    except CollectionTransientError as exc:
        if self.request.retries < settings.STRIPE_INVOICING_MAX_RETRIES:
            raise self.retry(exc=exc, countdown=min(3600, 30 * 2**self.request.retries)) from exc
        services.external_invoice_give_up(external_invoice_id=external_invoice_id, message=str(exc))
        return "failed"
    return row.state if not row.error else "failed"


@shared_task(name="billing.tasks.collection_requeue_pending")
def requeue_pending() -> int:
    """Every 15 minutes: queue again the pushes that are neither done nor failed after 10 minutes."""
    return services.pending_pushes_requeue()
