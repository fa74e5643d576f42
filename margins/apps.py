from django.apps import AppConfig


class MarginsConfig(AppConfig):
    """Stripe revenue sync, customer mappings, per-customer margins, health tiers and alerts."""

    name = "margins"
    verbose_name = "Margins"
