"""Top-ups against localstripe: PaymentIntents, status checks, card saving, exactly-once credit."""

import threading

import pytest
from django.db import close_old_connections, connection
from rest_framework.test import APIClient

from accounts.services import api_key_create
from billing.credits.models import CreditEntry, TopUp
from billing.credits.selectors import credit_balance
from billing.credits.services import stripe_account_set
from events.models import Customer
from tests.billing.credits.helpers import DECLINED_ON_CHARGE, STRIPE_KEY, globex, pay_in_browser, save_default_card
from tests.factories import CustomerFactory, OrganizationFactory


@pytest.fixture
def customer(organization):
    return globex(organization)


def url(customer, path):
    return f"/api/v1/customers/{customer.external_id}/billing/{path}"


def create_topup(api_client, customer, amount=2000):
    return api_client.post(url(customer, "topup"), {"amount": amount}, format="json")


def check_status(api_client, customer, payment_intent_id):
    return api_client.post(url(customer, "topup/status"), {"payment_intent_id": payment_intent_id}, format="json")


@pytest.mark.django_db
def test_first_topup_returns_a_client_secret_and_credits_once_it_is_paid(api_client, stripe_organization, customer,
                                                                           stripe_api):
    response = create_topup(api_client, customer, 2500)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"client_secret", "onboarding", "payment_intent_id", "brand", "last4"}
    assert body["onboarding"] is False and body["brand"] is None and body["last4"] is None
    payment_intent = stripe_api.v1.payment_intents.retrieve(body["payment_intent_id"])
    assert body["client_secret"] == payment_intent.client_secret
    assert (payment_intent.amount, payment_intent.currency) == (2500, "usd")
    assert payment_intent.metadata["customer_id"] == "cust_123"

    assert check_status(api_client, customer, body["payment_intent_id"]).json() == {
        "payment_intent_id": body["payment_intent_id"], "status": "pending",
    }
    assert credit_balance(customer=customer) == 0

    assert pay_in_browser(stripe_api, body["payment_intent_id"]) == "succeeded"
    assert check_status(api_client, customer, body["payment_intent_id"]).json()["status"] == "completed"
    assert check_status(api_client, customer, body["payment_intent_id"]).json()["status"] == "completed"

    assert credit_balance(customer=customer) == 25_000_000
    entry = CreditEntry.objects.get(customer=customer)
    assert (entry.kind, entry.reference) == (CreditEntry.Kind.TOPUP, body["payment_intent_id"])

    balance = api_client.get(url(customer, "credit-balance")).json()
    assert balance["balance"] == 2500
    assert balance["balance_microdollars"] == 25_000_000
    assert balance["has_default_payment_method"] is True  # the card that paid is saved for auto top-ups
    assert balance["payment_method"] == {"brand": "visa", "last4": "4242"}
    assert balance["first_topup_success"] is True


@pytest.mark.django_db
def test_a_stripe_customer_is_created_once_and_linked(api_client, stripe_organization, customer, stripe_api):
    create_topup(api_client, customer)
    create_topup(api_client, customer)

    customer.refresh_from_db()
    assert customer.stripe_customer_id.startswith("cus_")
    stripe_customer = stripe_api.v1.customers.retrieve(customer.stripe_customer_id)
    assert stripe_customer.metadata["customer_id"] == "cust_123"
    assert stripe_customer.email == "ap@globex.test"
    assert [c.id for c in stripe_api.v1.customers.list(params={"limit": 10}).data] == [customer.stripe_customer_id]
    assert TopUp.objects.filter(customer=customer).count() == 2


@pytest.mark.django_db
def test_an_onboarded_customer_is_charged_on_its_saved_card(api_client, stripe_organization, customer, stripe_api):
    stripe_customer = stripe_api.v1.customers.create(params={"name": "Globex"})
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.id)
    customer.refresh_from_db()
    save_default_card(stripe_api, stripe_customer.id)

    body = create_topup(api_client, customer, 1000).json()

    assert body["onboarding"] is True
    assert (body["brand"], body["last4"]) == ("visa", "4242")
    assert stripe_api.v1.payment_intents.retrieve(body["payment_intent_id"]).status == "succeeded"
    assert credit_balance(customer=customer) == 10_000_000
    assert check_status(api_client, customer, body["payment_intent_id"]).json()["status"] == "completed"
    assert credit_balance(customer=customer) == 10_000_000


@pytest.mark.django_db
def test_a_declined_saved_card_is_a_402_and_credits_nothing(api_client, stripe_organization, customer, stripe_api):
    stripe_customer = stripe_api.v1.customers.create(params={"name": "Globex"})
    Customer.objects.filter(pk=customer.pk).update(stripe_customer_id=stripe_customer.id)
    save_default_card(stripe_api, stripe_customer.id, DECLINED_ON_CHARGE)

    response = create_topup(api_client, customer)

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "card_declined"
    assert credit_balance(customer=customer) == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_status_checks_credit_exactly_once(localstripe, stripe_api):
    organization = OrganizationFactory()
    stripe_account_set(organization=organization, secret_key=STRIPE_KEY)
    target = CustomerFactory(organization=organization, external_id="racer")
    _, key = api_key_create(organization=organization, name="race")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    payment_intent_id = create_topup(client, target, 5000).json()["payment_intent_id"]
    pay_in_browser(stripe_api, payment_intent_id)

    barrier = threading.Barrier(8)
    answers = []

    def check():
        try:
            own = APIClient()
            own.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
            barrier.wait()
            answers.append(check_status(own, target, payment_intent_id).json()["status"])
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()

    assert answers == ["completed"] * 8
    assert CreditEntry.objects.filter(customer=target).count() == 1
    assert credit_balance(customer=target) == 50_000_000


@pytest.mark.django_db
def test_status_of_a_payment_intent_that_is_not_this_customers_top_up_is_404(api_client, stripe_organization,
                                                                               customer, organization):
    payment_intent_id = create_topup(api_client, customer).json()["payment_intent_id"]
    other = CustomerFactory(organization=organization)

    assert check_status(api_client, other, payment_intent_id).status_code == 404
    assert check_status(api_client, customer, "pi_unknown").status_code == 404


@pytest.mark.django_db
def test_top_ups_need_a_stripe_account(api_client, customer, localstripe):
    response = create_topup(api_client, customer)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "stripe_not_configured"
    assert TopUp.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0, -2000, 999, 100_000_000, 20.5, "2000", True, None])
def test_top_up_amounts_are_integer_cents_within_limits(api_client, stripe_organization, customer, amount):
    response = create_topup(api_client, customer, amount)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"]["field"] == "amount"
    assert TopUp.objects.count() == 0


@pytest.mark.django_db
def test_a_status_check_needs_a_payment_intent_id(api_client, stripe_organization, customer):
    response = api_client.post(url(customer, "topup/status"), {}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "payment_intent_id"


@pytest.mark.django_db
def test_customers_are_found_by_uuid_too(api_client, stripe_organization, customer):
    response = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/credit-balance")
    assert response.status_code == 200
    assert response.json()["has_default_payment_method"] is False
    assert response.json()["payment_method"] is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "credit-balance", None),
        ("post", "topup", {"amount": 2000}),
        ("post", "topup/status", {"payment_intent_id": "pi_x"}),
        ("get", "topup/config", None),
        ("post", "topup/config", {"amount": 2000, "threshold": 500}),
        ("delete", "topup/config", None),
        ("get", "spending-limit", None),
        ("post", "spending-limit", {"amount": 1000, "duration": "daily", "strategy": "fixed"}),
        ("delete", "spending-limit", None),
        ("get", "credit-entries", None),
        ("post", "credit-entries", {"kind": "grant", "amount_microdollars": 5, "reference": "r"}),
    ],
)
def test_another_organizations_customer_is_not_found(api_client, stripe_organization, method, path, body):
    foreign = CustomerFactory(organization=OrganizationFactory(), external_id="cust_123")
    foreign_by_uuid = f"/api/v1/customers/{foreign.uuid}/billing/{path}"
    response = getattr(api_client, method)(foreign_by_uuid, body, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_viewers_read_but_do_not_top_up(member_client, stripe_organization, customer):
    viewer = member_client(role="viewer")
    assert viewer.get(url(customer, "credit-balance")).status_code == 200
    assert viewer.post(url(customer, "topup"), {"amount": 2000}, format="json").status_code == 403
