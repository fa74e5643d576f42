from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import invoicing, services
from billing.models import Invoice, Product
from tests.billing.conftest import ingest


@pytest.fixture
def invoice(organization, customer, seed_pricing):
    Product.objects.filter(pk=seed_pricing["product"].pk).update(presentation_group_key=["user_id"])
    now = timezone.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=start
    )
    at = max(now - timedelta(minutes=1), start)
    ingest(
        organization,
        customer,
        [
            {"event_type": "langModel4", "occurred_at": at, "properties": {"tokens": 1_000_000, "user_id": "alice"}},
            {"event_type": "langModel4", "occurred_at": at, "properties": {"tokens": 3_000_000, "user_id": "bob"}},
        ],
    )
    invoicing.customer_drafts_recompute(customer_id=customer.pk)
    return Invoice.objects.get(customer=customer, period_start=start)


def link(invoice, expires_in=timedelta(days=1)):
    token = services.invoice_link_token(invoice=invoice, expires_at=timezone.now() + expires_in)
    return reverse("billing:invoice-page", args=[token])


def test_a_valid_link_shows_the_draft_without_login(client, invoice):
    response = client.get(link(invoice))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Draft invoice" in page and "Example Team" in page
    assert "user_id: alice" in page and "user_id: bob" in page  # lines grouped by presentation group
    assert "$0.50" in page and "$1.50" in page and "$2.00" in page  # unit price, bob's line, total
    assert "3" in page and "million tokens" in page
    assert "Last updated" in page
    assert response["Cache-Control"] == "private, no-store"
    assert response["Referrer-Policy"] == "no-referrer"


def test_lines_sit_under_their_presentation_group_in_one_table_whose_columns_align(client, invoice):
    page = client.get(link(invoice)).content.decode()

    assert page.count('<table class="lines">') == 1  # one table: every group shares the same columns
    alice, bob = page.index("user_id: alice"), page.index("user_id: bob")
    assert alice < page.index("$0.50", alice) < bob < page.index("$1.50", bob)
    assert page.count('<tr class="group">') == 2 and page.count("Subtotal") == 2


def test_an_expired_link_is_gone(client, invoice):
    response = client.get(link(invoice, expires_in=timedelta(seconds=-1)))

    assert response.status_code == 410
    assert "expired" in response.content.decode()


@pytest.mark.parametrize(
    "mangle", [lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), lambda t: "x" + t, lambda t: "garbage"]
)
def test_a_tampered_link_is_not_found(client, invoice, mangle):
    token = services.invoice_link_token(invoice=invoice, expires_at=timezone.now() + timedelta(days=1))

    response = client.get(reverse("billing:invoice-page", args=[mangle(token)]))

    assert response.status_code == 404
    assert "not valid" in response.content.decode()


def test_a_link_to_a_deleted_invoice_is_not_found(client, invoice):
    url = link(invoice)
    invoice.lines.all().delete()
    Invoice.objects.filter(pk=invoice.pk).delete()

    assert client.get(url).status_code == 404


def test_amounts_on_the_page_are_the_invoice_amounts(client, invoice):
    assert invoice.total_cents == 200
    assert sum(line.amount_cents for line in invoice.lines.all()) == invoice.total_cents
    assert [line.unit_price for line in invoice.lines.all()] == [Decimal(50), Decimal(50)]
