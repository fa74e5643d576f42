"""Celery tasks of billing (queue `billing`). Each takes ids, calls one service and is idempotent."""

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError

from . import invoicing, metering
from .models import BillableMetric


def _debounce_key(customer_id) -> str:
    return f"billing:draft-recompute:{customer_id}"


def schedule_draft_recompute(customer_id) -> bool:
    """Queue one recompute of the customer's drafts in BILLING_RECOMPUTE_DEBOUNCE_SECONDS, unless one is queued.

    A burst of ingests gives one recompute. None is lost: the task clears the key before it reads
    any usage, so usage committed after that point schedules the next run.
    """
    delay = settings.BILLING_RECOMPUTE_DEBOUNCE_SECONDS
    if not cache.add(_debounce_key(customer_id), 1, timeout=delay + 300):
        return False
    recompute_draft_invoice.apply_async(args=[customer_id], countdown=delay)
    return True


@shared_task(
    name="billing.tasks.recompute_draft_invoice", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def recompute_draft_invoice(customer_id: int) -> int:
    """Recompute every draft invoice of the customer from rollups. Returns the number of drafts."""
    cache.delete(_debounce_key(customer_id))
    return len(invoicing.customer_drafts_recompute(customer_id=int(customer_id)))


@shared_task(name="billing.tasks.finalize_due_invoices")
def finalize_due_invoices() -> int:
    """Beat: finalize drafts whose period ended more than INVOICE_FINALIZE_GRACE_HOURS ago."""
    return len(invoicing.invoices_finalize_due())


@shared_task(name="billing.tasks.rebuild_metric_rollups", autoretry_for=(OperationalError,), retry_backoff=True)
def rebuild_metric_rollups(metric_id: str) -> int:
    """Rebuild a metric's rollups from the ledger. Returns the number of matching events."""
    metric = BillableMetric.objects.filter(pk=metric_id).first()
    if metric is None:
        return 0
    matched = metering.metric_rollups_rebuild(metric=metric)
    for customer_id in invoicing.customers_with_drafts(organization_id=metric.organization_id):
        schedule_draft_recompute(customer_id)
    return matched
