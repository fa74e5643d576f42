"""The credit ledger: exact balances, once-per-reference entries, soonest-expiry drawdown, expiry."""

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, close_old_connections, connection
from django.utils import timezone

from billing.credits.models import CreditDraw, CreditEntry
from billing.credits.selectors import available_credit, credit_balance, credit_lots
from billing.credits.services import (
    InsufficientCredit,
    credit_add,
    credit_adjust,
    credit_deduct,
    credits_expire_all,
)
from tests.billing.credits.helpers import globex
from tests.factories import CustomerFactory, OrganizationFactory

GRANT = CreditEntry.Kind.GRANT
DOLLAR = 1_000_000


@pytest.fixture
def customer(organization):
    return globex(organization)


def grant(customer, amount, reference, **kwargs):
    return credit_add(customer=customer, kind=GRANT, amount_microdollars=amount, reference=reference, **kwargs)


@pytest.mark.django_db
def test_a_grant_is_applied_once_per_reference(customer):
    first, created = grant(customer, 25 * DOLLAR, "promo-2025")
    again, created_again = grant(customer, 25 * DOLLAR, "promo-2025")

    assert created and not created_again
    assert again.pk == first.pk
    assert credit_balance(customer=customer) == 25 * DOLLAR
    assert CreditEntry.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_the_same_reference_on_another_customer_is_another_grant(customer, organization):
    other = CustomerFactory(organization=organization)
    grant(customer, DOLLAR, "welcome")
    grant(other, DOLLAR, "welcome")
    assert credit_balance(customer=customer) == credit_balance(customer=other) == DOLLAR


@pytest.mark.django_db
def test_balance_is_the_exact_sum_of_entries(customer):
    grant(customer, 1, "a")
    grant(customer, 333_333, "b")
    credit_adjust(customer=customer, amount_microdollars=-2, reference="fix")
    assert credit_balance(customer=customer) == 333_332


@pytest.mark.django_db
def test_deductions_draw_soonest_expiring_credit_first(customer):
    now = timezone.now()
    forever, _ = grant(customer, 10 * DOLLAR, "forever")
    late, _ = grant(customer, 10 * DOLLAR, "late", expires_at=now + timedelta(days=60))
    soon, _ = grant(customer, 10 * DOLLAR, "soon", expires_at=now + timedelta(days=2))

    entry, _ = credit_deduct(
        customer=customer, kind=CreditEntry.Kind.DRAWDOWN, amount_microdollars=15 * DOLLAR, reference="inv_1"
    )

    draws = {draw.lot_id: draw.amount_microdollars for draw in entry.draws.all()}
    assert draws == {soon.pk: 10 * DOLLAR, late.pk: 5 * DOLLAR}
    remaining = {lot.id: lot.remaining for lot in credit_lots(customer=customer)}
    assert remaining == {forever.pk: 10 * DOLLAR, late.pk: 5 * DOLLAR, soon.pk: 0}
    assert entry.amount_microdollars == -15 * DOLLAR
    assert credit_balance(customer=customer) == 15 * DOLLAR


@pytest.mark.django_db
def test_a_deduction_is_taken_once_per_reference(customer):
    grant(customer, 10 * DOLLAR, "g")
    for _ in range(2):
        credit_deduct(customer=customer, kind=CreditEntry.Kind.DRAWDOWN, amount_microdollars=4 * DOLLAR,
                      reference="inv_1")
    assert credit_balance(customer=customer) == 6 * DOLLAR


@pytest.mark.django_db
def test_a_deduction_beyond_the_usable_credit_writes_nothing(customer):
    grant(customer, 5 * DOLLAR, "g")
    grant(customer, 5 * DOLLAR, "expired", expires_at=timezone.now() - timedelta(minutes=1))

    with pytest.raises(InsufficientCredit):
        credit_adjust(customer=customer, amount_microdollars=-6 * DOLLAR, reference="too-much")

    assert CreditEntry.objects.filter(customer=customer, amount_microdollars__lt=0).count() == 0
    assert CreditDraw.objects.count() == 0
    assert available_credit(customer=customer) == 5 * DOLLAR


@pytest.mark.django_db
def test_expired_remainders_become_expiry_entries_once(customer):
    now = timezone.now()
    lot, _ = grant(customer, 10 * DOLLAR, "trial", expires_at=now + timedelta(hours=1))
    grant(customer, 3 * DOLLAR, "paid")
    credit_deduct(customer=customer, kind=CreditEntry.Kind.DRAWDOWN, amount_microdollars=4 * DOLLAR, reference="i")

    assert credits_expire_all(at=now) == 0  # not yet
    later = now + timedelta(hours=2)
    assert credits_expire_all(at=later) == 1
    assert credits_expire_all(at=later) == 0  # once

    expiry = CreditEntry.objects.get(customer=customer, kind=CreditEntry.Kind.EXPIRY)
    assert expiry.amount_microdollars == -6 * DOLLAR
    assert expiry.reference == f"expiry:{lot.pk}"
    assert credit_balance(customer=customer) == 3 * DOLLAR
    assert available_credit(customer=customer, at=later) == 3 * DOLLAR


@pytest.mark.django_db
def test_available_credit_leaves_out_expired_credit_before_the_expiry_job_runs(customer):
    grant(customer, 7 * DOLLAR, "old", expires_at=timezone.now() - timedelta(seconds=1))
    grant(customer, 2 * DOLLAR, "new")
    assert credit_balance(customer=customer) == 9 * DOLLAR
    assert available_credit(customer=customer) == 2 * DOLLAR


@pytest.mark.django_db
def test_a_positive_adjustment_is_a_lot_that_can_expire(customer):
    entry, _ = credit_adjust(
        customer=customer, amount_microdollars=DOLLAR, reference="goodwill",
        expires_at=timezone.now() + timedelta(days=1),
    )
    assert entry.kind == CreditEntry.Kind.ADJUSTMENT and entry.expires_at is not None
    with pytest.raises(ValueError):
        credit_adjust(customer=customer, amount_microdollars=-1, reference="x", expires_at=timezone.now())


@pytest.mark.django_db
def test_the_database_refuses_entries_with_the_wrong_sign(customer):
    with pytest.raises(IntegrityError):
        CreditEntry.objects.create(
            organization=customer.organization, customer=customer, kind=GRANT, amount_microdollars=-1, reference="x"
        )


@pytest.mark.django_db(transaction=True)
def test_concurrent_grants_with_one_reference_credit_once():
    organization = OrganizationFactory()
    target = CustomerFactory(organization=organization)
    barrier = threading.Barrier(6)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(grant(target, 5 * DOLLAR, "pi_same")[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()

    assert sorted(results) == [False] * 5 + [True]
    assert credit_balance(customer=target) == 5 * DOLLAR


@pytest.mark.django_db(transaction=True)
def test_concurrent_deductions_never_spend_the_same_credit_twice():
    organization = OrganizationFactory()
    target = CustomerFactory(organization=organization)
    grant(target, 10 * DOLLAR, "g")
    barrier = threading.Barrier(5)
    outcomes = []

    def worker(index):
        try:
            barrier.wait()
            credit_adjust(customer=target, amount_microdollars=-3 * DOLLAR, reference=f"take-{index}")
            outcomes.append("taken")
        except InsufficientCredit:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()

    assert outcomes.count("taken") == 3 and outcomes.count("refused") == 2
    assert credit_balance(customer=target) == DOLLAR
