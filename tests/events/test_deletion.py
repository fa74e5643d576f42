"""Deleting a customer or an organization takes the ledger in bounded slices (events.services.deletion,
accounts.deletion): each slice commits on its own under the exclusive ledger lock, nothing is deleted
for a deletion that would be refused, and the admin's confirmation page does not list the ledger."""

from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.db.models import ProtectedError, Sum
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.deletion import organization_delete
from accounts.models import Organization
from events.models import Customer, OrganizationUsageDay, UsageDay, UsageEvent, UsageEventKey, VendorResponse
from events.services.deletion import customer_delete
from tests.events.conftest import md_event
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def _ingest(client, customer_id: str, count: int, prefix: str) -> None:
    body = {"events": [md_event(customer_id, key=f"{prefix}-{n}") for n in range(count)]}
    assert client.post("/api/v1/events", body, format="json").status_code == 200


@pytest.fixture
def ledger(api_client, other_client, price_catalog, organization):
    """Customer "big" with 7 events, "small" with 1; another organization's "big" with 2."""
    _ingest(api_client, "big", 7, "big")
    _ingest(api_client, "small", 1, "small")
    _ingest(other_client, "big", 2, "other")
    return Customer.objects.get(organization=organization, external_id="big")


def _this_month() -> datetime:
    """A contract start that is valid whenever the test runs (whole hours, not back-dated)."""
    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _organization_events(organization) -> int:
    total = OrganizationUsageDay.objects.filter(organization=organization).aggregate(n=Sum("event_count"))["n"]
    return int(total or 0)


def test_a_customer_is_deleted_with_its_ledger_in_slices(ledger, organization):
    with CaptureQueriesContext(connection) as queries:
        customer_delete(customer=ledger, slice_size=3)

    slices = [query for query in queries.captured_queries if "WITH doomed AS" in query["sql"]]
    assert len(slices) == 3  # 3 + 3 + 1 (the short slice ends it)
    assert not Customer.objects.filter(pk=ledger.pk).exists()
    assert not UsageEvent.objects.filter(customer_id=ledger.pk).exists()
    assert not VendorResponse.objects.filter(event__customer_id=ledger.pk).exists()
    assert not UsageEventKey.objects.filter(organization_id=organization.pk, idempotency_key__contains="big-").exists()
    assert not UsageDay.objects.filter(customer_id=ledger.pk).exists()
    assert _organization_events(organization) == 1  # only "small" is left in the organization's rollups
    # Nothing of the other customer or the other organization went with it.
    assert UsageEvent.objects.filter(organization=organization).count() == 1
    assert UsageEvent.objects.exclude(organization=organization).count() == 2
    assert UsageEventKey.objects.filter(idempotency_key__contains="other-").count() == 2


def test_a_resend_after_the_deletion_is_a_new_event(ledger, api_client):
    customer_delete(customer=ledger, slice_size=2)

    _ingest(api_client, "big", 1, "big")

    resent = UsageEvent.objects.filter(customer__external_id="big", customer__organization=ledger.organization)
    assert resent.count() == 1


@pytest.mark.django_db(transaction=True)
def test_each_slice_commits_on_its_own_and_a_stopped_deletion_can_be_run_again(ledger, organization):
    lock = "events.services.deletion.ledger_lock_exclusive"
    with mock.patch(lock, side_effect=[None, RuntimeError("stopped")]), pytest.raises(RuntimeError):
        customer_delete(customer=ledger, slice_size=3)

    # The first slice is committed, the customer is still there, and its rollups still hold its usage.
    assert UsageEvent.objects.filter(customer_id=ledger.pk).count() == 4
    assert Customer.objects.filter(pk=ledger.pk).exists()
    assert _organization_events(organization) == 8

    customer_delete(customer=Customer.objects.get(pk=ledger.pk), slice_size=3)

    assert not Customer.objects.filter(pk=ledger.pk).exists()
    assert _organization_events(organization) == 1


def test_a_protected_customer_keeps_its_ledger(ledger, organization):
    from billing import services

    rate_card = services.rate_card_create(organization=organization, name="Standard")
    services.contract_create(
        organization=organization, customer=ledger, rate_card=rate_card, starting_at=_this_month()
    )

    with pytest.raises(ProtectedError):
        customer_delete(customer=ledger, slice_size=3)

    assert UsageEvent.objects.filter(customer_id=ledger.pk).count() == 7
    assert Customer.objects.filter(pk=ledger.pk).exists()


def test_an_organization_is_deleted_with_its_ledger_in_slices(ledger, organization):
    organization_id = organization.pk
    with CaptureQueriesContext(connection) as queries:
        organization_delete(organization=organization)

    assert [query for query in queries.captured_queries if "WITH doomed AS" in query["sql"]]
    assert not Organization.objects.filter(pk=organization_id).exists()
    assert not UsageEvent.objects.filter(organization_id=organization_id).exists()
    assert not UsageEventKey.objects.filter(organization_id=organization_id).exists()
    assert not Customer.objects.filter(organization_id=organization_id).exists()
    assert UsageEvent.objects.count() == 2  # the other organization's
    assert UsageEventKey.objects.count() == 2


def test_an_organization_deletion_also_frees_the_keys_of_detached_months(ledger, organization):
    """A detached month's events left the ledger but their keys stay (a resend is still a duplicate);
    they go with the organization."""
    organization_id = organization.pk
    UsageEventKey.objects.create(
        organization_id=organization_id, idempotency_key="detached-1", event_id=10**12,
        occurred_at=datetime(2024, 1, 5, tzinfo=UTC),
    )

    organization_delete(organization=organization)

    assert not UsageEventKey.objects.filter(organization_id=organization_id).exists()
    assert UsageEventKey.objects.count() == 2


def test_the_admin_confirmation_page_names_the_ledger_without_reading_it(admin_client_logged_in, ledger):
    url = f"/admin/events/customer/{ledger.pk}/delete/"
    with CaptureQueriesContext(connection) as queries:
        page = admin_client_logged_in.get(url)

    assert page.status_code == 200
    text = page.content.decode()
    assert "Usage events: all of them, deleted first, in slices of 5,000 events" in text
    # The rollups too (their references to the customer are hidden relations, related_name "+").
    assert "Usage days: all of them, deleted in one statement" in text
    assert "Usage rollups: all of them, deleted in one statement" in text
    assert "summarize for" not in text  # no event is listed
    assert not [query for query in queries.captured_queries if "events_usageevent" in query["sql"]]


def test_a_protected_customer_is_refused_on_the_admin_page(admin_client_logged_in, ledger, organization):
    from billing import services

    rate_card = services.rate_card_create(organization=organization, name="Standard")
    services.contract_create(
        organization=organization, customer=ledger, rate_card=rate_card, starting_at=_this_month()
    )
    url = f"/admin/events/customer/{ledger.pk}/delete/"

    page = admin_client_logged_in.get(url)
    admin_client_logged_in.post(url, {"post": "yes"})

    assert "Cannot delete customer" in page.content.decode()
    assert "Contract" in page.content.decode()
    assert Customer.objects.filter(pk=ledger.pk).exists()
    assert UsageEvent.objects.filter(customer_id=ledger.pk).count() == 7


def test_the_admin_deletes_a_customer_after_its_own_transaction(
    admin_client_logged_in, ledger, organization, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged_in.post(f"/admin/events/customer/{ledger.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Customer.objects.filter(pk=ledger.pk).exists()
    assert UsageEvent.objects.filter(organization=organization).count() == 1


def test_the_admin_deletes_organizations_from_the_list(
    admin_client_logged_in, ledger, organization, django_capture_on_commit_callbacks
):
    spare = OrganizationFactory(name="Spare")
    ids = [organization.pk, spare.pk]
    page = admin_client_logged_in.post(
        "/admin/accounts/organization/",
        {"action": "delete_selected", "_selected_action": [organization.pk, spare.pk]},
    )
    assert "Usage events: all of them" in page.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        admin_client_logged_in.post(
            "/admin/accounts/organization/",
            {"action": "delete_selected", "_selected_action": ids, "post": "yes"},
        )

    assert not Organization.objects.filter(pk__in=ids).exists()
    assert not UsageEvent.objects.filter(organization_id=ids[0]).exists()
    assert UsageEvent.objects.count() == 2


def test_money_is_untouched_by_the_summary(ledger):
    """The rollups the summary does not list still go with the customer (one statement each)."""
    assert UsageDay.objects.filter(customer_id=ledger.pk).aggregate(c=Sum("cost_microdollars"))["c"] == Decimal(44800)
    customer_delete(customer=ledger)
    assert not UsageDay.objects.filter(customer_id=ledger.pk).exists()
