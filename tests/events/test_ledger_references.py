"""The ledger's customer reference is guarded by the ledger lock and a trigger instead of a foreign
key constraint (events.locks, migration 0007): no event can outlive its customer."""

import threading

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.utils import timezone

from events.locks import ledger_lock_shared
from events.models import Customer, UsageEvent, VendorResponse
from tests.factories import CustomerFactory


def _event(customer, key: str) -> UsageEvent:
    now = timezone.now()
    return UsageEvent.objects.create(
        organization=customer.organization,
        customer=customer,
        event_type="chat",
        occurred_at=now,
        received_at=now,
        idempotency_key=key,
        source=UsageEvent.Source.INTERNAL,
    )


def _delete_while_an_ingest_is_open(ingest, delete) -> dict:
    """Run `ingest()` in a transaction of its own thread and keep it open while `delete()` runs in
    another thread, which must wait for it; then let the ingest commit. Returns the delete's outcome:
    {"deleted": True} or {"error": the IntegrityError}."""
    stored, release, deleted = threading.Event(), threading.Event(), threading.Event()
    outcome: dict = {}

    def ingesting_thread() -> None:
        try:
            with transaction.atomic():
                ingest()
                stored.set()
                release.wait(timeout=30)
        finally:
            connections.close_all()

    def deleting_thread() -> None:
        try:
            delete()
            outcome["deleted"] = True
        except IntegrityError as error:
            outcome["error"] = error
        finally:
            deleted.set()
            connections.close_all()

    ingesting = threading.Thread(target=ingesting_thread)
    ingesting.start()
    assert stored.wait(timeout=30)
    deleting = threading.Thread(target=deleting_thread)
    deleting.start()

    assert not deleted.wait(timeout=1.0)  # waits for the open ingest
    release.set()
    ingesting.join(timeout=30)
    deleting.join(timeout=30)
    return outcome


def test_deleting_a_customer_through_django_deletes_its_usage(organization):
    customer = CustomerFactory(organization=organization)
    event = _event(customer, "a")
    VendorResponse.objects.create(organization=organization, event=event, model="m", input_tokens=1)

    customer.delete()

    assert not UsageEvent.objects.exists()
    assert not VendorResponse.objects.exists()


def test_the_database_refuses_to_delete_a_customer_that_still_has_usage(organization):
    customer = CustomerFactory(organization=organization)
    _event(customer, "a")

    with (
        pytest.raises(IntegrityError, match="still has usage events"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM events_customer WHERE id = %s", [customer.pk])

    assert Customer.objects.filter(pk=customer.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_customer_deleted_while_an_ingest_is_open_waits_for_it_and_keeps_its_usage(organization):
    """The race a foreign key constraint used to settle: an ingest resolved the customer and is
    storing its event while someone deletes the customer."""
    customer = CustomerFactory(organization=organization)

    def ingest() -> None:
        ledger_lock_shared(organization.pk)  # as ingest's first round trip
        _event(customer, "in-flight")

    outcome = _delete_while_an_ingest_is_open(ingest, lambda: Customer.objects.get(pk=customer.pk).delete())

    assert "still has usage events" in str(outcome.get("error"))  # it read the usage before the ingest committed
    assert UsageEvent.objects.filter(customer_id=customer.pk).count() == 1
    assert Customer.objects.filter(pk=customer.pk).exists()
    Customer.objects.get(pk=customer.pk).delete()  # once nothing is in flight, it goes with its usage
    assert not UsageEvent.objects.exists()


def test_deleting_an_organization_deletes_its_customers_and_their_usage(organization):
    customer = CustomerFactory(organization=organization)
    event = _event(customer, "a")
    VendorResponse.objects.create(organization=organization, event=event, model="m", input_tokens=1)
    other = CustomerFactory()
    _event(other, "kept")

    organization.delete()

    assert list(UsageEvent.objects.values_list("idempotency_key", flat=True)) == ["kept"]
    assert not VendorResponse.objects.exists()
    assert list(Customer.objects.all()) == [other]


def _price(slug: str = "acme/model"):
    from datetime import UTC, datetime
    from decimal import Decimal

    from costcalc.models import ModelPrice

    return ModelPrice.objects.create(
        slug=slug,
        vendor="acme",
        display_name=slug,
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("1"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
        source="manual",
    )


def test_the_database_refuses_to_delete_a_price_that_priced_recorded_usage(organization):
    price, unused = _price(), _price("acme/unused")
    event = _event(CustomerFactory(organization=organization), "a")
    VendorResponse.objects.create(organization=organization, event=event, model="acme/model", price=price)

    with (
        pytest.raises(IntegrityError, match="priced recorded usage"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM costcalc_modelprice WHERE id = %s", [price.pk])
    unused.delete()  # a price nothing used goes as before

    assert list(type(price).objects.values_list("slug", flat=True)) == ["acme/model"]


@pytest.mark.django_db(transaction=True)
def test_a_price_deleted_while_an_ingest_stores_a_call_priced_with_it_waits_and_stays(organization):
    from events.locks import INGEST_LOCKS_SQL

    price = _price()
    customer = CustomerFactory(organization=organization)

    def ingest() -> None:
        with connection.cursor() as cursor:  # as ingest's first round trip
            cursor.execute(INGEST_LOCKS_SQL, {"organization": organization.pk})
        event = _event(customer, "in-flight")
        VendorResponse.objects.create(organization=organization, event=event, model="acme/model", price=price)

    def delete() -> None:
        with connection.cursor() as cursor:  # past Django's PROTECT check, which cannot see the open ingest
            cursor.execute("DELETE FROM costcalc_modelprice WHERE id = %s", [price.pk])

    outcome = _delete_while_an_ingest_is_open(ingest, delete)

    assert "priced recorded usage" in str(outcome.get("error"))
    assert type(price).objects.filter(pk=price.pk).exists()
    assert VendorResponse.objects.get().price_id == price.pk
