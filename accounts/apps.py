from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tenancy and access: organizations, members, API keys, and the API conventions every app uses."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from . import schema  # noqa: F401  (registers the OpenAPI extension for API-key auth)
        from .models import ApiKey, Organization
        from .services import forget_verified_keys

        # A key or organization saved or deleted in this process (revocation, plan change, admin
        # edit) is looked up again on its next request; other processes follow within
        # API_KEY_CACHE_SECONDS.
        for model in (ApiKey, Organization):
            post_save.connect(forget_verified_keys, sender=model, dispatch_uid=f"accounts.forget_keys.{model.__name__}")
            post_delete.connect(
                forget_verified_keys, sender=model, dispatch_uid=f"accounts.forget_keys.{model.__name__}.delete"
            )
