from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Revenue side: billable metrics, products, rate cards, contracts, draft invoices, credits."""

    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from events.hooks import register_ingest_hook
        from events.signals import usage_recorded

        from .credit_setup import connect as connect_credits
        from .metering import aggregate_usage
        from .receivers import queue_draft_recompute

        register_ingest_hook(aggregate_usage)
        usage_recorded.connect(queue_draft_recompute, dispatch_uid="billing.queue_draft_recompute")
        connect_credits()  # prepaid credits: spending-limit block source, tasks, admin
