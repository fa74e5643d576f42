"""Reactions to Django's own signals (connected in EventsConfig.ready)."""

from django.db import connection

from .locks import ledger_lock_exclusive
from .models import UsageEvent, UsageEventKey
from .services.deletion import organization_ledger_delete
from .services.rollups import customer_usage_forget

# The keys of the customer's events, which go with it (as they went with the ledger's unique
# constraint before the keys had a table of their own): a resend is then a new event again.
_FORGET_KEYS_SQL = (
    f"DELETE FROM {UsageEventKey._meta.db_table} AS k USING {UsageEvent._meta.db_table} AS e "  # noqa: S608
    "WHERE e.organization_id = %(organization)s AND e.customer_id = %(customer)s "
    "AND k.organization_id = e.organization_id AND k.idempotency_key = e.idempotency_key"
)


def lock_ledger_before_customer_delete(sender, instance, **kwargs) -> None:
    """pre_delete of a Customer: take the organization's ledger lock exclusively before Django deletes
    anything (its usage events first, then the customer), so that running ingests commit first and
    the next ones wait; the database guard then finds no event left. Taken later (by the guard
    trigger only), a running ingest could be waiting on a rollup row this deletion holds."""
    ledger_lock_exclusive(instance.organization_id)
    # Its usage leaves the organization-level rollups with it (its own rollup rows go by cascade).
    customer_usage_forget(organization_id=instance.organization_id, customer_id=instance.pk)
    with connection.cursor() as cursor:
        cursor.execute(_FORGET_KEYS_SQL, {"organization": instance.organization_id, "customer": instance.pk})


def delete_ledger_before_organization_delete(sender, organization, **kwargs) -> None:
    """accounts.deletion's organization_deleting: the organization's ledger goes first, in slices
    (events.services.deletion), before Django deletes the organization and the rest."""
    organization_ledger_delete(organization_id=organization.pk)
