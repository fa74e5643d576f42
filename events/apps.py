from django.apps import AppConfig


class EventsConfig(AppConfig):
    """The usage ledger: customers, usage events, ingest dialects, budgets and the SDK blocklist."""

    name = "events"
    verbose_name = "Usage events"
