"""The ledger lock: one PostgreSQL advisory lock per organization.

Every ingest transaction takes it shared in its first round trip (before it reads anything) and
holds it until it commits. Whatever must not interleave with an ingest of the organization takes
it exclusively, and so waits for the ingests already running and makes the next ones wait:

- deleting a customer (a `pre_delete` receiver, and the database guard of migration 0007 for
  deletes that bypass Django), so that no event is stored for a customer being deleted: the ledger
  has no foreign key constraint to enforce that row by row (ARCHITECTURE.md, "The ledger's
  references");
- billing's invoice finalization (one transaction per invoice), the start of a metric rollup
  rebuild and contract creation (`billing.metering`), and the usage rollups' rebuild (one slice of
  customers at a time, `events.services.rollups`); the migration 0011 guard uses the same key.

Ingest also takes the catalog reference lock shared, in the same statement: one lock for the whole
price catalog, which deleting a catalog price row takes exclusively (the guard trigger of migration
0008), so that a price cannot go while a call priced with it is being stored.
"""

import uuid

from django.db import connection

# The ledger lock's key: 64 bits of the organization's UUID (its high half XOR its low half, so every
# bit is random for a version-4 UUID), for the one-key (bigint) form of pg_advisory_xact_lock.
# `events_ledger_lock_key(uuid)` (migration 0011) computes it in SQL, so that ingest, the database
# guard of customer deletions and `ledger_lock_key` below agree. Two organizations share a lock only
# if their UUIDs agree on those 64 bits: about 3 in 10^8 for a million organizations (a 32-bit hash,
# as before, made a shared pair likely past some tens of thousands).
LEDGER_LOCK_KEY_SQL = "events_ledger_lock_key(%(organization)s::uuid)"
LEDGER_LOCK_SHARED_SQL = f"SELECT pg_advisory_xact_lock_shared({LEDGER_LOCK_KEY_SQL})"
LEDGER_LOCK_EXCLUSIVE_SQL = f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_KEY_SQL})"

# Kept for migration 0007, which created the guard with the earlier 32-bit key (namespace, hashtext).
LEDGER_LOCK_NAMESPACE = 0x4C444752  # "LDGR"

CATALOG_REFERENCE_LOCK = (0x50524943, 0)  # "PRIC": one key for the whole price catalog (two-key form)

# What ingest takes first, in one statement: the organization's ledger lock and the catalog
# reference lock, both shared.
INGEST_LOCKS_SQL = LEDGER_LOCK_SHARED_SQL + ", pg_advisory_xact_lock_shared({}, {})".format(*CATALOG_REFERENCE_LOCK)

_HALF = (1 << 64) - 1


def ledger_lock_key(organization_id) -> int:
    """The organization's ledger lock key (a signed 64-bit integer), as events_ledger_lock_key computes it."""
    value = uuid.UUID(str(organization_id)).int
    key = (value >> 64) ^ (value & _HALF)
    return key - (1 << 64) if key >= 1 << 63 else key


def organization_lock_key(organization_id, namespace: int) -> int:
    """The key of another per-organization lock (margins' health recompute, budget evaluation): the
    ledger lock key XOR a 32-bit ``namespace`` naming the lock (in SQL: `events_ledger_lock_key(id) #
    namespace`). One organization's locks differ from each other, and two organizations share one only
    as rarely as they would share the ledger lock."""
    if not 0 < namespace < 1 << 32:
        raise ValueError("A lock namespace is a non-zero 32-bit integer (0 is the ledger lock itself).")
    return ledger_lock_key(organization_id) ^ namespace


def ledger_lock_shared(organization_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_LOCK_SHARED_SQL, {"organization": organization_id})


def ledger_lock_exclusive(organization_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_LOCK_EXCLUSIVE_SQL, {"organization": organization_id})
