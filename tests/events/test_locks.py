"""The ledger lock's 64-bit keys: the same in Python and SQL, and distinct for two organizations
whose ids the former 32-bit key (`hashtext`) could not tell apart."""

import threading
import uuid

import pytest
from django.db import OperationalError, connection, connections, transaction

from accounts.models import Organization
from events.locks import ledger_lock_exclusive, ledger_lock_key, organization_lock_key

# Two organization ids with the same hashtext(id::text): they shared one ledger lock before.
SHARED_BEFORE = ("9157b203-a4ba-43ce-a584-389932fc2b5a", "16392d77-9a50-442b-8116-4d8e0d4ebb70")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "organization_id",
    [*SHARED_BEFORE, "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff", str(uuid.uuid4())],
)
def test_the_key_is_the_same_in_python_and_in_sql(organization_id):
    with connection.cursor() as cursor:
        cursor.execute("SELECT events_ledger_lock_key(%s::uuid)", [organization_id])
        (sql_key,) = cursor.fetchone()

    assert sql_key == ledger_lock_key(organization_id)
    assert -(2**63) <= sql_key < 2**63


@pytest.mark.django_db
def test_organizations_whose_old_keys_collided_get_different_locks():
    with connection.cursor() as cursor:
        cursor.execute("SELECT hashtext(%s) = hashtext(%s)", list(SHARED_BEFORE))
        assert cursor.fetchone() == (True,)
    assert ledger_lock_key(SHARED_BEFORE[0]) != ledger_lock_key(SHARED_BEFORE[1])


@pytest.mark.django_db(transaction=True)
def test_one_organizations_exclusive_lock_does_not_stop_the_other():
    first, second = (Organization.objects.create(id=uuid.UUID(i), name=f"org {n}") for n, i in enumerate(SHARED_BEFORE))
    held, release, result = threading.Event(), threading.Event(), {}

    def holder():
        try:
            with transaction.atomic():
                ledger_lock_exclusive(first.pk)
                held.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(30)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '2s'")
            cursor.execute("SELECT pg_try_advisory_xact_lock_shared(events_ledger_lock_key(%s::uuid))", [second.pk])
            result["second"] = cursor.fetchone()[0]
            cursor.execute("SELECT pg_try_advisory_xact_lock_shared(events_ledger_lock_key(%s::uuid))", [first.pk])
            result["first"] = cursor.fetchone()[0]
    finally:
        release.set()
        thread.join(30)

    assert result == {"second": True, "first": False}


def held_by_another_connection(key: int, run) -> dict:
    """Run ``run()`` (in a transaction with a 2 s lock timeout) while another connection holds ``key``."""
    held, release, result = threading.Event(), threading.Event(), {}

    def holder():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
                held.set()
                release.wait(30)
        finally:
            connections.close_all()

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert held.wait(30)
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '2s'")
                run()
            result["ran"] = True
        except OperationalError as error:
            result["ran"] = False
            result["error"] = str(error)
    finally:
        release.set()
        thread.join(30)
    return result


@pytest.mark.django_db(transaction=True)
def test_customer_creation_takes_its_own_64_bit_key():
    """One creation at a time per organization, keyed like the ledger lock (it was hashtext)."""
    from events.services import customer_create
    from events.services.customers import _CUSTOMER_CREATE_LOCK_NAMESPACE

    first, second = (Organization.objects.create(id=uuid.UUID(i), name=f"org {n}") for n, i in enumerate(SHARED_BEFORE))

    busy_first = held_by_another_connection(
        organization_lock_key(first.pk, _CUSTOMER_CREATE_LOCK_NAMESPACE),
        lambda: customer_create(organization=second, external_id="acme"),
    )
    busy_itself = held_by_another_connection(
        organization_lock_key(second.pk, _CUSTOMER_CREATE_LOCK_NAMESPACE),
        lambda: customer_create(organization=second, external_id="globex"),
    )

    assert busy_first == {"ran": True}
    assert busy_itself["ran"] is False and "lock timeout" in busy_itself["error"]
