"""Stripe webhook events, stored as rows with status and error before and after handling: top-ups
(payment_intent.*) here, other types by the handler registered for them (`register_event_handler`:
collection's invoice.*), so every billing event shares one signed endpoint and one log.

Stripe delivers at least once and in any order. A redelivered event id updates its row (`deliveries`)
and is handled again only if it has not been handled yet; handling itself is idempotent anyway
(`topup_settle` credits a PaymentIntent once and never undoes a completed top-up).
"""

import logging
from collections.abc import Callable, Iterable

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.credits import services
from billing.credits.models import StripeWebhookEvent, TopUp

logger = logging.getLogger(__name__)

PAYMENT_INTENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
}

# Other event types handled by other parts of billing (e.g. collection: invoice.*), registered from
# BillingConfig.ready(): handler(event=, endpoint_organization=) -> (status, organization_id, note).
EventHandler = Callable[..., tuple[str, object, str]]
_handlers: dict[str, EventHandler] = {}


def register_event_handler(event_types: Iterable[str], handler: EventHandler) -> None:
    for event_type in event_types:
        _handlers[event_type] = handler


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def event_problem(event: dict) -> str:
    """Why a signed body cannot be a Stripe event we store ("" when it can). Stripe never sends these;
    refusing them with a 400 beats a 500 that Stripe would redeliver for days."""
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        return "The event needs an id (a string of at most 255 characters)."
    if not isinstance(event.get("type", ""), str) or len(event.get("type", "")) > 255:
        return "The event type must be a string of at most 255 characters."
    if _has_nul(event):
        return "The event contains NUL characters."
    if event.get("type") in PAYMENT_INTENT_EVENTS and not isinstance((event.get("data") or {}).get("object"), dict):
        return "A payment_intent event needs data.object (the PaymentIntent)."
    if event.get("type") in _handlers and not isinstance((event.get("data") or {}).get("object"), dict):
        return f"A {event.get('type')} event needs data.object."
    return ""


def webhook_receive(*, event: dict, endpoint_organization=None) -> StripeWebhookEvent:
    """Store a verified event and handle it. Returns the row with its outcome.

    `endpoint_organization`: the organization whose own endpoint (and signing secret) received the
    event; it then only ever touches that organization's top-ups. None: the global endpoint.
    """
    with transaction.atomic():
        row, created = StripeWebhookEvent.objects.get_or_create(
            event_id=event["id"],
            endpoint_organization=endpoint_organization,
            defaults={"type": event.get("type", ""), "payload": event},
        )
        if not created:
            StripeWebhookEvent.objects.filter(pk=row.pk).update(deliveries=F("deliveries") + 1)
            row.refresh_from_db()
    if row.status in (StripeWebhookEvent.Status.PROCESSED, StripeWebhookEvent.Status.IGNORED):
        return row
    try:
        status, organization_id, note = _handle(event, endpoint_organization)
    except Exception as exc:
        logger.exception("Stripe webhook %s (%s) failed", event["id"], event.get("type"))
        StripeWebhookEvent.objects.filter(pk=row.pk).update(
            status=StripeWebhookEvent.Status.FAILED, error=f"{type(exc).__name__}: {exc}"
        )
    else:
        StripeWebhookEvent.objects.filter(pk=row.pk).update(
            status=status, organization_id=organization_id, error=note, processed_at=timezone.now()
        )
    row.refresh_from_db()
    return row


def _handle(event: dict, endpoint_organization) -> tuple[str, object, str]:
    event_type = event.get("type", "")
    if event_type in _handlers:
        return _handlers[event_type](event=event, endpoint_organization=endpoint_organization)
    if event_type not in PAYMENT_INTENT_EVENTS:
        return StripeWebhookEvent.Status.IGNORED, None, f"{event_type} is not handled by billing"
    payment_intent = (event.get("data") or {}).get("object") or {}
    topups = TopUp.objects.filter(payment_intent_id=payment_intent.get("id", ""))
    if endpoint_organization is not None:
        topups = topups.filter(organization=endpoint_organization)
    topup = topups.first()
    if topup is None:
        if endpoint_organization is not None:
            return StripeWebhookEvent.Status.IGNORED, None, "not a top-up of this organization"
        return StripeWebhookEvent.Status.IGNORED, None, "not a TokenLedger top-up"
    if event_type == "payment_intent.processing":
        return StripeWebhookEvent.Status.PROCESSED, topup.organization_id, ""
    services.topup_settle(payment_intent=payment_intent)
    return StripeWebhookEvent.Status.PROCESSED, topup.organization_id, ""
