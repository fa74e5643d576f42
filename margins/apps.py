from django.apps import AppConfig


class MarginsConfig(AppConfig):
    """Stripe revenue sync, customer mappings, per-customer margins, health tiers and alerts."""

    name = "margins"
    verbose_name = "Margins"

    def ready(self) -> None:
        from . import (
            schema,  # noqa: F401  (registers the OpenAPI description of the cron secret)
            tasks,  # noqa: F401  (registers the tasks that services queue by name, in every process)
        )
