"""Celery tasks of billing (queue `billing`). Each takes ids, calls one service and is idempotent."""

from celery import shared_task
from django.db import OperationalError

from . import invoicing, metering, recompute
from .models import BillableMetric


@shared_task(
    name="billing.tasks.recompute_draft_invoice", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def recompute_draft_invoice(customer_id: int) -> int:
    """Recompute every draft invoice of the customer from rollups. Returns the number of drafts."""
    recompute.recompute_started(customer_id)
    return len(invoicing.customer_drafts_recompute(customer_id=int(customer_id)))


@shared_task(name="billing.tasks.finalize_due_invoices")
def finalize_due_invoices() -> int:
    """Beat: finalize drafts whose period ended more than INVOICE_FINALIZE_GRACE_HOURS ago."""
    return len(invoicing.invoices_finalize_due())


@shared_task(name="billing.tasks.rebuild_metric_rollups", autoretry_for=(OperationalError,), retry_backoff=True)
def rebuild_metric_rollups(metric_id: str) -> int:
    """Rebuild a metric's rollups from the ledger (progress: its RollupRebuild row). Returns matches."""
    metric = BillableMetric.objects.filter(pk=metric_id).first()
    if metric is None:
        return 0
    return metering.metric_rollups_rebuild(metric=metric)
