"""The one way every app builds a Stripe client, so the API base (localstripe in tests) is set once."""

import stripe
from django.conf import settings


def stripe_client(api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": settings.STRIPE_API_BASE},
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
    )
