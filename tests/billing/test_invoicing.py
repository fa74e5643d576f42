from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing import invoicing, recompute, services, tasks
from billing.models import Invoice, Product
from tests.billing.conftest import ingest, utc


def month_start(instant=None):
    instant = instant or timezone.now()
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_month_start():
    return month_start(month_start() - timedelta(days=1))


def recent():
    """An instant in the current month, before now."""
    return max(timezone.now() - timedelta(minutes=5), month_start())


def tokens(at, count, user="alice", event_type="langModel4"):
    return {"event_type": event_type, "occurred_at": at, "properties": {"tokens": count, "user_id": user}}


def draft_of(customer, start=None):
    return Invoice.objects.get(customer=customer, status="draft", period_start=start or month_start())


def lines(invoice):
    return [
        (line.product_name, line.presentation_group, line.quantity, line.unit_price, line.amount_cents)
        for line in invoice.lines.all()
    ]


@pytest.fixture
def contract(organization, customer, seed_pricing):
    return services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=previous_month_start(),
    )


def test_seed_example_usage_before_the_contract_shows_on_its_first_draft(organization, customer, seed_pricing):
    ingest(organization, customer, [tokens(recent(), 600_000), tokens(recent(), 400_000, user="bob")])

    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=month_start()
    )
    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = draft_of(customer)
    (line,) = invoice.lines.all()
    assert (line.quantity, line.unit_price, line.amount_cents) == (Decimal(1), Decimal(50), 50)
    assert (invoice.total_cents, invoice.amount_due_cents) == (50, 50)
    assert invoice.computed_at is not None


def test_contract_opens_a_draft_per_started_period(contract, customer):
    starts = sorted(Invoice.objects.filter(contract=contract).values_list("period_start", flat=True))

    assert starts == [previous_month_start(), month_start()]


def test_presentation_groups_split_lines_and_recompute_is_idempotent(organization, customer, seed_pricing, contract):
    Product.objects.filter(pk=seed_pricing["product"].pk).update(presentation_group_key=["user_id"])
    ingest(
        organization,
        customer,
        [tokens(recent(), 1_500_000), tokens(recent(), 250_000, user="bob"), tokens(recent(), 999, event_type="other")],
    )

    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    first = lines(draft_of(customer))
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    second = draft_of(customer)

    assert (
        first
        == lines(second)
        == [
            ("Language Model 4 Tokens (millions)", "user_id: alice", Decimal("1.5"), Decimal(50), 75),
            ("Language Model 4 Tokens (millions)", "user_id: bob", Decimal("0.25"), Decimal(50), 13),  # 12.5 → 13
        ]
    )
    assert second.total_cents == 88


def test_usage_is_billed_in_the_period_it_occurred(organization, customer, contract):
    ingest(
        organization,
        customer,
        [tokens(previous_month_start() + timedelta(days=3), 2_000_000), tokens(recent(), 1_000_000)],
    )

    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    assert draft_of(customer, previous_month_start()).total_cents == 100
    assert draft_of(customer).total_cents == 50


def test_usage_too_large_for_an_invoice_line_leaves_the_draft_as_it_was_and_spares_the_others(
    organization, customer, contract
):
    ingest(organization, customer, [tokens(recent(), 10**22)])  # 10^16 million tokens: a line of $5 x 10^15
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    assert draft_of(customer).total_cents == 5 * 10**17  # above 10^16, the quantity used to overflow quantize()

    earlier = previous_month_start() + timedelta(days=3)
    ingest(organization, customer, [tokens(recent(), 10**24), tokens(earlier, 10**6)])
    recomputed = invoicing.customer_drafts_recompute(customer_id=customer.pk)  # 5 x 10^19 cents: beyond a bigint

    assert draft_of(customer, previous_month_start()).total_cents == 50  # the other draft still follows usage
    assert [invoice.period_start for invoice in recomputed] == [previous_month_start()]
    assert draft_of(customer).total_cents == 5 * 10**17  # kept its last lines rather than half-writing new ones
    with pytest.raises(invoicing.InvoiceTooLarge, match="Language Model 4 Tokens"):
        invoicing.invoice_recompute(invoice=draft_of(customer))


def test_finalize_after_the_grace_period_numbers_from_a_sequence_and_opens_the_next_draft(
    organization, customer, contract, settings
):
    settings.INVOICE_FINALIZE_GRACE_HOURS = 24
    ingest(organization, customer, [tokens(previous_month_start() + timedelta(days=3), 2_000_000)])
    Invoice.objects.filter(contract=contract).delete()  # back to the previous month: let finalization open this one
    invoicing.contract_drafts_ensure(contract=contract, now=previous_month_start() + timedelta(days=1))
    assert Invoice.objects.filter(contract=contract).count() == 1

    too_early = invoicing.invoices_finalize_due(now=month_start() + timedelta(hours=23))
    finalized = invoicing.invoices_finalize_due(now=month_start() + timedelta(hours=24))

    assert too_early == []
    (invoice,) = finalized
    assert invoice.status == "finalized" and invoice.number.startswith("INV-")
    assert invoice.total_cents == 100 and invoice.finalized_at is not None
    assert draft_of(customer).period_start == month_start()
    other = services.contract_create(
        organization=organization,
        customer=_another_customer(organization),
        rate_card=contract.rate_card,
        starting_at=previous_month_start(),
    )
    (second,) = invoicing.invoices_finalize_due(now=month_start() + timedelta(hours=25))
    assert second.contract == other and second.number != invoice.number


def _another_customer(organization):
    from tests.factories import CustomerFactory

    return CustomerFactory(organization=organization)


def test_an_event_for_a_finalized_period_lands_on_the_current_draft(organization, customer, contract, settings):
    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    ingest(organization, customer, [tokens(previous_month_start() + timedelta(days=3), 2_000_000)])
    (closed,) = invoicing.invoices_finalize_due()

    ingest(organization, customer, [tokens(previous_month_start() + timedelta(days=4), 4_000_000)])
    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    closed.refresh_from_db()
    assert closed.total_cents == 100  # unchanged
    assert lines(draft_of(customer))[0][2:] == (Decimal(4), Decimal(50), 200)


def test_finalizing_a_period_that_has_not_ended_is_refused(customer, contract):
    with pytest.raises(ValidationError):
        invoicing.invoice_finalize(invoice=draft_of(customer))


def test_status_changes_follow_the_invoice_lifecycle(organization, customer, contract, settings):
    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    (invoice,) = invoicing.invoices_finalize_due()

    with pytest.raises(ValidationError):
        invoicing.invoice_set_status(invoice=draft_of(customer), status="paid")
    invoicing.invoice_set_status(invoice=invoice, status="uncollectible")
    paid = invoicing.invoice_set_status(invoice=invoice, status="paid")
    assert paid.status == "paid"
    with pytest.raises(ValidationError):
        invoicing.invoice_set_status(invoice=invoice, status="void")


def test_invoice_adjusters_apply_credits_before_amount_due(organization, customer, contract, monkeypatch):
    monkeypatch.setattr(invoicing, "_adjusters", [])
    invoicing.register_invoice_adjuster(lambda *, invoice, lines: 30)
    ingest(organization, customer, [tokens(recent(), 1_000_000)])

    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = draft_of(customer)
    assert (invoice.total_cents, invoice.credits_applied_cents, invoice.amount_due_cents) == (50, 30, 20)


def test_tiers_overrides_and_effective_dates_on_a_real_invoice(organization, customer, seed_pricing):
    card = services.rate_card_create(organization=organization, name="Tiered")
    product = seed_pricing["product"]
    change = month_start() + timedelta(days=10)
    services.rate_create(
        rate_card=card,
        product=product,
        starting_at=utc(2020, 1, 1),
        ending_before=change,
        rate_type="TIERED",
        tiers=[{"size": Decimal(1), "price": Decimal(100)}, {"price": Decimal(10)}],
    )
    services.rate_create(rate_card=card, product=product, starting_at=change, price=Decimal(5))
    services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=card,
        starting_at=month_start(),
        overrides=[{"product": product, "type": "MULTIPLIER", "multiplier": Decimal("0.5")}],
    )
    ingest(
        organization,
        customer,
        [tokens(month_start() + timedelta(days=1), 3_000_000), tokens(change + timedelta(hours=1), 2_000_000)],
    )

    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = draft_of(customer)
    assert [(line.period_start, line.tier_index, line.quantity, line.amount_cents) for line in invoice.lines.all()] == [
        (month_start(), 1, Decimal(1), 50),
        (month_start(), 2, Decimal(2), 10),
        (change, None, Decimal(2), 5),
    ]
    assert invoice.total_cents == 65


def test_debounce_gives_one_recompute_per_burst(customer):
    cache.clear()
    cache.add(recompute._debounce_key(customer.pk), 1)

    assert recompute.schedule_draft_recompute(customer.pk) is False  # one is already queued

    tasks.recompute_draft_invoice(customer.pk)  # the queued run clears the key first
    assert cache.get(recompute._debounce_key(customer.pk)) is None


def test_drafts_follow_a_contract_whose_dates_changed(organization, customer, contract):
    contract.starting_at = month_start()
    contract.save()

    invoicing.contract_drafts_ensure(contract=contract)

    assert list(Invoice.objects.filter(contract=contract).values_list("period_start", flat=True)) == [month_start()]


def test_a_new_rate_recomputes_the_drafts_on_its_card(
    organization, customer, seed_pricing, contract, django_capture_on_commit_callbacks
):
    Invoice.objects.filter(contract=contract).update(total_cents=0, amount_due_cents=0)
    ingest(organization, customer, [tokens(recent(), 1_000_000, event_type="other")])
    other_metric = services.billable_metric_create(
        organization=organization, name="other", aggregation_type="COUNT", event_type_filter={"in_values": ["other"]}
    )
    product = services.product_create(organization=organization, name="Other calls", billable_metric=other_metric)
    ingest(organization, customer, [tokens(recent(), 1, event_type="other")])

    with django_capture_on_commit_callbacks(execute=True):
        services.rate_create(
            rate_card=seed_pricing["rate_card"], product=product, starting_at=utc(2020, 1, 1), price=Decimal(7)
        )

    assert draft_of(customer).total_cents == 7


def test_a_recompute_reads_rollups_never_the_raw_events(organization, customer, contract):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ingest(organization, customer, [tokens(recent(), 1_000_000), tokens(recent(), 1_000_000, user="bob")])

    with CaptureQueriesContext(connection) as queries:
        invoicing.customer_drafts_recompute(customer_id=customer.pk)

    assert draft_of(customer).total_cents == 100
    read = " ".join(query["sql"] for query in queries.captured_queries)
    assert "billing_usagerollup" in read
    assert "events_usageevent" not in read


@pytest.mark.django_db(transaction=True)
def test_due_invoices_are_finalized_one_transaction_each_so_the_ledger_lock_is_held_per_invoice(
    organization, customer, contract, settings
):
    """Finalization takes the organization's ledger lock exclusively; it is released with each
    invoice's transaction, so ingest waits for one invoice at a time, never for the whole run."""
    from django.db import connection

    from billing.invoicing import _adjusters

    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    services.contract_create(
        organization=organization, customer=_another_customer(organization), rate_card=contract.rate_card,
        starting_at=previous_month_start(),
    )
    transactions = []

    def record_transaction(*, invoice, lines):
        with connection.cursor() as cursor:
            cursor.execute("SELECT txid_current(), count(*) FROM pg_locks WHERE locktype = 'advisory' "
                           "AND pid = pg_backend_pid() AND mode = 'ExclusiveLock'")
            transactions.append(cursor.fetchone())
        return 0

    _adjusters.append(record_transaction)
    try:
        finalized = invoicing.invoices_finalize_due(now=month_start() + timedelta(hours=1))
    finally:
        _adjusters.remove(record_transaction)

    assert len(finalized) == 2
    # (the drafts' recomputes that finalization queues run here too, eagerly, without the lock)
    finalizing = [txid for txid, locks in transactions if locks == 1]  # holding the exclusive ledger lock
    assert len(finalizing) == 2 and len(set(finalizing)) == 2  # one transaction per invoice
