"""Read access to customers and the ledger for upper apps (billing reads through these, never the models)."""

import uuid
from collections.abc import Iterator

from django.db.models import QuerySet

from .models import Customer, UsageEvent


def customer_get(*, organization, customer_id: str) -> Customer | None:
    """A customer of ``organization`` by our uuid or by the organization's external id (None if absent)."""
    customers = Customer.objects.filter(organization=organization)
    try:
        return customers.get(uuid=uuid.UUID(str(customer_id)))
    except (ValueError, Customer.DoesNotExist):
        return customers.filter(external_id=customer_id).first()


def customer_list(*, organization) -> QuerySet[Customer]:
    return Customer.objects.filter(organization=organization)


def usage_event_rows(*, organization, event_types=None, chunk_size: int = 5000) -> Iterator[tuple]:
    """(id, customer_id, event_type, occurred_at, received_at, properties) of the ledger, streamed by id."""
    events = UsageEvent.objects.filter(organization=organization)
    if event_types is not None:
        events = events.filter(event_type__in=list(event_types))
    yield from (
        events.order_by("id")
        .values_list("id", "customer_id", "event_type", "occurred_at", "received_at", "properties")
        .iterator(chunk_size=chunk_size)
    )
