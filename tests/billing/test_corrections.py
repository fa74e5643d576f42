"""Late usage for a finalized period of an ended contract goes to a correction invoice (never nowhere)."""

from datetime import UTC, datetime

import pytest

from billing import invoicing, services
from billing.models import Invoice
from tests.billing.tokens import draft, send
from tests.factories import CustomerFactory

OCTOBER = datetime(2026, 10, 1, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_backdate_limit(settings):
    settings.BILLING_MAX_BACKDATE_MONTHS = 10_000
    settings.INVOICE_FINALIZE_GRACE_HOURS = 24


def tokens(customer, occurred_at, count):
    return draft(
        customer.external_id, occurred_at, event_type="langModel4", properties={"tokens": count, "user_id": "u1"}
    )


@pytest.fixture
def ended(organization, customer, seed_pricing):
    """A contract for October and November 2026 whose two invoices are finalized on 2 December."""
    contract = services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=OCTOBER,
        ending_before=DECEMBER,
    )
    send(
        organization,
        [tokens(customer, datetime(2026, 11, 10, 8, tzinfo=UTC), 2_000_000)],
        now=datetime(2026, 11, 10, 8, 1, tzinfo=UTC),
    )
    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 11, 20, tzinfo=UTC))
    finalized = invoicing.invoices_finalize_due(now=datetime(2026, 12, 2, 12, tzinfo=UTC))
    assert [invoice.total_cents for invoice in finalized] == [0, 100]
    return contract


def test_late_usage_of_an_ended_contract_goes_to_a_labelled_correction_invoice(
    organization, customer, ended, api_client
):
    november = Invoice.objects.get(contract=ended, period_start=datetime(2026, 11, 1, tzinfo=UTC))
    arrival = datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
    late = tokens(customer, datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC), 1_000_000)
    after_the_end = tokens(customer, datetime(2026, 12, 3, tzinfo=UTC), 5_000_000)  # no contract bills it

    outcome = send(organization, [late, after_the_end], now=arrival)
    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 12, 6, tzinfo=UTC))

    assert [o.status for o in outcome.outcomes] == ["created", "created"]
    correction = Invoice.objects.get(contract=ended, kind=Invoice.Kind.CORRECTION)
    assert (correction.period_start, correction.period_end) == (DECEMBER, datetime(2027, 1, 1, tzinfo=UTC))
    assert correction.status == Invoice.Status.DRAFT and correction.total_cents == 50
    (line,) = correction.lines.all()
    assert (line.period_start, line.period_end, line.quantity, line.amount_cents) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        DECEMBER,
        1,
        50,
    )
    november.refresh_from_db()
    assert (november.status, november.total_cents) == (Invoice.Status.FINALIZED, 100)  # never changed

    listed = api_client.get(f"/api/v1/customers/{customer.external_id}/invoices").json()["data"]
    assert (listed[0]["kind"], listed[0]["status"]) == ("correction", "draft")
    preview = api_client.get(f"/api/v1/customers/{customer.external_id}/billing/invoice-preview")
    assert preview.status_code == 404  # the ended contract has no current draft; the correction is not one

    finalized = invoicing.invoices_finalize_due(now=datetime(2027, 1, 2, 12, tzinfo=UTC))
    assert [(invoice.kind, invoice.total_cents) for invoice in finalized] == [("correction", 50)]
    assert finalized[0].number.startswith("INV-")


def test_no_correction_when_a_new_contract_bills_the_late_usage(organization, customer, seed_pricing, ended):
    successor = services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=DECEMBER
    )
    send(
        organization,
        [tokens(customer, datetime(2026, 11, 20, tzinfo=UTC), 1_000_000)],
        now=datetime(2026, 12, 5, 10, 30, tzinfo=UTC),
    )

    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 12, 6, tzinfo=UTC))

    assert not Invoice.objects.filter(kind=Invoice.Kind.CORRECTION).exists()
    december = Invoice.objects.get(contract=successor, period_start=DECEMBER)
    assert december.total_cents == 50  # billed in the hour it arrived, on the current draft


def test_usage_that_arrived_before_the_last_finalization_is_on_the_last_invoice(organization, customer, seed_pricing):
    contract = services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=OCTOBER,
        ending_before=DECEMBER,
    )
    send(
        organization,
        [tokens(customer, datetime(2026, 11, 30, 23, 30, tzinfo=UTC), 3_000_000)],
        now=datetime(2026, 12, 1, 6, tzinfo=UTC),
    )  # within the grace period

    invoicing.invoices_finalize_due(now=datetime(2026, 12, 2, 12, tzinfo=UTC))
    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 12, 6, tzinfo=UTC))

    november = Invoice.objects.get(contract=contract, period_start=datetime(2026, 11, 1, tzinfo=UTC))
    assert november.total_cents == 150
    assert not Invoice.objects.filter(kind=Invoice.Kind.CORRECTION).exists()


def test_a_correction_recomputed_with_other_customers_is_what_it_is_alone(organization, customer, seed_pricing, ended):
    other = CustomerFactory(organization=organization, external_id="other")
    services.contract_create(
        organization=organization, customer=other, rate_card=seed_pricing["rate_card"], starting_at=DECEMBER
    )
    send(
        organization,
        [tokens(customer, datetime(2026, 11, 20, tzinfo=UTC), 1_000_000),
         tokens(other, datetime(2026, 12, 4, tzinfo=UTC), 3_000_000)],
        now=datetime(2026, 12, 5, 10, 30, tzinfo=UTC),
    )
    now = datetime(2026, 12, 6, tzinfo=UTC)

    def lines():
        return {
            (invoice.customer_id, invoice.kind, invoice.total_cents): [
                (line.period_start, line.quantity, line.amount_cents) for line in invoice.lines.all()
            ]
            for invoice in Invoice.objects.filter(status=Invoice.Status.DRAFT)
        }

    together = invoicing.customers_drafts_recompute(customer_ids=[customer.pk, other.pk], now=now)
    in_one_pass = lines()
    Invoice.objects.filter(status=Invoice.Status.DRAFT).update(total_cents=0, amount_due_cents=0)
    invoicing.customer_drafts_recompute(customer_id=other.pk, now=now)
    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=now)

    assert sorted((invoice.kind, invoice.total_cents) for invoice in together) == [("correction", 50), ("regular", 150)]
    assert lines() == in_one_pass


def test_late_usage_is_found_by_the_ledger_watermark_whatever_its_arrival_time_says(organization, customer, ended):
    """Finalization records the organization's newest event id under the exclusive ledger lock; an
    event stored after it is late even when its arrival time (taken before it waited for the lock, or
    from a clock behind) is earlier than the finalization's."""
    from events.models import UsageEvent

    november = Invoice.objects.get(contract=ended, period_start=datetime(2026, 11, 1, tzinfo=UTC))
    assert november.ledger_watermark == UsageEvent.objects.filter(organization=organization).latest("id").id

    send(
        organization,
        [tokens(customer, datetime(2026, 11, 20, tzinfo=UTC), 1_000_000)],
        now=datetime(2026, 12, 2, 11, tzinfo=UTC),  # before the finalization at 12:00, stored after it
    )
    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 12, 6, tzinfo=UTC))

    correction = Invoice.objects.get(contract=ended, kind=Invoice.Kind.CORRECTION)
    assert (correction.period_start, correction.total_cents) == (DECEMBER, 50)
