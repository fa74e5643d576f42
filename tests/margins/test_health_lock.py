"""The health recompute's per-organization lock has a 64-bit key from the organization's UUID
(`events.locks.organization_lock_key`): organizations whose former 32-bit keys (`hashtext`) were
equal no longer wait for each other, and the lock is neither the ledger lock nor the budget
evaluation's."""

import uuid

import pytest
from django.db import connection

from accounts.models import Organization
from events.locks import ledger_lock_key, organization_lock_key
from margins import services
from tests.events.test_locks import SHARED_BEFORE, held_by_another_connection


def test_the_key_is_64_bits_and_differs_from_the_organizations_other_locks():
    for organization_id in SHARED_BEFORE:
        key = organization_lock_key(organization_id, services.HEALTH_LOCK_NAMESPACE)
        assert -(2**63) <= key < 2**63
        assert key != ledger_lock_key(organization_id)
        assert key != organization_lock_key(organization_id, 1111770964)  # budget evaluation ("BDGT")
    assert organization_lock_key(SHARED_BEFORE[0], services.HEALTH_LOCK_NAMESPACE) != organization_lock_key(
        SHARED_BEFORE[1], services.HEALTH_LOCK_NAMESPACE
    )
    with pytest.raises(ValueError, match="non-zero 32-bit"):
        organization_lock_key(SHARED_BEFORE[0], 0)


@pytest.mark.django_db
def test_the_python_key_is_the_sql_scheme_the_budget_evaluation_uses():
    with connection.cursor() as cursor:
        cursor.execute("SELECT events_ledger_lock_key(%s::uuid) # 1111770964", [SHARED_BEFORE[0]])
        assert cursor.fetchone()[0] == organization_lock_key(SHARED_BEFORE[0], 1111770964)


@pytest.mark.django_db(transaction=True)
def test_organizations_whose_old_keys_collided_recompute_at_the_same_time():
    first, second = (
        Organization.objects.create(id=uuid.UUID(i), name=f"org {n}", plan=Organization.Plan.PRO)
        for n, i in enumerate(SHARED_BEFORE)
    )

    busy_first = held_by_another_connection(
        organization_lock_key(first.pk, services.HEALTH_LOCK_NAMESPACE),
        lambda: services.health_recompute(organization=second),
    )
    busy_itself = held_by_another_connection(
        organization_lock_key(second.pk, services.HEALTH_LOCK_NAMESPACE),
        lambda: services.health_recompute(organization=second),
    )

    assert busy_first == {"ran": True}
    assert busy_itself["ran"] is False and "lock timeout" in busy_itself["error"]
