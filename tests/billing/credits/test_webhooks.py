"""The Stripe webhook for top-ups: signatures, stored rows, redeliveries that credit once."""

import json
import threading
import time
import urllib.request

import pytest
from django.db import close_old_connections, connection
from rest_framework.test import APIClient

from accounts.services import api_key_create
from billing.credits.models import CreditEntry, StripeWebhookEvent, TopUp
from billing.credits.selectors import credit_balance
from billing.credits.services import stripe_account_set
from tests.billing.credits.helpers import (
    STRIPE_KEY,
    WEBHOOK_SECRET,
    globex,
    pay_in_browser,
    payment_intent_event,
    signed,
)
from tests.factories import CustomerFactory, OrganizationFactory

WEBHOOK = "/api/stripe/webhooks/billing"


@pytest.fixture
def customer(organization):
    return globex(organization)


@pytest.fixture
def webhook_secret(settings):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    return WEBHOOK_SECRET


def deliver(client, event: dict | str, secret: str = WEBHOOK_SECRET, **kwargs):
    body, header = signed(event, secret, **kwargs)
    return client.post(WEBHOOK, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


def paid_topup(api_client, customer, stripe_api, amount=3000) -> dict:
    payment_intent_id = api_client.post(
        f"/api/v1/customers/{customer.external_id}/billing/topup", {"amount": amount}, format="json"
    ).json()["payment_intent_id"]
    pay_in_browser(stripe_api, payment_intent_id)
    return stripe_api.v1.payment_intents.retrieve(payment_intent_id).to_dict()


@pytest.mark.django_db
def test_a_succeeded_payment_intent_credits_once_however_often_it_is_delivered(
    api_client, anonymous_client, stripe_organization, customer, stripe_api, webhook_secret
):
    payment_intent = paid_topup(api_client, customer, stripe_api)
    event = payment_intent_event(payment_intent, event_id="evt_paid")

    for _ in range(3):
        response = deliver(anonymous_client, event)
        assert response.status_code == 200
        assert response.json() == {"received": True, "status": "processed"}

    assert credit_balance(customer=customer) == 30_000_000
    row = StripeWebhookEvent.objects.get(event_id="evt_paid")
    assert (row.status, row.deliveries, row.organization_id) == ("processed", 3, stripe_organization.pk)
    assert TopUp.objects.get(payment_intent_id=payment_intent["id"]).status == TopUp.Status.COMPLETED

    # A different event about the same payment and a status check credit nothing more.
    deliver(anonymous_client, payment_intent_event(payment_intent, event_id="evt_paid_again"))
    api_client.post(
        f"/api/v1/customers/{customer.external_id}/billing/topup/status",
        {"payment_intent_id": payment_intent["id"]}, format="json",
    )
    assert CreditEntry.objects.filter(customer=customer).count() == 1


@pytest.mark.django_db
def test_a_bad_signature_is_refused_and_nothing_is_stored(anonymous_client, webhook_secret):
    event = {"id": "evt_forged", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_x"}}}

    wrong_secret = deliver(anonymous_client, event, secret="whsec_someone_else")
    stale = deliver(anonymous_client, event, timestamp=int(time.time()) - 3600)
    future = deliver(anonymous_client, event, timestamp=int(time.time()) + 10 * 365 * 86400)
    just_beyond = deliver(anonymous_client, event, timestamp=int(time.time()) + 301 + 5)
    unsigned = anonymous_client.post(WEBHOOK, json.dumps(event), content_type="application/json")

    for response in (wrong_secret, stale, future, just_beyond, unsigned):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_signature"
    assert StripeWebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_without_a_signing_secret_the_endpoint_refuses_events(anonymous_client, settings):
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = deliver(anonymous_client, {"id": "evt_1", "type": "x", "data": {"object": {}}})
    assert response.status_code == 503
    assert StripeWebhookEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_signed_body_that_is_not_json_is_a_400(anonymous_client, webhook_secret):
    response = deliver(anonymous_client, "not json")
    assert response.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        "[]",
        "{}",
        '{"id": 7, "type": "customer.created"}',
        '{"id": "evt_nul\\u0000", "type": "customer.created"}',
        '{"id": "evt_type", "type": "customer.created\\u0000"}',
        '{"id": "evt_pi", "type": "payment_intent.succeeded", "data": {"object": "pi_123"}}',
        '{"id": "evt_pi2", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi\\u0000"}}}',
    ],
)
def test_signed_bodies_that_are_not_stripe_events_are_a_400_and_store_nothing(anonymous_client, webhook_secret, body):
    response = deliver(anonymous_client, body)

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"
    assert not StripeWebhookEvent.objects.exists()


@pytest.mark.django_db
def test_events_for_other_payments_are_stored_as_ignored(anonymous_client, webhook_secret):
    response = deliver(anonymous_client, payment_intent_event({"id": "pi_not_ours", "status": "succeeded"}))
    other_type = deliver(anonymous_client, {"id": "evt_cus", "type": "customer.created", "data": {"object": {}}})

    assert response.json()["status"] == other_type.json()["status"] == "ignored"
    assert StripeWebhookEvent.objects.get(event_id="evt_cus").error == "customer.created is not handled by billing"
    assert CreditEntry.objects.count() == 0


@pytest.mark.django_db
def test_a_failed_payment_is_recorded_on_the_top_up(api_client, anonymous_client, stripe_organization, customer,
                                                     stripe_api, webhook_secret):
    payment_intent_id = api_client.post(
        f"/api/v1/customers/{customer.external_id}/billing/topup", {"amount": 2000}, format="json"
    ).json()["payment_intent_id"]
    failed = {
        **stripe_api.v1.payment_intents.retrieve(payment_intent_id).to_dict(),
        "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
    }

    response = deliver(anonymous_client, payment_intent_event(failed, "payment_intent.payment_failed"))

    assert response.json()["status"] == "processed"
    topup = TopUp.objects.get(payment_intent_id=payment_intent_id)
    assert (topup.status, topup.error) == (TopUp.Status.FAILED, "Your card was declined.")
    assert credit_balance(customer=customer) == 0

    # The customer retries with another card on the same PaymentIntent: it still completes.
    pay_in_browser(stripe_api, payment_intent_id)
    status = api_client.post(
        f"/api/v1/customers/{customer.external_id}/billing/topup/status",
        {"payment_intent_id": payment_intent_id}, format="json",
    )
    assert status.json()["status"] == "completed"
    assert credit_balance(customer=customer) == 20_000_000


@pytest.mark.django_db
def test_a_late_failure_event_does_not_undo_a_completed_top_up(api_client, anonymous_client, stripe_organization,
                                                                customer, stripe_api, webhook_secret):
    payment_intent = paid_topup(api_client, customer, stripe_api)
    deliver(anonymous_client, payment_intent_event(payment_intent))
    stale = {**payment_intent, "status": "requires_payment_method", "last_payment_error": {"message": "declined"}}

    deliver(anonymous_client, payment_intent_event(stale, "payment_intent.payment_failed"))

    assert TopUp.objects.get(payment_intent_id=payment_intent["id"]).status == TopUp.Status.COMPLETED
    assert credit_balance(customer=customer) == 30_000_000


@pytest.mark.django_db
def test_an_amount_that_does_not_match_the_top_up_is_not_credited(api_client, anonymous_client, stripe_organization,
                                                                   customer, stripe_api, webhook_secret):
    payment_intent = paid_topup(api_client, customer, stripe_api)

    deliver(anonymous_client, payment_intent_event({**payment_intent, "amount": 999_999}))

    assert credit_balance(customer=customer) == 0
    assert "999999" in TopUp.objects.get(payment_intent_id=payment_intent["id"]).error


@pytest.mark.django_db(transaction=True)
def test_concurrent_redeliveries_credit_once(localstripe, stripe_api, webhook_secret):
    organization = OrganizationFactory()
    stripe_account_set(organization=organization, secret_key=STRIPE_KEY)
    target = CustomerFactory(organization=organization, external_id="racer")
    _, key = api_key_create(organization=organization, name="race")
    api_client = APIClient()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    payment_intent = paid_topup(api_client, target, stripe_api, 4000)
    events = [payment_intent_event(payment_intent, event_id=f"evt_{index % 2}") for index in range(8)]
    barrier = threading.Barrier(len(events))
    codes = []

    def post(event):
        try:
            barrier.wait()
            codes.append(deliver(APIClient(), event).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    close_old_connections()

    assert codes == [200] * len(events)
    assert CreditEntry.objects.filter(customer=target).count() == 1
    assert credit_balance(customer=target) == 40_000_000
    assert StripeWebhookEvent.objects.filter(organization=organization).count() == 2


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_the_signed_event_that_credits_the_top_up(live_server, localstripe, stripe_api,
                                                                      webhook_secret):
    """End to end: localstripe signs and POSTs payment_intent.succeeded to our endpoint on a live server."""
    organization = OrganizationFactory()
    stripe_account_set(organization=organization, secret_key=STRIPE_KEY)
    target = CustomerFactory(organization=organization, external_id="live")
    _, key = api_key_create(organization=organization, name="live")
    api_client = APIClient()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    register = urllib.request.Request(
        f"{localstripe}/_config/webhooks/tokenledger-billing",
        data=f"url={live_server.url}{WEBHOOK}&secret={WEBHOOK_SECRET}&events[]=payment_intent.succeeded".encode(),
        method="POST",
    )
    urllib.request.urlopen(register, timeout=5).close()
    try:
        payment_intent = paid_topup(api_client, target, stripe_api, 1200)  # nobody asks for the status

        deadline = time.monotonic() + 15
        handled = StripeWebhookEvent.objects.filter(
            payload__data__object__id=payment_intent["id"], status=StripeWebhookEvent.Status.PROCESSED
        )
        while time.monotonic() < deadline and not handled.exists():
            time.sleep(0.2)
    finally:
        unregister = urllib.request.Request(
            f"{localstripe}/_config/webhooks/tokenledger-billing",
            data=f"url=http://127.0.0.1:9/&secret={WEBHOOK_SECRET}&events[]=none".encode(),
            method="POST",
        )
        urllib.request.urlopen(unregister, timeout=5).close()

    assert credit_balance(customer=target) == 12_000_000
    # (events of earlier tests' payments may arrive too: localstripe sends them a second after the fact)
    row = StripeWebhookEvent.objects.get(payload__data__object__id=payment_intent["id"])
    assert (row.status, row.organization_id) == ("processed", organization.pk)


# --- Per-organization endpoints (an organization's own Stripe account) ---------------------------

ORG_SECRET = "whsec_acme_own_account"
OTHER_SECRET = "whsec_other_own_account"


def org_webhook(organization) -> str:
    return f"{WEBHOOK}/{organization.pk}"


def deliver_to(client, organization, event: dict, secret: str):
    body, header = signed(event, secret)
    return client.post(org_webhook(organization), body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)


@pytest.fixture
def own_account(stripe_organization, settings):
    """The organization charges through its own Stripe account, with its own webhook signing secret;
    no platform-wide secret is configured."""
    settings.STRIPE_WEBHOOK_SECRET = ""
    stripe_account_set(organization=stripe_organization, webhook_secret=ORG_SECRET)
    return stripe_organization


@pytest.fixture
def other_organization(localstripe):
    other = OrganizationFactory(name="Other Org")
    stripe_account_set(organization=other, secret_key=STRIPE_KEY, webhook_secret=OTHER_SECRET)
    return other


@pytest.mark.django_db
def test_an_organizations_endpoint_verifies_with_its_own_secret_and_credits_once(
    api_client, anonymous_client, own_account, customer, stripe_api
):
    payment_intent = paid_topup(api_client, customer, stripe_api)
    event = payment_intent_event(payment_intent, event_id="evt_own")

    global_endpoint = deliver(anonymous_client, event, secret=ORG_SECRET)  # the global one has no secret here
    responses = [deliver_to(anonymous_client, own_account, event, ORG_SECRET) for _ in range(3)]
    another_event = deliver_to(
        anonymous_client, own_account, payment_intent_event(payment_intent, event_id="evt_own_2"), ORG_SECRET
    )

    assert global_endpoint.status_code == 503
    for response in [*responses, another_event]:
        assert response.status_code == 200, response.content
        assert response.json() == {"received": True, "status": "processed"}
    assert credit_balance(customer=customer) == 30_000_000
    assert CreditEntry.objects.filter(customer=customer).count() == 1
    row = StripeWebhookEvent.objects.get(event_id="evt_own")
    assert (row.endpoint_organization_id, row.organization_id, row.deliveries) == (own_account.pk, own_account.pk, 3)
    assert TopUp.objects.get(payment_intent_id=payment_intent["id"]).status == TopUp.Status.COMPLETED


@pytest.mark.django_db
def test_an_organizations_endpoint_refuses_other_secrets_and_missing_signatures(
    api_client, anonymous_client, own_account, other_organization, customer, stripe_api, settings
):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    payment_intent = paid_topup(api_client, customer, stripe_api)
    event = payment_intent_event(payment_intent, event_id="evt_forged")

    other_orgs_secret = deliver_to(anonymous_client, own_account, event, OTHER_SECRET)
    platform_secret = deliver_to(anonymous_client, own_account, event, WEBHOOK_SECRET)
    wrong_secret = deliver_to(anonymous_client, own_account, event, "whsec_guess")
    unsigned = anonymous_client.post(org_webhook(own_account), json.dumps(event), content_type="application/json")

    for response in (other_orgs_secret, platform_secret, wrong_secret, unsigned):
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_signature"
    assert not StripeWebhookEvent.objects.exists()
    assert credit_balance(customer=customer) == 0
    assert TopUp.objects.get(payment_intent_id=payment_intent["id"]).status == TopUp.Status.PENDING


@pytest.mark.django_db
def test_a_signed_event_about_another_organizations_payment_grants_nothing(
    api_client, anonymous_client, own_account, other_organization, customer, stripe_api
):
    """The other organization signs, with its own secret, an event naming our PaymentIntent: stored
    as ignored on its endpoint, nothing granted; the same event id still works on our endpoint."""
    payment_intent = paid_topup(api_client, customer, stripe_api)
    event = payment_intent_event(payment_intent, event_id="evt_shared_id")

    sneaky = deliver_to(anonymous_client, other_organization, event, OTHER_SECRET)

    assert sneaky.status_code == 200
    assert sneaky.json()["status"] == "ignored"
    row = StripeWebhookEvent.objects.get(endpoint_organization=other_organization)
    assert (row.organization_id, row.error) == (None, "not a top-up of this organization")
    assert credit_balance(customer=customer) == 0
    assert TopUp.objects.get(payment_intent_id=payment_intent["id"]).status == TopUp.Status.PENDING

    genuine = deliver_to(anonymous_client, own_account, event, ORG_SECRET)

    assert genuine.json()["status"] == "processed"
    assert credit_balance(customer=customer) == 30_000_000
    assert StripeWebhookEvent.objects.filter(event_id="evt_shared_id").count() == 2


@pytest.mark.django_db
def test_unknown_organizations_and_organizations_without_a_signing_secret_are_a_404(
    anonymous_client, stripe_organization, settings
):
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    event = {"id": "evt_nowhere", "type": "customer.created", "data": {"object": {}}}
    body, header = signed(event, WEBHOOK_SECRET)
    unknown = OrganizationFactory.build()  # never saved
    bare = OrganizationFactory(name="No Stripe")

    for path in (
        f"{WEBHOOK}/{unknown.pk}",
        f"{WEBHOOK}/not-a-uuid",
        org_webhook(bare),  # no payment account
        org_webhook(stripe_organization),  # a payment account without a signing secret
    ):
        response = anonymous_client.post(path, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    assert not StripeWebhookEvent.objects.exists()
