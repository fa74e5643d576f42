"""The pure comparison of metered, invoiced and collected amounts, and its flags."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from billing.collection.reconciliation import InvoiceFacts, flag_counts, invoice_flags, reconcile

NOW = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)

COLLECTED = InvoiceFacts(
    invoice_id="i1", number="INV-000001", customer_id="acme", customer_name="Acme", currency="USD",
    status="paid", billed_through_stripe=True, metered_cents=1000, credits_cents=200, due_cents=800,
    push_state="finalized", stripe_invoice_id="in_1", stripe_status="paid", sent_total_cents=800,
    stripe_total_cents=800, paid_cents=800, due_at=NOW - timedelta(days=3),
)


def codes(facts):
    return [flag.code for flag in invoice_flags(facts, now=NOW)]


def test_an_invoice_sent_and_paid_in_full_has_no_flag():
    assert codes(COLLECTED) == []


def test_a_finalized_invoice_not_finalized_in_stripe_is_unsent():
    for state in (None, "pending", "sent"):
        facts = replace(COLLECTED, status="finalized", push_state=state, stripe_status="", stripe_total_cents=None,
                        paid_cents=0)
        assert codes(facts) == ["unsent"]


def test_drafts_voids_skipped_zero_invoices_and_customers_not_billed_through_stripe_are_not_unsent():
    for status in ("draft", "void"):
        assert codes(replace(COLLECTED, status=status, push_state=None, paid_cents=0, stripe_total_cents=None)) == []
    assert codes(replace(COLLECTED, status="finalized", push_state="skipped", paid_cents=0)) == []
    assert codes(replace(COLLECTED, billed_through_stripe=False, push_state=None, stripe_total_cents=None,
                         sent_total_cents=None, paid_cents=0)) == []


def test_a_failed_push_is_failed_not_unsent():
    facts = replace(COLLECTED, status="finalized", push_state="pending", paid_cents=0, stripe_total_cents=None,
                    push_error="InvalidRequestError: No such customer")
    (flag,) = invoice_flags(facts, now=NOW)
    assert flag.code == "failed" and "No such customer" in flag.message and flag.invoice_id == "i1"


def test_a_failed_payment_is_failed_until_paid():
    failed = replace(COLLECTED, status="finalized", stripe_status="open", paid_cents=0, payment_failed=True,
                     due_at=NOW + timedelta(days=1))
    assert codes(failed) == ["failed"]
    assert codes(replace(failed, stripe_status="paid", paid_cents=800)) == []


def test_open_after_the_due_date_is_unpaid_past_due():
    open_invoice = replace(COLLECTED, status="finalized", stripe_status="open", paid_cents=0)
    assert codes(replace(open_invoice, due_at=NOW - timedelta(seconds=1))) == ["unpaid_past_due"]
    assert codes(replace(open_invoice, due_at=NOW + timedelta(seconds=1))) == []


def test_a_stripe_total_other_than_what_we_sent_was_edited_in_stripe():
    assert codes(replace(COLLECTED, stripe_total_cents=900, paid_cents=800)) == ["edited_in_stripe"]


def test_collecting_more_than_metered_is_paid_but_not_metered():
    edited = replace(COLLECTED, stripe_total_cents=900, paid_cents=900)
    assert codes(edited) == ["edited_in_stripe", "paid_but_not_metered"]
    # Zero-decimal rounding: we asked for ¥13 of a ¥12.50 line; collecting what we asked is no flag.
    yen = replace(COLLECTED, currency="JPY", due_cents=1250, sent_total_cents=1300, stripe_total_cents=1300,
                  paid_cents=1300)
    assert codes(yen) == []


def test_rows_sum_per_customer_and_currency_and_void_invoices_count_nothing_invoiced():
    second = replace(COLLECTED, invoice_id="i2", number="INV-000002", status="finalized", stripe_status="open",
                     paid_cents=0, due_at=NOW - timedelta(days=1))
    voided = replace(COLLECTED, invoice_id="i3", status="void", stripe_status="void", paid_cents=0)
    yen = replace(COLLECTED, invoice_id="i4", currency="JPY")
    other = replace(COLLECTED, invoice_id="i5", customer_id="zeta", customer_name="Zeta")
    rows = reconcile([other, second, COLLECTED, voided, yen], now=NOW)
    assert [(row.customer_id, row.currency) for row in rows] == [("acme", "JPY"), ("acme", "USD"), ("zeta", "USD")]
    acme = rows[1]
    assert (acme.invoices, acme.metered_cents, acme.credits_cents, acme.due_cents) == (3, 3000, 600, 2400)
    assert (acme.invoiced_cents, acme.collected_cents, acme.outstanding_cents) == (1600, 800, 800)
    assert [(flag.code, flag.invoice_id) for flag in acme.flags] == [("unpaid_past_due", "i2")]
    assert flag_counts(rows) == {
        "unsent": 0, "failed": 0, "unpaid_past_due": 1, "edited_in_stripe": 0, "paid_but_not_metered": 0,
    }
