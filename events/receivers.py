"""Reactions to Django's own signals (connected in EventsConfig.ready)."""

from .locks import ledger_lock_exclusive
from .services.rollups import customer_usage_forget


def lock_ledger_before_customer_delete(sender, instance, **kwargs) -> None:
    """pre_delete of a Customer: take the organization's ledger lock exclusively before Django deletes
    anything (its usage events first, then the customer), so that running ingests commit first and
    the next ones wait; the database guard then finds no event left. Taken later (by the guard
    trigger only), a running ingest could be waiting on a rollup row this deletion holds."""
    ledger_lock_exclusive(instance.organization_id)
    # Its usage leaves the organization-level rollups with it (its own rollup rows go by cascade).
    customer_usage_forget(organization_id=instance.organization_id, customer_id=instance.pk)
