"""Without a worker (eager Celery, `make demo`), usage marks contracted customers' drafts stale and
every read of a draft recomputes the stale ones first: the ingest request does not rate 100 drafts,
and nobody ever reads a draft that misses committed usage."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import invoicing, services, tasks
from billing.credits.models import CreditEntry
from billing.credits.services import credit_add
from billing.models import Invoice, StaleDrafts
from tests.billing.test_recompute import _metronome_event
from tests.factories import CustomerFactory

pytestmark = pytest.mark.clock  # drafts of the current month: .ci/run reruns these at 00:30, 23:59:59, a month's end


def _month_start():
    return timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _event(customer, key: str) -> dict:
    return _metronome_event(customer.external_id, key, tokens=2_000_000)  # $1.00 at 50 cents per million


@pytest.fixture
def contracted(organization, customer, seed_pricing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.contract_create(
            organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
            starting_at=_month_start(),
        )
    return customer


def _draft(customer) -> Invoice:
    return Invoice.objects.get(customer=customer, status=Invoice.Status.DRAFT, period_start=_month_start())


def _ingest(api_client, events, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client.post("/api/v1/ingest", events, format="json")
    assert response.status_code == 200, response.content


def test_ingest_marks_the_contracted_customers_drafts_stale_and_recomputes_none(
    organization, contracted, api_client, django_capture_on_commit_callbacks
):
    other = CustomerFactory(organization=organization, external_id="no-contract")
    before = _draft(contracted)

    _ingest(api_client, [_event(contracted, "a"), _event(other, "b")], django_capture_on_commit_callbacks)

    after = _draft(contracted)
    assert (after.total_cents, after.computed_at) == (before.total_cents, before.computed_at)  # not rated now
    assert list(StaleDrafts.objects.values_list("customer_id", "organization_id")) == [(contracted.pk, organization.pk)]


@pytest.mark.parametrize(
    "read",
    [
        lambda client, customer: client.get(f"/api/v1/customers/{customer.uuid}/invoices", {"status": "draft"}),
        lambda client, customer: client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-preview"),
        lambda client, customer: client.get(f"/v1/customers/{customer.uuid}/invoices"),  # Metronome's list
    ],
    ids=["invoices", "invoice-preview", "metronome-invoices"],
)
def test_reading_a_draft_recomputes_it_first(contracted, api_client, django_capture_on_commit_callbacks, read):
    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)

    response = read(api_client, contracted)

    assert response.status_code == 200, response.content
    assert b"100" in response.content  # 2M tokens at 50 cents per million: $1.00, 100 cents
    assert _draft(contracted).total_cents == 100
    assert not StaleDrafts.objects.exists()


def test_the_customer_invoice_page_and_the_admin_show_the_usage(
    contracted, api_client, admin_client_logged_in, client, django_capture_on_commit_callbacks
):
    draft = _draft(contracted)
    token = services.invoice_link_token(invoice=draft, expires_at=timezone.now() + timedelta(days=1))
    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)

    page = client.get(reverse("billing:invoice-page", args=[token]))
    assert page.status_code == 200 and b"$1.00" in page.content
    assert not StaleDrafts.objects.exists()

    _ingest(api_client, [_event(contracted, "b")], django_capture_on_commit_callbacks)
    change = admin_client_logged_in.get(reverse("admin:billing_invoice_change", args=[draft.pk]))
    assert change.status_code == 200 and b"$2.00" in change.content

    _ingest(api_client, [_event(contracted, "c")], django_capture_on_commit_callbacks)
    listing = admin_client_logged_in.get(reverse("admin:billing_invoice_changelist"))
    assert listing.status_code == 200 and b"$3.00" in listing.content
    assert not StaleDrafts.objects.exists()


def test_margins_revenue_and_the_collection_reconciliation_refresh_the_organizations_drafts(
    organization, contracted, api_client, django_capture_on_commit_callbacks
):
    from billing.collection.selectors import reconciliation_facts
    from margins.selectors import invoice_revenue_by_customer

    period = f"{_month_start():%Y-%m}"
    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)
    assert invoice_revenue_by_customer(organization=organization, periods=[period]) == {
        (contracted.external_id, period): 1_000_000  # microdollars: $1.00
    }

    _ingest(api_client, [_event(contracted, "b")], django_capture_on_commit_callbacks)
    (facts,) = reconciliation_facts(organization=organization, period=period)
    assert facts.metered_cents == 200
    assert not StaleDrafts.objects.exists()


def test_customers_with_credit_are_recomputed_at_ingest(
    contracted, api_client, django_capture_on_commit_callbacks
):
    """Their balance and auto top-up follow their drafts, so those cannot wait for a read."""
    with django_capture_on_commit_callbacks(execute=True):
        credit_add(customer=contracted, kind=CreditEntry.Kind.GRANT, amount_microdollars=500_000, reference="g1")

    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)

    draft = _draft(contracted)
    assert (draft.total_cents, draft.credits_applied_cents, draft.amount_due_cents) == (100, 50, 50)
    assert not StaleDrafts.objects.exists()


def test_any_recompute_of_a_customer_takes_its_mark(contracted, api_client, django_capture_on_commit_callbacks):
    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)

    assert tasks.recompute_draft_invoices([contracted.pk]) == 1

    assert not StaleDrafts.objects.exists()
    assert _draft(contracted).total_cents == 100


def test_a_read_with_nothing_stale_costs_one_query(organization, contracted):
    with CaptureQueriesContext(connection) as queries:
        assert invoicing.drafts_refresh(organization_id=organization.pk, customer_ids=[contracted.pk]) == 0
    assert len(queries) == 1


def test_a_refresh_that_fails_keeps_the_mark_and_the_read_answers_with_the_stored_draft(
    contracted, api_client, django_capture_on_commit_callbacks, monkeypatch, caplog
):
    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)

    def broken(drafts):
        raise RuntimeError("a bug met by this customer's data")

    monkeypatch.setattr(invoicing, "_drafts_lines", broken)
    response = api_client.get(f"/api/v1/customers/{contracted.uuid}/invoices", {"status": "draft"})

    assert response.status_code == 200
    assert [invoice["total_cents"] for invoice in response.json()["data"]] == [0]
    assert StaleDrafts.objects.filter(customer=contracted).exists()  # rolled back with the failed recompute
    assert "not refreshed before a read" in caplog.text

    monkeypatch.undo()
    response = api_client.get(f"/api/v1/customers/{contracted.uuid}/invoices", {"status": "draft"})
    assert [invoice["total_cents"] for invoice in response.json()["data"]] == [100]


def test_a_batch_over_many_contracted_customers_costs_the_same_statements_as_over_one(
    organization, seed_pricing, api_client, django_capture_on_commit_callbacks
):
    customers = [CustomerFactory(organization=organization, external_id=f"c{n}") for n in range(20)]
    with django_capture_on_commit_callbacks(execute=True):
        for customer in customers:
            services.contract_create(
                organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
                starting_at=_month_start(),
            )

    def statements(batch, key):
        with CaptureQueriesContext(connection) as queries:
            _ingest(api_client, [_event(customer, f"{key}{n}") for n, customer in enumerate(batch)],
                    django_capture_on_commit_callbacks)
        return len(queries)

    statements(customers[:1], "warm")
    assert statements(customers, "many") == statements(customers[:1], "one")
    assert StaleDrafts.objects.count() == 20
    assert not Invoice.objects.filter(customer__in=customers, total_cents__gt=0).exists()


@pytest.mark.django_db(transaction=True)
def test_usage_marked_while_a_recompute_holds_the_mark_is_marked_again_once_it_commits(
    organization, customer, seed_pricing
):
    """A recompute takes its customers' marks before it reads usage; usage committed after that read
    marks them again: the insert waits for the recompute's transaction, then the mark is there."""
    import threading

    from django.db import transaction

    from billing import recompute

    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=_month_start()
    )
    recompute.drafts_mark_stale([customer.pk])
    taken, release, marked = threading.Event(), threading.Event(), threading.Event()

    def recompute_in_progress():
        try:
            with transaction.atomic():
                recompute.stale_marks_take([customer.pk])
                taken.set()
                release.wait(10)
        finally:
            connection.close()

    def usage_commits():
        try:
            recompute.drafts_mark_stale([customer.pk])
            marked.set()
        finally:
            connection.close()

    holder = threading.Thread(target=recompute_in_progress)
    holder.start()
    assert taken.wait(10)
    marker = threading.Thread(target=usage_commits)
    marker.start()
    assert not marked.wait(0.5)  # waits for the recompute's transaction
    release.set()
    holder.join(10)
    marker.join(10)
    assert marked.is_set()
    assert StaleDrafts.objects.filter(customer=customer).exists()


def test_the_margins_customer_page_shows_the_usage(
    organization, contracted, api_client, django_capture_on_commit_callbacks
):
    from django.test import Client

    from accounts.models import Role
    from tests.factories import MembershipFactory

    _ingest(api_client, [_event(contracted, "a")], django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(MembershipFactory(organization=organization, role=Role.MEMBER).user)

    page = client.get(f"/dashboard/customers/{contracted.external_id}")

    assert page.status_code == 200
    assert "$1.00" in page.content.decode() and "so far" in page.content.decode()
    assert not StaleDrafts.objects.exists()
