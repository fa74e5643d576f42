"""A credit grant or adjustment recomputes the customer's drafts when it commits, without more usage."""

import pytest

from billing import invoicing, services
from billing.credits.models import CreditEntry
from billing.credits.services import credit_add, credit_adjust
from billing.models import Invoice
from tests.billing.conftest import ingest
from tests.billing.credits.test_invoicing import month_start, previous_month_start, recent


@pytest.fixture
def billed(organization, customer, seed_pricing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        services.contract_create(
            organization=organization,
            customer=customer,
            rate_card=seed_pricing["rate_card"],
            starting_at=previous_month_start(),
        )
    ingest(
        organization, customer, [{"event_type": "langModel4", "occurred_at": recent(), "properties": {"tokens": 10**7}}]
    )
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    return Invoice.objects.get(customer=customer, status="draft", period_start=month_start())


def test_a_grant_and_then_an_adjustment_change_the_draft_at_once(customer, billed, django_capture_on_commit_callbacks):
    assert (billed.total_cents, billed.credits_applied_cents) == (500, 0)

    with django_capture_on_commit_callbacks(execute=True):
        credit_add(customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=1_000_000, reference="g1")
    billed.refresh_from_db()
    assert (billed.credits_applied_cents, billed.amount_due_cents) == (100, 400)

    with django_capture_on_commit_callbacks(execute=True):
        credit_adjust(customer=customer, amount_microdollars=-400_000, reference="a1", description="correction")
    billed.refresh_from_db()
    assert (billed.credits_applied_cents, billed.amount_due_cents) == (60, 440)


def test_a_credit_change_that_rolls_back_queues_nothing(customer, billed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(RuntimeError):
        from django.db import transaction

        with transaction.atomic():
            credit_add(customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=1_000_000, reference="g2")
            raise RuntimeError

    assert callbacks == []
    billed.refresh_from_db()
    assert billed.credits_applied_cents == 0
