from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Tenancy and access: organizations, members, API keys, and the API conventions every app uses."""

    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.db.models import Field
        from django.db.models.signals import post_delete, post_save

        from . import (
            schema,  # noqa: F401  (registers the OpenAPI extension for API-key auth)
            signin,  # noqa: F401  (counts failed sign-ins per client address)
        )
        from .fields import AnyOf
        from .models import ApiKey, Organization
        from .services import credentials_changed

        Field.register_lookup(AnyOf)

        # A key or organization saved or deleted (revocation, scopes, plan change, admin edit) moves
        # the shared credentials version: every process looks the key up again on its next request.
        for model in (ApiKey, Organization):
            post_save.connect(credentials_changed, sender=model, dispatch_uid=f"accounts.forget_keys.{model.__name__}")
            post_delete.connect(
                credentials_changed, sender=model, dispatch_uid=f"accounts.forget_keys.{model.__name__}.delete"
            )
