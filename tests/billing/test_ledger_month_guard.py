"""Billing keeps a month of the ledger attached while it has open billing periods or a metric rollup
rebuild reads the ledger (events' ledger month guard, billing.metering.ledger_month_holds)."""

from datetime import UTC, date, datetime

import pytest
import time_machine

from billing import services
from billing.models import Invoice, RollupRebuild
from events.services.partitions import LedgerMonthRefused, ledger_month_detach, ledger_month_ensure
from tests.billing.conftest import utc

NOW = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def contract(organization, customer, seed_pricing):
    with time_machine.travel(NOW, tick=False):  # drafts for the periods started by then
        contract = services.contract_create(
            organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
            starting_at=utc(2026, 1, 1), ending_before=utc(2026, 7, 1),
        )
    RollupRebuild.objects.update(status=RollupRebuild.Status.DONE)  # the metric's own, done
    return contract


def test_a_month_with_a_draft_invoice_stays_attached_until_it_is_finalized(contract):
    ledger_month_ensure(month=date(2026, 3, 1))
    drafts = Invoice.objects.filter(contract=contract, status=Invoice.Status.DRAFT, period_start=utc(2026, 3, 1))
    assert drafts.exists()

    with pytest.raises(LedgerMonthRefused, match=r"1 draft invoice\(s\) have a billing period in this month"):
        ledger_month_detach(month=date(2026, 3, 1), now=NOW)

    drafts.update(status=Invoice.Status.FINALIZED, finalized_at=NOW)
    assert ledger_month_detach(month=date(2026, 3, 1), now=NOW).month == date(2026, 3, 1)


def test_no_month_is_detached_while_a_metric_rollup_rebuild_is_queued(organization, seed_pricing):
    ledger_month_ensure(month=date(2025, 2, 1))
    RollupRebuild.objects.update(status=RollupRebuild.Status.DONE)
    RollupRebuild.objects.create(organization=organization, metric=seed_pricing["metric"])

    with pytest.raises(LedgerMonthRefused, match=r"1 metric rollup rebuild\(s\) are queued or running"):
        ledger_month_detach(month=date(2025, 2, 1), now=NOW)
