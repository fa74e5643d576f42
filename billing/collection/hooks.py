"""Wiring of collection through Stripe, called from BillingConfig.ready()."""


def connect() -> None:
    """New drafts take the customer's currency and finalization opens the invoice's Stripe twin
    (post_save, inside the finalize transaction, like the credit drawdown); Stripe's invoice.*
    webhooks on the organization's endpoint reach `services.stripe_invoice_event`."""
    from django.db.models.signals import post_save

    from billing.collection import admin, tasks  # noqa: F401  (admin pages and Celery tasks in every process)
    from billing.collection.services import INVOICE_EVENTS, invoice_saved, stripe_invoice_event
    from billing.credits.webhooks import register_event_handler
    from billing.models import Invoice

    post_save.connect(invoice_saved, sender=Invoice, dispatch_uid="billing.collection.invoice_saved")
    register_event_handler(INVOICE_EVENTS, stripe_invoice_event)
