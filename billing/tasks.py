"""Celery tasks of billing (queue `billing`). Each takes ids, calls one service and is idempotent."""

from celery import shared_task
from django.db import OperationalError

from . import invoicing, metering, recompute
from .models import BillableMetric


@shared_task(
    name="billing.tasks.recompute_draft_invoices", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def recompute_draft_invoices(customer_ids: list[int]) -> int:
    """Recompute every draft invoice of these customers from rollups (one task per ingest batch, not
    per customer, and one set-based pass: invoicing.customers_drafts_recompute). Idempotent. Returns
    the number of drafts recomputed."""
    recompute.recompute_started(customer_ids)
    return len(invoicing.customers_drafts_recompute(customer_ids=customer_ids))


@shared_task(
    name="billing.tasks.recompute_adjusted_drafts", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def recompute_adjusted_drafts(customer_ids: list[int]) -> int:
    """Without a worker, after usage: recompute the drafts of the customers an invoice adjuster acts
    on (credits), leaving the others' marked stale for their next read
    (invoicing.customers_adjusted_drafts_recompute). Returns the number of drafts recomputed."""
    return len(invoicing.customers_adjusted_drafts_recompute(customer_ids=customer_ids))


@shared_task(
    name="billing.tasks.recompute_draft_invoice", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def recompute_draft_invoice(customer_id: int) -> int:
    """One customer's drafts (what was queued before `recompute_draft_invoices`: messages still in a
    queue when this version is deployed). Returns the number of drafts."""
    return recompute_draft_invoices([customer_id])


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
