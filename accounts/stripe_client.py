"""The one way every app builds a Stripe client, so the API base (localstripe in tests) is set once."""

import time

import stripe
from django.conf import settings


def stripe_client(api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )


def construct_webhook_event(body: bytes, signature_header: str, secret: str) -> stripe.Event:
    """`stripe.Webhook.construct_event`, which refuses timestamps older than the tolerance (5 minutes),
    plus the other side: a timestamp more than the tolerance in the future is refused too (a signed
    event with a far-future timestamp would otherwise stay replayable for as long). Raises
    `stripe.SignatureVerificationError`."""
    event = stripe.Webhook.construct_event(body, signature_header, secret)
    timestamps = [
        item.split("=", 1)[1] for item in signature_header.split(",") if item.strip().startswith("t=")
    ]
    tolerance = stripe.Webhook.DEFAULT_TOLERANCE
    if any(int(value) > time.time() + tolerance for value in timestamps):
        raise stripe.SignatureVerificationError("Timestamp is in the future beyond the tolerance", signature_header)
    return event
