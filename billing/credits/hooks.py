"""Wiring of prepaid credits into the rest of the project, called from BillingConfig.ready()."""

from events.hooks import BlockedSet


def spending_limit_block_source(*, organization) -> BlockedSet:
    """events' blocklist asks every source: customers at or over their spending limit are blocked."""
    from billing.credits.selectors import customers_over_spending_limit

    over = customers_over_spending_limit(organization=organization)
    return BlockedSet(customer_ids=frozenset(limit.customer.external_id for limit, _ in over))


def connect() -> None:
    """Spending limits are a block source (events recomputes the blocklist after each ingest, debounced,
    and every minute for organizations with something blocked, so a new window lifts a block); credits
    are an invoice adjuster of drafts, and finalization draws them down from the ledger."""
    from django.db.models.signals import post_save

    from billing.credits import admin, tasks  # noqa: F401  (admin pages and Celery tasks in every process)
    from billing.credits.invoicing import customers_with_credit, invoice_apply_credits, invoice_saved
    from billing.credits.models import SpendingLimit
    from billing.invoicing import register_invoice_adjuster
    from billing.models import Invoice
    from events.hooks import register_block_source

    # Usage can only push a customer over a limit in an organization that has an enabled one;
    # setting or deleting a limit recomputes the blocklist itself (credit_services).
    register_block_source(
        spending_limit_block_source,
        watches_sql=f"EXISTS (SELECT 1 FROM {SpendingLimit._meta.db_table} "  # noqa: S608
        "WHERE organization_id = %(organization)s AND enabled)",
    )
    register_invoice_adjuster(invoice_apply_credits, scope=customers_with_credit)
    post_save.connect(invoice_saved, sender=Invoice, dispatch_uid="billing.credits.invoice_finalized")
