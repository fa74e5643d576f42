"""The ledger lock: one PostgreSQL advisory lock per organization.

Every ingest transaction takes it shared in its first round trip (before it reads anything) and
holds it until it commits. Whatever must not interleave with an ingest of the organization takes
it exclusively, and so waits for the ingests already running and makes the next ones wait:

- deleting a customer (a `pre_delete` receiver, and the database guard of migration 0007 for
  deletes that bypass Django), so that no event is stored for a customer being deleted: the ledger
  has no foreign key constraint to enforce that row by row (ARCHITECTURE.md, "The ledger's
  references");
- billing's invoice finalization, rollup rebuild and contract creation (`billing.metering`).

Ingest also takes the catalog reference lock shared, in the same statement: one lock for the whole
price catalog, which deleting a catalog price row takes exclusively (the guard trigger of migration
0008), so that a price cannot go while a call priced with it is being stored.
"""

from django.db import connection

LEDGER_LOCK_NAMESPACE = 0x4C444752  # "LDGR": the first key of pg_advisory_xact_lock(int, int)

# The second key is the hash of the organization's id as text, in SQL as in Python (the canonical
# UUID text is the same on both sides), so that the database guard can take the same lock.
LEDGER_LOCK_SHARED_SQL = (
    f"SELECT pg_advisory_xact_lock_shared({LEDGER_LOCK_NAMESPACE}, hashtext(%(organization)s::text))"
)

CATALOG_REFERENCE_LOCK = (0x50524943, 0)  # "PRIC": one key for the whole price catalog

# What ingest takes first, in one statement: the organization's ledger lock and the catalog
# reference lock, both shared.
INGEST_LOCKS_SQL = LEDGER_LOCK_SHARED_SQL + ", pg_advisory_xact_lock_shared({}, {})".format(*CATALOG_REFERENCE_LOCK)


def ledger_lock_shared(organization_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_LOCK_SHARED_SQL, {"organization": organization_id})


def ledger_lock_exclusive(organization_id) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT pg_advisory_xact_lock({LEDGER_LOCK_NAMESPACE}, hashtext(%(organization)s::text))",
            {"organization": organization_id},
        )
