"""Celery tasks of margins: ids in, one service call, idempotent, retries only on named transient errors.

Routed to the `sync` queue (webhook deliveries to `webhooks`) by CELERY_TASK_ROUTES.
"""

import logging

from celery import shared_task

from accounts.models import Organization

from . import services, webhooks
from .models import SyncRun
from .stripe_api import StripeTransientError

logger = logging.getLogger(__name__)

WEBHOOK_MAX_RETRIES = 8  # backoff 2, 4, 8, … 256 s (jittered): about eight minutes in all


@shared_task(
    bind=True,
    autoretry_for=(StripeTransientError,),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def revenue_sync_organization(self, organization_id: str, trigger: str = SyncRun.Trigger.SCHEDULE) -> dict:
    """Sync one organization's Stripe revenue. Rate limits, network errors and Stripe 5xx are retried
    with exponential backoff; a rejected key or a 4xx is recorded on the SyncRun and not retried."""
    organization = Organization.objects.get(pk=organization_id)
    try:
        result = services.revenue_sync(organization=organization, trigger=trigger)
    except services.StripeNotConnected:
        logger.info("organization %s disconnected Stripe before its sync ran", organization_id)
        return {"skipped": True}
    return {"organization_id": str(result.organization_id), "invoices_fetched": result.invoices_fetched}


@shared_task
def revenue_sync_all() -> int:
    """Beat entry point: queue one sync per connected Pro organization. Returns how many were queued."""
    organization_ids = services.connected_organization_ids()
    for organization_id in organization_ids:
        revenue_sync_organization.delay(str(organization_id), SyncRun.Trigger.SCHEDULE)
    return len(organization_ids)


@shared_task
def health_recompute_organization(organization_id: str) -> int:
    """Re-check one organization's health tiers and queue `margin.threshold_crossed` for each change.
    Idempotent: a second run finds nothing changed. Returns the number of crossings."""
    organization = Organization.objects.filter(pk=organization_id).first()
    if organization is None:
        return 0
    return len(services.health_recompute(organization=organization))


@shared_task
def health_recompute_all() -> int:
    """Beat entry point: tiers also move with usage (cost, revenue on events) between revenue syncs, and
    organizations without Stripe have no sync at all; re-check every organization with a threshold
    webhook endpoint. Returns how many were queued."""
    organization_ids = services.organizations_with_threshold_webhooks()
    for organization_id in organization_ids:
        health_recompute_organization.delay(str(organization_id))
    return len(organization_ids)


@shared_task(
    bind=True,
    autoretry_for=(webhooks.WebhookDeliveryFailed,),
    retry_backoff=2,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=WEBHOOK_MAX_RETRIES,
)
def webhook_deliver(self, delivery_id: str) -> str:
    """Send one webhook delivery; retried with backoff while the receiver fails, then marked failed."""
    try:
        webhooks.webhook_attempt(delivery_id=delivery_id)
    except webhooks.WebhookDeliveryFailed:
        if self.request.retries >= self.max_retries:
            webhooks.webhook_give_up(delivery_id=delivery_id)
        raise
    return "succeeded"
