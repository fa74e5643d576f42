from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The usage ledger: customers, usage events, ingest dialects, budgets and the SDK blocklist."""

    name = "events"
    verbose_name = "Usage events"

    def ready(self) -> None:
        from django.db.models.signals import pre_delete

        from . import tasks  # noqa: F401  (registers the tasks that services queue by name, in every process)
        from .models import Customer
        from .receivers import lock_ledger_before_customer_delete

        pre_delete.connect(lock_ledger_before_customer_delete, sender=Customer, dispatch_uid="events.customer_delete")
