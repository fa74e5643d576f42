"""Auto top-up (seed 004): configuration endpoints, off-session charges on localstripe, failures recorded."""

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from billing import invoicing, services
from billing.credits.models import AutoTopUpAttempt, AutoTopUpConfig, CreditEntry, TopUp
from billing.credits.selectors import credit_balance
from billing.credits.services import (
    auto_topup_charge,
    auto_topup_config_set,
    auto_topup_evaluate,
    credit_add,
    credit_adjust,
    stripe_account_set,
)
from events.models import Customer
from tests.billing.conftest import ingest
from tests.billing.credits.helpers import (
    DECLINED_ON_CHARGE,
    NEEDS_AUTHENTICATION,
    STRIPE_KEY,
    globex,
    save_default_card,
)
from tests.factories import CustomerFactory, OrganizationFactory

DOLLAR = 1_000_000


@pytest.fixture
def customer(organization):
    return globex(organization)


def url(customer, path="topup/config"):
    return f"/api/v1/customers/{customer.external_id}/billing/{path}"


def onboard(customer, stripe_api, number=None):
    """Give the customer a Stripe customer with a saved default card (as a first top-up would)."""
    stripe_customer = stripe_api.v1.customers.create(params={"name": customer.name})
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.id)
    customer.refresh_from_db()
    save_default_card(stripe_api, stripe_customer.id, *([number] if number else []))
    return stripe_customer.id


def grant(customer, dollars, reference="g"):
    credit_add(customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=dollars * DOLLAR,
               reference=reference)


def spend(customer, dollars, reference):
    credit_adjust(customer=customer, amount_microdollars=-dollars * DOLLAR, reference=reference)


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_get_set_and_delete_the_config(api_client, customer):
    empty = {"amount": None, "disabled_reason": None, "error": None, "last_failed_at": None, "threshold": None}
    assert api_client.get(url(customer)).json() == empty

    created = api_client.post(url(customer), {"amount": 2000, "threshold": 500}, format="json")
    assert created.status_code == 200
    assert created.json() == {"amount": 2000, "threshold": 500}
    assert api_client.get(url(customer)).json() == {**empty, "amount": 2000, "threshold": 500}
    balance = api_client.get(url(customer, "credit-balance")).json()
    assert balance["topup_config"] == {**empty, "amount": 2000, "threshold": 500}

    assert api_client.delete(url(customer)).json() == {}
    assert api_client.get(url(customer)).json() == empty


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"amount": 999, "threshold": 500}, "amount"),
        ({"amount": -2000, "threshold": 500}, "amount"),
        ({"amount": 2000, "threshold": 499}, "threshold"),
        ({"amount": 2000, "threshold": 0}, "threshold"),
        ({"amount": 2000}, "threshold"),
        ({"threshold": 500}, "amount"),
        ({"amount": "2000", "threshold": 500}, "amount"),
        ({"amount": 2000.5, "threshold": 500}, "amount"),
    ],
)
def test_invalid_configs_are_refused(api_client, customer, body, field):
    response = api_client.post(url(customer), body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field
    assert not AutoTopUpConfig.objects.exists()


# --- charging ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_falling_below_the_threshold_charges_the_saved_card_once(
    api_client, stripe_organization, customer, stripe_api, django_capture_on_commit_callbacks
):
    onboard(customer, stripe_api)
    grant(customer, 10)
    api_client.post(url(customer), {"amount": 2000, "threshold": 500}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        spend(customer, 4, "usage-1")  # $6 left: above $5, nothing happens
    assert not AutoTopUpAttempt.objects.exists()

    with django_capture_on_commit_callbacks(execute=True):
        spend(customer, 2, "usage-2")  # $4 left: below $5

    attempt = AutoTopUpAttempt.objects.get()
    assert (attempt.status, attempt.balance_microdollars) == ("succeeded", 4 * DOLLAR)
    topup = TopUp.objects.get()
    assert (topup.origin, topup.status, topup.amount_cents) == ("auto", "completed", 2000)
    payment_intent = stripe_api.v1.payment_intents.retrieve(topup.payment_intent_id)
    assert (payment_intent.status, payment_intent.amount) == ("succeeded", 2000)
    assert payment_intent.metadata["tokenledger_origin"] == "auto"
    assert credit_balance(customer=customer) == 24 * DOLLAR

    # The same low balance evaluated again (a retried job, another worker) charges nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert auto_topup_evaluate(customer=customer) is None
    assert TopUp.objects.count() == 1


@pytest.mark.django_db
def test_an_attempt_charged_twice_is_one_payment(stripe_organization, customer, stripe_api):
    onboard(customer, stripe_api)
    auto_topup_config_set(customer=customer, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)
    attempt = auto_topup_evaluate(customer=customer)  # on_commit never runs inside this test's transaction

    auto_topup_charge(attempt_id=attempt.pk)
    auto_topup_charge(attempt_id=attempt.pk)

    assert TopUp.objects.count() == 1
    assert credit_balance(customer=customer) == 10 * DOLLAR


@pytest.mark.django_db
def test_declines_are_recorded_and_repeated_declines_disable_it(
    api_client, stripe_organization, customer, stripe_api, settings, django_capture_on_commit_callbacks
):
    settings.AUTO_TOPUP_RETRY_SECONDS = 0
    settings.AUTO_TOPUP_MAX_FAILURES = 3
    onboard(customer, stripe_api, DECLINED_ON_CHARGE)
    api_client.post(url(customer), {"amount": 2000, "threshold": 500}, format="json")

    with django_capture_on_commit_callbacks(execute=True):
        auto_topup_evaluate(customer=customer)

    config = api_client.get(url(customer)).json()
    assert config["error"] == "Your card was declined."
    assert abs(config["last_failed_at"] - timezone.now().timestamp()) < 60
    assert config["disabled_reason"] is None
    assert credit_balance(customer=customer) == 0

    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            auto_topup_evaluate(customer=customer)
    config = api_client.get(url(customer)).json()
    assert "3 failed charges in a row" in config["disabled_reason"]
    assert AutoTopUpAttempt.objects.filter(status="failed").count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert auto_topup_evaluate(customer=customer) is None  # disabled: no fourth charge
    assert AutoTopUpAttempt.objects.count() == 3

    # Setting it again re-enables it.
    api_client.post(url(customer), {"amount": 2000, "threshold": 500}, format="json")
    assert api_client.get(url(customer)).json()["disabled_reason"] is None
    assert AutoTopUpConfig.objects.get().consecutive_failures == 0


@pytest.mark.django_db
def test_after_a_failure_it_waits_before_trying_again(stripe_organization, customer, stripe_api, settings):
    settings.AUTO_TOPUP_RETRY_SECONDS = 3600
    onboard(customer, stripe_api, DECLINED_ON_CHARGE)
    auto_topup_config_set(customer=customer, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)
    auto_topup_charge(attempt_id=auto_topup_evaluate(customer=customer).pk)

    assert auto_topup_evaluate(customer=customer) is None
    assert auto_topup_evaluate(customer=customer, at=timezone.now() + timedelta(hours=2)) is not None


@pytest.mark.django_db
def test_without_a_saved_card_the_failure_says_so(stripe_organization, customer):
    auto_topup_config_set(customer=customer, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)

    attempt = auto_topup_charge(attempt_id=auto_topup_evaluate(customer=customer).pk)

    assert attempt.status == "failed"
    assert AutoTopUpConfig.objects.get().error == "The customer has no saved payment method."


@pytest.mark.django_db
def test_a_card_that_needs_authentication_is_not_charged_off_session(stripe_organization, customer, stripe_api):
    onboard(customer, stripe_api, NEEDS_AUTHENTICATION)
    auto_topup_config_set(customer=customer, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)

    attempt = auto_topup_charge(attempt_id=auto_topup_evaluate(customer=customer).pk)

    assert attempt.status == "failed"
    assert "authentication" in AutoTopUpConfig.objects.get().error
    topup = TopUp.objects.get()
    assert topup.status == "failed"
    assert stripe_api.v1.payment_intents.retrieve(topup.payment_intent_id).status == "canceled"
    assert credit_balance(customer=customer) == 0


@pytest.mark.django_db
def test_rated_usage_on_the_draft_triggers_the_top_up(
    organization, stripe_organization, customer, stripe_api, seed_pricing, django_capture_on_commit_callbacks
):
    """The balance customers see goes down as usage is rated on the draft, and auto top-up follows it."""
    onboard(customer, stripe_api)
    month = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=month
    )
    grant(customer, 6)
    auto_topup_config_set(customer=customer, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)
    recent = max(timezone.now() - timedelta(minutes=5), month)
    ingest(organization, customer, [{"event_type": "langModel4", "occurred_at": recent,
                                     "properties": {"tokens": 3_000_000, "user_id": "a"}}])  # $1.50

    with django_capture_on_commit_callbacks(execute=True):
        invoicing.customer_drafts_recompute(customer_id=customer.pk)

    assert TopUp.objects.get().status == "completed"
    assert credit_balance(customer=customer) == 16 * DOLLAR  # ledger: $6 + $10; the draft holds $1.50


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_decide_one_charge(localstripe):
    organization = OrganizationFactory()
    stripe_account_set(organization=organization, secret_key=STRIPE_KEY)
    target = CustomerFactory(organization=organization)
    auto_topup_config_set(customer=target, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)
    AutoTopUpAttempt.objects.all().delete()  # the set's own evaluation (no card yet) is not what we test
    AutoTopUpConfig.objects.update(consecutive_failures=0, error="", last_failed_at=None)
    barrier = threading.Barrier(6)
    decided = []

    def evaluate():
        try:
            barrier.wait()
            decided.append(auto_topup_evaluate(customer=Customer.objects.get(pk=target.pk)) is not None)
        finally:
            connection.close()

    from unittest import mock

    # The charge task is not what this test is about; keep the decisions pending so all six race on them.
    with mock.patch("billing.credits.tasks.auto_topup_charge.apply_async"):  # mock: no charging, only deciding
        threads = [threading.Thread(target=evaluate) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    close_old_connections()

    assert decided.count(True) == 1
    assert AutoTopUpAttempt.objects.filter(customer=target).count() == 1


@pytest.mark.django_db
def test_one_charge_at_a_time_unless_the_pending_one_is_stuck(stripe_organization, customer):
    auto_topup_config_set(customer=customer, amount_microdollars=10 * DOLLAR, threshold_microdollars=5 * DOLLAR)
    pending = auto_topup_evaluate(customer=customer)  # its charge task never runs in this test

    credit_add(customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=1, reference="tiny")
    assert auto_topup_evaluate(customer=customer) is None  # a new trigger, but a charge is in flight

    AutoTopUpAttempt.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert auto_topup_evaluate(customer=customer) is not None
