"""Helpers and fixtures for the credit tests (imported by the test modules that use them)."""

import hashlib
import hmac
import json
import time

import pytest

from accounts.stripe_client import stripe_client
from billing.credits.services import stripe_account_set
from tests.factories import CustomerFactory

STRIPE_KEY = "sk_test_tokenledger_credits"
WEBHOOK_SECRET = "whsec_test_credits"
VISA = "4242424242424242"
DECLINED_ON_CHARGE = "4000000000000341"  # attaches fine, every charge is declined
NEEDS_AUTHENTICATION = "4000002760003184"  # 3-D Secure required


@pytest.fixture
def stripe_organization(organization, localstripe):
    """The test organization with a Stripe account (localstripe) for payments."""
    stripe_account_set(organization=organization, secret_key=STRIPE_KEY)
    return organization


@pytest.fixture
def stripe_api(localstripe):
    """A Stripe client on localstripe, standing in for the customer's browser (Stripe.js) in tests."""
    return stripe_client(STRIPE_KEY)


def globex(organization):
    """The customer the credit tests top up (billing's conftest has its own `customer` fixture, so each
    credit test module overrides `customer` with this one)."""
    return CustomerFactory(organization=organization, external_id="cust_123", name="Globex", email="ap@globex.test")


def card(stripe, number: str = VISA) -> str:
    payment_method = stripe.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    return payment_method.id


def pay_in_browser(stripe, payment_intent_id: str, number: str = VISA) -> str:
    """What Stripe.js does with the client secret: attach a card to the PaymentIntent and confirm it."""
    stripe.v1.payment_intents.update(payment_intent_id, params={"payment_method": card(stripe, number)})
    return stripe.v1.payment_intents.confirm(payment_intent_id).status


def save_default_card(stripe, stripe_customer_id: str, number: str = VISA) -> str:
    payment_method_id = card(stripe, number)
    stripe.v1.payment_methods.attach(payment_method_id, params={"customer": stripe_customer_id})
    stripe.v1.customers.update(
        stripe_customer_id, params={"invoice_settings": {"default_payment_method": payment_method_id}}
    )
    return payment_method_id


def signed(payload: dict | str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[bytes, str]:
    """A webhook body and its Stripe-Signature header (t=…,v1=HMAC-SHA256 of "t.body"), as Stripe signs."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), f"t={timestamp},v1={signature}"


def payment_intent_event(payment_intent: dict, event_type: str = "payment_intent.succeeded", event_id: str = ""):
    return {
        "id": event_id or f"evt_{payment_intent['id']}_{event_type}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": payment_intent},
    }
