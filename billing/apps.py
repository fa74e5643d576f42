from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Revenue side: billable metrics, products, rate cards, contracts, draft invoices, credits."""

    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from accounts.deletion import register_bulk_models
        from events.hooks import register_ingest_hook, register_ledger_month_guard

        from . import tasks  # noqa: F401  (registers the tasks that services queue by name, in every process)
        from .collection.hooks import connect as connect_collection
        from .credits.hooks import connect as connect_credits
        from .metering import INGEST_PRELUDE, aggregate_usage, ledger_month_holds
        from .models import UniqueValueRollup, UsageRollup

        # Rolls usage up inside the ingest transaction and, on commit, queues the drafts' recompute.
        register_ingest_hook(aggregate_usage, prelude=INGEST_PRELUDE)
        # Months of the ledger with open billing periods (or while a rebuild reads it) stay attached.
        register_ledger_month_guard(ledger_month_holds)
        connect_credits()  # prepaid credits: spending-limit block source, tasks, admin
        connect_collection()  # collection through Stripe: push at finalization, invoice webhooks, admin
        # Hourly rollups: summarized on admin deletion pages, deleted by Django in one statement.
        register_bulk_models(UsageRollup, UniqueValueRollup, note="deleted in one statement")
