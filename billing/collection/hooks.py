"""Wiring of collection through Stripe, called from BillingConfig.ready()."""


def connect() -> None:
    """New drafts take the customer's currency (period drafts, inserted in bulk, through billing's draft
    preparer; any other invoice created through post_save) and finalization opens the invoice's Stripe twin
    (post_save, inside the finalize transaction, like the credit drawdown); Stripe's invoice.*
    webhooks on the organization's endpoint reach `services.stripe_invoice_event`."""
    from django.db.models.signals import post_save

    from billing.collection import admin, tasks  # noqa: F401  (admin pages and Celery tasks in every process)
    from billing.collection.services import INVOICE_EVENTS, drafts_prepare, invoice_saved, stripe_invoice_event
    from billing.credits.webhooks import register_event_handler
    from billing.invoicing import register_draft_preparer
    from billing.models import Invoice

    post_save.connect(invoice_saved, sender=Invoice, dispatch_uid="billing.collection.invoice_saved")
    register_draft_preparer(drafts_prepare)  # period drafts are inserted in bulk, without post_save
    register_event_handler(INVOICE_EVENTS, stripe_invoice_event)
