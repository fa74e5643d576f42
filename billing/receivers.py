"""Reactions to events' signals (connected in BillingConfig.ready)."""

from .tasks import schedule_draft_recompute


def queue_draft_recompute(sender=None, *, customer_ids=(), **kwargs) -> None:
    """events.signals.usage_recorded (sent on commit): recompute the customers' drafts, debounced."""
    for customer_id in customer_ids:
        schedule_draft_recompute(customer_id)
