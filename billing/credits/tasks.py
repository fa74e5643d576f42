"""Celery tasks of prepaid credits. Each takes ids, calls one service and is idempotent.

Task names start with `billing.tasks.` so the `billing` queue route (CELERY_TASK_ROUTES) applies,
although they live in this module rather than billing/tasks.py.
"""

import logging

import stripe
from celery import shared_task

from billing.credits import services

logger = logging.getLogger(__name__)

# Network trouble and Stripe's rate limit are worth retrying with the same idempotency key;
# a declined card is not (it is recorded as a failure by the service).
TRANSIENT_STRIPE_ERRORS = (stripe.APIConnectionError, stripe.RateLimitError)


@shared_task(name="billing.tasks.credit_auto_topup_charge", bind=True, max_retries=5)
def auto_topup_charge(self, attempt_id: int) -> str:
    try:
        attempt = services.auto_topup_charge(attempt_id=attempt_id)
    except TRANSIENT_STRIPE_ERRORS as exc:
        if self.request.retries < self.max_retries:
            raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc
        attempt = services.auto_topup_give_up(attempt_id=attempt_id, message=f"Stripe unreachable: {exc}")
    return attempt.status


@shared_task(name="billing.tasks.credit_expire")
def credits_expire() -> int:
    """Hourly: write expiry entries for credit lots that have expired with something left."""
    return services.credits_expire_all()
