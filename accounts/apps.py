from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tenancy and access: organizations, members, API keys, and the API conventions every app uses."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from . import schema  # noqa: F401  (registers the OpenAPI extension for API-key auth)
