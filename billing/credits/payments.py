"""The Stripe calls behind top-ups, made with the organization's own key through `stripe_client`.

Everything returns plain dicts/dataclasses so services never hold StripeObjects. The PaymentIntent
parameters stay inside what both Stripe and localstripe accept (the card is saved for off-session
use through `payment_method_options.card.setup_future_usage`, which Stripe honours and localstripe
tolerates; localstripe does not attach the card itself, so `remember_card` attaches it when needed).
"""

from dataclasses import dataclass

import stripe
from django.db import transaction

from accounts.api.errors import ApiError
from accounts.stripe_client import stripe_client
from events.models import Customer


class StripeNotConfigured(ApiError):
    status_code = 409
    default_code = "stripe_not_configured"
    default_detail = (
        "This organization has no Stripe account for payments; set one with PUT /api/v1/billing/stripe-account."
    )


class StripeUnavailable(ApiError):
    status_code = 502
    default_code = "stripe_error"
    default_detail = "Stripe did not complete the request."


class CardDeclined(ApiError):
    status_code = 402
    default_code = "card_declined"
    default_detail = "The card was declined."


@dataclass(frozen=True)
class Card:
    payment_method_id: str
    brand: str | None
    last4: str | None


def client_for(organization) -> stripe.StripeClient:
    from billing.credits.selectors import stripe_account

    account = stripe_account(organization=organization)
    if account is None:
        raise StripeNotConfigured()
    return stripe_client(account.secret_key)


def ensure_stripe_customer(*, client: stripe.StripeClient, customer: Customer) -> str:
    """The customer's Stripe id, creating the Stripe customer (with `metadata[customer_id]`, the
    linking convention of seed 000) the first time. The customer row is locked meanwhile, so two
    concurrent first top-ups create one Stripe customer."""
    if customer.stripe_customer_id:
        return customer.stripe_customer_id
    with transaction.atomic():
        locked = Customer.objects.select_for_update().get(pk=customer.pk)
        if not locked.stripe_customer_id:
            params = {"metadata": {"customer_id": locked.external_id}}
            if locked.name:
                params["name"] = locked.name
            if locked.email:
                params["email"] = locked.email
            created = client.v1.customers.create(
                params=params, options={"idempotency_key": f"tl-customer-{locked.uuid}"}
            )
            Customer.objects.filter(pk=locked.pk).update(stripe_customer_id=created.id)
            locked.stripe_customer_id = created.id
    customer.stripe_customer_id = locked.stripe_customer_id
    return customer.stripe_customer_id


def default_card(*, client: stripe.StripeClient, stripe_customer_id: str | None) -> Card | None:
    """The customer's default payment method (`invoice_settings.default_payment_method`), if any."""
    if not stripe_customer_id:
        return None
    stripe_customer = client.v1.customers.retrieve(stripe_customer_id).to_dict()
    payment_method_id = (stripe_customer.get("invoice_settings") or {}).get("default_payment_method")
    if isinstance(payment_method_id, dict):
        payment_method_id = payment_method_id.get("id")
    if not payment_method_id:
        return None
    payment_method = client.v1.payment_methods.retrieve(payment_method_id).to_dict()
    card = payment_method.get("card") or {}
    return Card(payment_method_id=payment_method_id, brand=card.get("brand"), last4=card.get("last4"))


def create_payment_intent(
    *,
    client: stripe.StripeClient,
    amount_cents: int,
    stripe_customer_id: str,
    metadata: dict,
    card: Card | None,
    off_session: bool = False,
    idempotency_key: str | None = None,
) -> dict:
    """A USD PaymentIntent for a top-up. With a saved card it is confirmed at once (off-session for
    auto top-ups); without one the client confirms it with the returned client_secret."""
    params: dict = {
        "amount": amount_cents,
        "currency": "usd",
        "customer": stripe_customer_id,
        "metadata": metadata,
        "payment_method_types": ["card"],
    }
    if card is None:
        params["payment_method_options"] = {"card": {"setup_future_usage": "off_session"}}
    else:
        params["payment_method"] = card.payment_method_id
        params["confirm"] = True
        if off_session:
            params["off_session"] = True
    options = {"idempotency_key": idempotency_key} if idempotency_key else {}
    return client.v1.payment_intents.create(params=params, options=options).to_dict()


def retrieve_payment_intent(*, client: stripe.StripeClient, payment_intent_id: str) -> dict:
    return client.v1.payment_intents.retrieve(payment_intent_id).to_dict()


def cancel_payment_intent(*, client: stripe.StripeClient, payment_intent_id: str) -> None:
    client.v1.payment_intents.cancel(payment_intent_id)


def remember_card(*, client: stripe.StripeClient, stripe_customer_id: str, payment_method_id: str) -> None:
    """Make the card that paid a top-up the customer's default, unless it already has one."""
    if default_card(client=client, stripe_customer_id=stripe_customer_id) is not None:
        return
    payment_method = client.v1.payment_methods.retrieve(payment_method_id).to_dict()
    if payment_method.get("customer") != stripe_customer_id:
        client.v1.payment_methods.attach(payment_method_id, params={"customer": stripe_customer_id})
    client.v1.customers.update(
        stripe_customer_id, params={"invoice_settings": {"default_payment_method": payment_method_id}}
    )


def payment_error_message(payment_intent: dict) -> str:
    error = payment_intent.get("last_payment_error") or {}
    return error.get("message") or error.get("code") or ""
