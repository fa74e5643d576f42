from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The usage ledger: customers, usage events, ingest dialects, budgets and the SDK blocklist."""

    name = "events"
    verbose_name = "Usage events"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from accounts.deletion import organization_deleting, register_bulk_models

        from . import tasks  # noqa: F401  (registers the tasks that services queue by name, in every process)
        from .models import (
            BudgetPendingCustomer,
            Customer,
            ModelUsageDay,
            OrganizationUsageDay,
            UsageDay,
            UsageEvent,
            VendorResponse,
        )
        from .receivers import delete_ledger_before_organization_delete, lock_ledger_before_customer_delete
        from .services.deletion import LEDGER_DELETE_SLICE

        pre_delete.connect(lock_ledger_before_customer_delete, sender=Customer, dispatch_uid="events.customer_delete")
        organization_deleting.connect(delete_ledger_before_organization_delete, dispatch_uid="events.ledger_delete")
        slices = f"deleted first, in slices of {LEDGER_DELETE_SLICE:,} events"
        register_bulk_models(UsageEvent, VendorResponse, note=slices)
        register_bulk_models(
            UsageDay, ModelUsageDay, OrganizationUsageDay, BudgetPendingCustomer, note="deleted in one statement"
        )
