"""Deleting a customer or an organization in bounded slices of the ledger.

Django's cascade would load every usage event of the customer (events cascade on to their vendor
responses, so they cannot go in one statement) and delete them in the one transaction that holds the
organization's ledger lock exclusively (events.receivers): at a million events, minutes of ingest
waiting and a process holding a million model instances. Here the ledger goes first, in slices of
`LEDGER_DELETE_SLICE` events in id order, each its own short transaction under the exclusive lock
(the events, their vendor responses and their idempotency keys, in one statement); then Django
deletes the customer as before, which finds at most the few events that arrived meanwhile.

The usage rollups (events' and billing's) keep counting the deleted slices until that last
transaction takes the customer's usage out with it (events.receivers), so reads go on seeing the
customer's usage until it is gone. Nothing is deleted when the deletion would be refused (a
contract or an invoice protects the customer: accounts.deletion.deletion_check). Stopped between
slices, the customer is still there with part of its ledger and the full sums in its rollups:
delete it again.
"""

from django.db import connection, transaction

from accounts.deletion import deletion_check

from ..locks import ledger_lock_exclusive
from ..models import Customer, UsageEvent, UsageEventKey, VendorResponse

LEDGER_DELETE_SLICE = 5_000

_EVENTS = UsageEvent._meta.db_table
_CALLS = VendorResponse._meta.db_table
_KEYS = UsageEventKey._meta.db_table

# One slice: the next events of an owner in id order (the (customer, id) or (organization, id)
# index), then their keys, calls and rows, in one statement.
_SLICE_SQL = f"""
WITH doomed AS MATERIALIZED (
    SELECT id, idempotency_key FROM {_EVENTS} WHERE {{owner}} ORDER BY id LIMIT %(limit)s
), keys AS (
    DELETE FROM {_KEYS} AS k USING doomed
    WHERE k.organization_id = %(organization)s AND k.idempotency_key = doomed.idempotency_key
        AND k.event_id = doomed.id
), calls AS (
    DELETE FROM {_CALLS} AS c USING doomed WHERE c.event_id = doomed.id
)
DELETE FROM {_EVENTS} AS e USING doomed WHERE e.id = doomed.id AND e.organization_id = %(organization)s
"""  # noqa: S608
_CUSTOMER_SLICE_SQL = _SLICE_SQL.format(owner="customer_id = %(customer)s")
_ORGANIZATION_SLICE_SQL = _SLICE_SQL.format(owner="organization_id = %(organization)s")


def _slices(sql: str, params: dict, *, slice_size: int) -> int:
    """Run one slice per transaction, under the organization's exclusive ledger lock, until a slice
    comes back short. Returns the number of events deleted."""
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            ledger_lock_exclusive(params["organization"])
            cursor.execute(sql, {**params, "limit": slice_size})
            count = cursor.rowcount
        deleted += count
        if count < slice_size:
            return deleted


def customer_ledger_delete(*, customer: Customer, slice_size: int = LEDGER_DELETE_SLICE) -> int:
    """Delete a customer's usage events (and their calls and keys) in slices; its rollups stay until
    the customer itself is deleted. Returns the number of events deleted."""
    params = {"organization": customer.organization_id, "customer": customer.pk}
    return _slices(_CUSTOMER_SLICE_SQL, params, slice_size=slice_size)


# Keys left once the ledger is empty: those of events in detached months (events.services.partitions
# keeps them, so a resend stays a duplicate while the organization exists).
_ORGANIZATION_KEYS_SLICE_SQL = f"""
DELETE FROM {_KEYS} WHERE organization_id = %(organization)s AND idempotency_key IN (
    SELECT idempotency_key FROM {_KEYS} WHERE organization_id = %(organization)s LIMIT %(limit)s
)
"""  # noqa: S608


def organization_ledger_delete(*, organization_id, slice_size: int = LEDGER_DELETE_SLICE) -> int:
    """Delete every usage event of an organization in slices (its `organization_deleting` receiver),
    then the idempotency keys left (those of detached months), in slices too."""
    params = {"organization": organization_id}
    deleted = _slices(_ORGANIZATION_SLICE_SQL, params, slice_size=slice_size)
    _slices(_ORGANIZATION_KEYS_SLICE_SQL, params, slice_size=slice_size)
    return deleted


def customer_delete(*, customer: Customer, slice_size: int = LEDGER_DELETE_SLICE) -> None:
    """Delete a customer: refused first if anything protects it (its contracts, invoices), then its
    ledger in slices, then the customer and the rest of what it owns in one transaction."""
    deletion_check([customer])
    customer_ledger_delete(customer=customer, slice_size=slice_size)
    with transaction.atomic():
        customer.delete()
