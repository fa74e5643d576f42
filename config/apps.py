from django.apps import AppConfig


class ConfigConfig(AppConfig):
    """Project-level commands (demo data, the embedded server) and the health check."""

    name = "config"
    verbose_name = "TokenLedger"
