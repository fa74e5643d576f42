"""Credits drawn down on invoices: previews on drafts, one ledger entry at finalization, seed 004 lines."""

from datetime import timedelta

import pytest
from django.utils import timezone

from billing import invoicing, services
from billing.credits.models import CreditDraw, CreditEntry, InvoiceCredit
from billing.credits.selectors import credit_balance, spendable_credit
from billing.credits.services import credit_add
from billing.models import Invoice, Product
from billing.presentation import seed_invoice_preview
from tests.billing.conftest import ingest

DRAWDOWN = CreditEntry.Kind.DRAWDOWN


def month_start(instant=None):
    instant = instant or timezone.now()
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_month_start():
    return month_start(month_start() - timedelta(days=1))


def recent():
    return max(timezone.now() - timedelta(minutes=5), month_start())


def tokens(at, count, user="alice"):
    return {"event_type": "langModel4", "occurred_at": at, "properties": {"tokens": count, "user_id": user}}


def grant(customer, microdollars, reference, **kwargs):
    return credit_add(
        customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=microdollars, reference=reference, **kwargs
    )[0]


def draft_of(customer, start=None):
    return Invoice.objects.get(customer=customer, status="draft", period_start=start or month_start())


@pytest.fixture
def contract(organization, customer, seed_pricing):
    """Seed 001's rate: 50 cents per million langModel4 tokens, grouped by user_id."""
    return services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
        starting_at=previous_month_start(),
    )


def seed_body(response):
    """The seed-004 object of billing's invoice endpoints (bare, like every seed-004 endpoint)."""
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    return body


def finalize_previous_month(settings):
    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    (invoice,) = invoicing.invoices_finalize_due()
    return invoice


@pytest.mark.django_db
def test_a_draft_shows_credits_before_amount_due_without_touching_the_ledger(organization, customer, contract):
    grant(customer, 300_000, "promo")  # $0.30
    ingest(organization, customer, [tokens(recent(), 1_000_000)])  # $0.50

    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = draft_of(customer)
    assert (invoice.total_cents, invoice.credits_applied_cents, invoice.amount_due_cents) == (50, 30, 20)
    (line,) = seed_invoice_preview(invoice)["invoice_lines"]
    assert line["pretax_credit_amounts"] == [
        {"amount": 30, "type": "credit_balance_transaction", "credit_balance_transaction": None, "discount": None}
    ]
    assert seed_invoice_preview(invoice)["amount_due"] == 20
    assert not CreditEntry.objects.filter(kind=DRAWDOWN).exists()
    assert credit_balance(customer=customer) == 300_000
    assert spendable_credit(customer=customer) == 0  # already applied to the draft

    invoicing.customer_drafts_recompute(customer_id=customer.pk)  # recompute is idempotent
    assert InvoiceCredit.objects.filter(invoice=invoice).count() == 1
    assert draft_of(customer).credits_applied_cents == 30


@pytest.mark.django_db
def test_finalization_draws_the_credits_down_once(organization, customer, contract, settings):
    grant(customer, 5_000_000, "topup")  # $5.00
    ingest(organization, customer, [tokens(previous_month_start() + timedelta(days=2), 3_000_000)])  # $1.50
    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = finalize_previous_month(settings)

    assert (invoice.total_cents, invoice.credits_applied_cents, invoice.amount_due_cents) == (150, 150, 0)
    entry = CreditEntry.objects.get(customer=customer, kind=DRAWDOWN)
    assert (entry.amount_microdollars, entry.reference) == (-1_500_000, str(invoice.pk))
    assert credit_balance(customer=customer) == 3_500_000
    (line,) = seed_invoice_preview(invoice)["invoice_lines"]
    assert line["pretax_credit_amounts"] == [
        {
            "amount": 150, "type": "credit_balance_transaction", "credit_balance_transaction": str(entry.pk),
            "discount": None,
        }
    ]
    assert seed_invoice_preview(invoice)["status"] == "open"

    # Nothing draws again: recomputes, another finalization run, a new draft.
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    assert invoicing.invoices_finalize_due() == []
    invoicing.invoice_recompute(invoice=invoice)
    assert CreditEntry.objects.filter(customer=customer, kind=DRAWDOWN).count() == 1
    assert credit_balance(customer=customer) == 3_500_000
    assert draft_of(customer).credits_applied_cents == 0  # no usage this month yet


@pytest.mark.django_db
def test_lines_draw_from_the_soonest_expiring_credit_first(organization, customer, contract, seed_pricing,
                                                            settings):
    Product.objects.filter(pk=seed_pricing["product"].pk).update(presentation_group_key=["user_id"])
    far = timezone.now() + timedelta(days=90)
    topup = grant(customer, 5_000_000, "topup")
    promo = grant(customer, 600_000, "promo", expires_at=far)
    at = previous_month_start() + timedelta(days=2)
    ingest(organization, customer, [tokens(at, 1_000_000, "alice"), tokens(at, 2_000_000, "bob")])
    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = finalize_previous_month(settings)

    alice, bob = invoice.lines.order_by("position")
    assert (alice.presentation_group, alice.amount_cents, bob.amount_cents) == ("user_id: alice", 50, 100)
    draws = sorted(
        (draw.line_key, draw.lot_id == promo.pk, draw.amount_microdollars)
        for draw in CreditDraw.objects.filter(entry__kind=DRAWDOWN)
    )
    assert draws == sorted([
        (str(alice.pk), True, 500_000),
        (str(bob.pk), True, 100_000),
        (str(bob.pk), False, 900_000),
    ])
    assert {draw.lot_id for draw in CreditDraw.objects.filter(entry__kind=DRAWDOWN)} == {promo.pk, topup.pk}


@pytest.mark.django_db
def test_credits_are_whole_cents_and_expired_credit_pays_nothing(organization, customer, contract):
    grant(customer, 1_239_999, "odd")  # $1.239999 → 123 cents usable
    grant(customer, 50_000_000, "stale", expires_at=timezone.now() - timedelta(minutes=1))
    ingest(organization, customer, [tokens(recent(), 10_000_000)])  # $5.00

    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    invoice = draft_of(customer)
    assert (invoice.total_cents, invoice.credits_applied_cents, invoice.amount_due_cents) == (500, 123, 377)
    assert spendable_credit(customer=customer) == 9_999  # the sub-cent rest stays on the balance


@pytest.mark.django_db
def test_an_earlier_open_draft_claims_credit_before_the_current_one(organization, customer, contract):
    grant(customer, 1_000_000, "g")  # $1.00
    ingest(organization, customer, [
        tokens(previous_month_start() + timedelta(days=2), 1_600_000),  # $0.80 last month (still a draft)
        tokens(recent(), 1_000_000),  # $0.50 this month
    ])

    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    assert draft_of(customer, previous_month_start()).credits_applied_cents == 80
    assert draft_of(customer).credits_applied_cents == 20
    assert spendable_credit(customer=customer) == 0


@pytest.mark.django_db
def test_credit_balance_endpoint_follows_rated_usage(api_client, organization, customer, contract):
    grant(customer, 2_000_000, "g")
    ingest(organization, customer, [tokens(recent(), 1_000_000)])
    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    body = api_client.get(f"/api/v1/customers/{customer.uuid}/billing/credit-balance").json()

    assert (body["balance"], body["balance_microdollars"]) == (150, 1_500_000)


@pytest.mark.django_db
def test_invoice_preview_and_history_endpoints_show_the_credits(api_client, organization, customer, contract,
                                                               settings):
    grant(customer, 2_000_000, "g")  # $2.00
    ingest(organization, customer, [
        tokens(previous_month_start() + timedelta(days=2), 3_000_000),  # $1.50 last month
        tokens(recent(), 2_000_000),  # $1.00 this month
    ])
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    finalized = finalize_previous_month(settings)
    invoicing.customer_drafts_recompute(customer_id=customer.pk)

    preview = seed_body(api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-preview"))
    history = seed_body(api_client.get(f"/api/v1/customers/{customer.uuid}/billing/invoice-history"))

    assert (preview["status"], preview["amount_due"]) == ("draft", 50)  # $1.00 - the $0.50 left
    assert preview["invoice_lines"][0]["pretax_credit_amounts"] == [
        {"amount": 50, "type": "credit_balance_transaction", "credit_balance_transaction": None, "discount": None}
    ]
    (closed,) = history["invoices"]
    assert (closed["id"], closed["amount_due"], closed["amount_remaining"]) == (str(finalized.pk), 0, 0)


@pytest.mark.django_db
def test_voiding_a_finalized_invoice_returns_its_credit_once(organization, customer, contract, settings):
    expiry = timezone.now() + timedelta(days=30)
    grant(customer, 1_000_000, "promo", expires_at=expiry)
    ingest(organization, customer, [tokens(previous_month_start() + timedelta(days=2), 1_000_000)])  # $0.50
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    invoice = finalize_previous_month(settings)
    assert credit_balance(customer=customer) == 500_000

    invoicing.invoice_set_status(invoice=invoice, status="void")
    Invoice.objects.get(pk=invoice.pk).save(update_fields=["status"])  # saved again: nothing more

    returned = CreditEntry.objects.get(kind=CreditEntry.Kind.ADJUSTMENT)
    assert (returned.amount_microdollars, returned.expires_at) == (500_000, expiry)
    assert credit_balance(customer=customer) == 1_000_000
