"""Revenue from TokenLedger's own invoices for customers not billed through Stripe, and the source
of every revenue figure (`revenueSource` in the API, a label on the pages)."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client

from accounts.models import Role
from billing import services as billing_services
from billing.models import Invoice
from margins import selectors, services
from margins.selectors import EVENTS, INVOICES, NO_REVENUE, STRIPE, revenue_of_month
from tests.factories import CustomerFactory, MembershipFactory
from tests.margins.conftest import record_usage
from tests.margins.test_views_margins import month, paid_invoice, stripe_customer

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "mapped, stripe, events, invoices, expected",
    [
        (True, 100, 5, 999, (105, STRIPE)),  # billed through Stripe: what Stripe collected (+ events)
        (True, 0, 0, None, (0, STRIPE)),
        (False, 0, 131, 133, (133, INVOICES)),  # own invoices replace the events' revenue, never added to it
        (False, 0, 131, 0, (0, INVOICES)),  # an invoice of $0 is still the figure billed
        (False, 0, 131, None, (131, EVENTS)),
        (False, 0, 0, None, (0, NO_REVENUE)),
    ],
)
def test_revenue_of_month_picks_one_source(mapped, stripe, events, invoices, expected):
    assert revenue_of_month(mapped_to_stripe=mapped, stripe=stripe, events=events, invoices=invoices) == expected


def _invoice(contract, period: str, *, cents: int, status=Invoice.Status.DRAFT, currency="USD", number=None):
    start = month(period, 1).replace(hour=0)
    end = month(selectors.calculations.shift_period(period, 1), 1).replace(hour=0)
    # contract_create opened a draft for every month since the contract started: set this month's.
    invoice, _ = Invoice.objects.update_or_create(
        contract=contract, period_start=start,
        defaults={"organization": contract.organization, "customer": contract.customer, "status": status,
                  "period_end": end, "currency": currency, "total_cents": cents, "amount_due_cents": cents,
                  "number": number},
    )
    return invoice


@pytest.fixture(autouse=True)
def _now():
    with time_machine.travel(datetime(2026, 4, 20, 12, tzinfo=UTC), tick=False):
        yield


@pytest.fixture
def solo(organization):
    """A customer billed by TokenLedger only: revenue on its events too (as the demo sends it)."""
    customer = CustomerFactory(organization=organization, external_id="solo", name="Solo Co")
    rate_card = billing_services.rate_card_create(organization=organization, name="Standard")
    contract = billing_services.contract_create(  # from March: February has no invoice
        organization=organization, customer=customer, rate_card=rate_card, starting_at=datetime(2026, 3, 1, tzinfo=UTC)
    )
    for period in ("2026-02", "2026-03", "2026-04"):
        record_usage(customer, when=month(period), cost=500_000, revenue=1_310_000)
    return contract


def test_own_invoices_are_the_revenue_of_a_customer_without_stripe(organization, solo, member_client):
    _invoice(solo, "2026-03", cents=120, status=Invoice.Status.FINALIZED, number="INV-1")
    _invoice(solo, "2026-04", cents=133)  # the live draft

    data = member_client(role=Role.VIEWER).get("/api/margins?period=2026-04").json()["data"]
    (row,) = data["customers"]
    assert (row["tagValue"], row["revenueMicrodollars"], row["revenueSource"]) == ("solo", 1_330_000, "invoices")
    assert row["marginMicrodollars"] == 830_000
    (detail,) = selectors.customer_margins(organization=organization, period="2026-04", tag_values={"solo"})
    assert [(m.period, m.revenue, m.revenue_source) for m in detail.months] == [
        ("2026-02", 1_310_000, "events"),  # no invoice that month: the events' revenue
        ("2026-03", 1_200_000, "invoices"),
        ("2026-04", 1_330_000, "invoices"),
    ]


def test_void_uncollectible_and_foreign_currency_invoices_are_not_revenue(organization, solo):
    _invoice(solo, "2026-04", cents=133, status=Invoice.Status.VOID, number="INV-V")
    (row,) = selectors.customer_margins(organization=organization, period="2026-04", tag_values={"solo"})
    assert (row.revenue, row.revenue_source) == (1_310_000, EVENTS)
    _invoice(solo, "2026-04", cents=133, status=Invoice.Status.UNCOLLECTIBLE, number="INV-U")
    (row,) = selectors.customer_margins(organization=organization, period="2026-04", tag_values={"solo"})
    assert row.revenue_source == EVENTS
    _invoice(solo, "2026-04", cents=133, currency="EUR")
    (row,) = selectors.customer_margins(organization=organization, period="2026-04", tag_values={"solo"})
    assert row.revenue_source == EVENTS


def test_a_customer_with_only_invoice_revenue_is_in_the_table(organization):
    customer = CustomerFactory(organization=organization, external_id="quiet")
    rate_card = billing_services.rate_card_create(organization=organization, name="Standard")
    contract = billing_services.contract_create(
        organization=organization, customer=customer, rate_card=rate_card, starting_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    record_usage(customer, when=month("2026-04"), cost=100_000)
    _invoice(contract, "2026-04", cents=50)
    table = selectors.margin_table(organization=organization, period="2026-04")
    assert [(row.tag_value, row.revenue, row.revenue_source) for row in table.customers] == [
        ("quiet", 500_000, INVOICES)
    ]


def test_a_stripe_customer_keeps_stripe_revenue_even_with_own_invoices(organization, solo):
    stripe_customer(organization, "cus_solo", name="Solo")
    services.customer_mapping_upsert(organization=organization, stripe_customer_id="cus_solo", tag_value="solo")
    paid_invoice(organization, "cus_solo", cents=2000, when=month("2026-04"))
    _invoice(solo, "2026-04", cents=133)
    (row,) = selectors.customer_margins(organization=organization, period="2026-04", tag_values={"solo"})
    assert (row.revenue, row.revenue_source) == (20_000_000 + 1_310_000, STRIPE)


def test_pages_label_every_revenue_figure_with_its_source(organization, solo):
    _invoice(solo, "2026-04", cents=133)
    client = Client()
    client.force_login(MembershipFactory(organization=organization, role=Role.VIEWER).user)
    body = client.get("/dashboard/?period=2026-04").content.decode()
    assert 'class="source" title="TokenLedger invoices' in body
    body = client.get("/dashboard/customers/solo?period=2026-04").content.decode()
    assert body.count('class="source"') >= 4  # the tile and each month of the table
