from django.apps import AppConfig


class BillingConfig(AppConfig):
    """Revenue side: billable metrics, products, rate cards, contracts, draft invoices, credits."""

    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing.credit_setup import connect as connect_credits

        connect_credits()
