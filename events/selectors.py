"""events' read API: customers, the usage ledger and the blocklist, always scoped to an organization."""

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from .budgeting import EMPTY_BLOCKED
from .dialects import KEY_PREFIXES
from .models import BlocklistState, Customer, UsageEvent, VendorResponse


def customer_find(*, organization, identifier: str) -> Customer | None:
    """The organization's customer named by any identifier: external id, ingest alias, our uuid or
    Stripe customer id (in that order of precedence); None when nothing matches."""
    query = Q(external_id=identifier) | Q(ingest_aliases__contains=[identifier]) | Q(stripe_customer_id=identifier)
    with contextlib.suppress(ValueError):
        query |= Q(uuid=uuid.UUID(identifier))
    matches = list(Customer.objects.filter(query, organization=organization)[:5])
    for test in (
        lambda c: c.external_id == identifier,
        lambda c: identifier in c.ingest_aliases,
        lambda c: str(c.uuid) == identifier.lower(),
        lambda c: c.stripe_customer_id == identifier,
    ):
        for customer in matches:
            if test(customer):
                return customer
    return None


def customer_get(*, organization, customer_id: str) -> Customer | None:
    """A customer of ``organization`` by our uuid or by the organization's external id (None if absent)."""
    if "\x00" in str(customer_id):  # PostgreSQL text cannot hold NUL: no customer has such an id
        return None
    customers = Customer.objects.filter(organization=organization)
    try:
        return customers.get(uuid=uuid.UUID(str(customer_id)))
    except (ValueError, Customer.DoesNotExist):
        return customers.filter(external_id=customer_id).first()


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


def usage_event_list(
    *,
    organization,
    customer: Customer | None = None,
    event_type: str | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
    idempotency_key: str | None = None,
) -> QuerySet[UsageEvent]:
    """The ledger, newest first, with customers and vendor responses loaded in two more queries."""
    events = UsageEvent.objects.filter(organization=organization)
    if customer is not None:
        events = events.filter(customer=customer)
    if event_type:
        events = events.filter(event_type=event_type)
    if occurred_after is not None:
        events = events.filter(occurred_at__gte=occurred_after)
    if occurred_before is not None:
        events = events.filter(occurred_at__lt=occurred_before)
    if idempotency_key:
        events = events.filter(idempotency_key__in=[prefix + idempotency_key for prefix in KEY_PREFIXES])
    return events.select_related("customer").prefetch_related(
        Prefetch("vendor_responses", queryset=VendorResponse.objects.order_by("id"))
    )


@dataclass(frozen=True, slots=True)
class Blocklist:
    version: int
    blocked: dict


def blocklist_get(*, organization) -> Blocklist:
    state = BlocklistState.objects.filter(organization=organization).values_list("version", "blocked").first()
    if state is None:
        return Blocklist(0, dict(EMPTY_BLOCKED))
    version, blocked = state
    return Blocklist(version, {**EMPTY_BLOCKED, **(blocked or {})})
