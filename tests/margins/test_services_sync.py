"""Revenue sync against localstripe through the real `stripe` library."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from margins import calculations, selectors, services
from margins.models import CustomerMapping, StripeConnection, StripeCustomer, StripeInvoice, SyncRun
from tests.factories import CustomerFactory
from tests.margins.conftest import backdate

pytestmark = pytest.mark.django_db


def _revenue_by_tag(organization, period):
    return {row.tag_value: row.revenue for row in selectors.customer_margins(organization=organization, period=period)}


def test_sync_pages_past_100_invoices_across_customers_and_currencies(organization, connected, stripe_account):
    acme = CustomerFactory(organization=organization, external_id="acme", name="Acme Corp")
    globex = CustomerFactory(organization=organization, external_id="globex", name="Globex")
    cus_acme = stripe_account.customer(name="Acme Corp", email="billing@acme.com", customer_id="acme")
    cus_globex = stripe_account.customer(name="Globex", customer_id="globex")
    cus_euro = stripe_account.customer(name="Euro GmbH", customer_id="euro")
    cus_yen = stripe_account.customer(name="Yen KK")
    stripe_account.paid_invoices(cus_acme, count=60, amount=1234)
    stripe_account.paid_invoices(cus_globex, count=45, amount=500)
    stripe_account.paid_invoices(cus_euro, count=3, amount=9900, currency="eur")
    stripe_account.paid_invoices(cus_yen, count=2, amount=5000, currency="jpy")

    result = services.revenue_sync(organization=organization)

    assert result.invoices_fetched == 110
    assert result.customers_processed == 4
    assert result.invoices_skipped == 5
    assert result.skipped_currencies == {"eur": 3, "jpy": 2}
    assert result.auto_matches_created == 2
    assert result.periods_updated == 2  # (acme, this month) and (globex, this month)
    assert StripeInvoice.objects.filter(organization=organization).count() == 110
    period = calculations.period_of(timezone.now())
    expected = {acme.external_id: 60 * 12_340_000, globex.external_id: 45 * 5_000_000}
    assert _revenue_by_tag(organization, period) == expected
    invoice = StripeInvoice.objects.filter(organization=organization, stripe_customer_id=cus_acme).first()
    assert invoice.raw["id"] == invoice.stripe_id and invoice.raw["amount_paid"] == 1234
    assert invoice.amount_paid == 1234 and invoice.amount_paid_microdollars == 12_340_000
    euro = StripeInvoice.objects.filter(organization=organization, currency="eur").first()
    assert euro.amount_paid == 9900 and euro.amount_paid_microdollars is None
    run = SyncRun.objects.get(pk=result.sync_run_id)
    assert run.status == SyncRun.Status.SUCCEEDED and run.invoices_fetched == 110
    assert run.skipped_currencies == {"eur": 3, "jpy": 2}


def test_second_sync_reads_only_new_invoices_and_is_idempotent(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="acme")
    cus = stripe_account.customer(name="Acme", customer_id="acme")
    old = stripe_account.paid_invoices(cus, count=3, amount=1000)
    services.revenue_sync(organization=organization)
    # Pretend the first sync ran yesterday: its invoices are older than the cursor's overlap window.
    yesterday = timezone.now() - timedelta(days=1)
    for invoice_id in old:
        backdate(invoice_id, yesterday)
    StripeConnection.objects.filter(pk=connected.pk).update(invoices_synced_until=int(yesterday.timestamp()) + 3600)
    stripe_account.paid_invoices(cus, count=2, amount=1000)

    second = services.revenue_sync(organization=organization)
    third_rows_before = list(StripeInvoice.objects.order_by("stripe_id").values_list("stripe_id", "amount_paid"))
    third = services.revenue_sync(organization=organization)

    assert second.invoices_fetched == 2
    assert StripeInvoice.objects.filter(organization=organization).count() == 5
    assert third.auto_matches_created == 0
    assert list(StripeInvoice.objects.order_by("stripe_id").values_list("stripe_id", "amount_paid")) == (
        third_rows_before
    )
    assert CustomerMapping.objects.filter(organization=organization).count() == 1


def test_an_invoice_paid_after_it_was_synced_is_rechecked_and_counted(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="late")
    customer, invoice_id = stripe_account.open_invoice(amount=4200)
    stripe_account.set_customer_id(customer, "late")
    services.revenue_sync(organization=organization)
    assert StripeInvoice.objects.get(stripe_id=invoice_id).status == "open"
    week_ago = timezone.now() - timedelta(days=7)
    backdate(invoice_id, week_ago)  # created long before the next sync's cursor
    StripeConnection.objects.filter(pk=connected.pk).update(invoices_synced_until=int(week_ago.timestamp()) + 86400)

    stripe_account.pay_with_a_good_card(customer, invoice_id)
    result = services.revenue_sync(organization=organization)

    invoice = StripeInvoice.objects.get(stripe_id=invoice_id)
    assert (invoice.status, invoice.amount_paid_microdollars) == ("paid", 42_000_000)
    assert result.invoices_fetched == 1 and result.periods_updated == 1
    assert _revenue_by_tag(organization, invoice.period) == {"late": 42_000_000}


def test_invoices_count_in_the_month_they_were_paid(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="acme")
    cus = stripe_account.customer(customer_id="acme")
    (march,) = stripe_account.paid_invoices(cus, amount=1000)
    (april,) = stripe_account.paid_invoices(cus, amount=2500)
    backdate(march, datetime(2026, 3, 31, 23, 59, tzinfo=UTC))
    backdate(april, datetime(2026, 4, 1, 0, 0, tzinfo=UTC))

    result = services.revenue_sync(organization=organization)

    assert result.periods_updated == 2
    assert _revenue_by_tag(organization, "2026-03") == {"acme": 10_000_000}
    assert _revenue_by_tag(organization, "2026-04") == {"acme": 25_000_000}


def test_changed_metadata_relinks_existing_invoices_on_next_sync(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="old-id")
    CustomerFactory(organization=organization, external_id="new-id")
    cus = stripe_account.customer(name="Initech", customer_id="old-id")
    stripe_account.paid_invoices(cus, count=2, amount=1500)
    period = calculations.period_of(timezone.now())
    services.revenue_sync(organization=organization)
    assert _revenue_by_tag(organization, period) == {"old-id": 30_000_000}

    stripe_account.set_customer_id(cus, "new-id")
    result = services.revenue_sync(organization=organization)

    assert result.invoices_fetched == 2  # within the overlap window; no new invoice was needed
    assert _revenue_by_tag(organization, period) == {"new-id": 30_000_000}
    mapping = CustomerMapping.objects.get(organization=organization, stripe_customer_id=cus)
    assert (mapping.tag_value, mapping.match_type, mapping.status) == ("new-id", "auto", "active")


def test_auto_matching_exact_and_fuzzy(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="12345", name="Acme Corp")
    CustomerFactory(organization=organization, external_id="delta-llc", name="Delta LLC", email="ap@delta.io")
    CustomerFactory(organization=organization, external_id="zeta", name="Zeta Systems")
    CustomerFactory(organization=organization, external_id="omega", name="Omega", stripe_customer_id=None)
    by_metadata = stripe_account.customer(name="ACME", customer_id="12345")
    by_email = stripe_account.customer(name="Delta Holdings", email="AP@delta.io")
    by_name = stripe_account.customer(name="Zeta Systems Inc.")
    unrelated = stripe_account.customer(name="Completely Different", email="x@nowhere.example")

    result = services.revenue_sync(organization=organization)

    mappings = {m.stripe_customer_id: m for m in CustomerMapping.objects.filter(organization=organization)}
    assert result.auto_matches_created == 3
    assert (mappings[by_metadata].tag_value, mappings[by_metadata].status) == ("12345", "active")
    assert mappings[by_metadata].confidence == 1
    assert (mappings[by_email].tag_value, mappings[by_email].status) == ("delta-llc", "pending")
    assert 0.6 <= mappings[by_email].confidence < 1
    assert (mappings[by_name].tag_value, mappings[by_name].status) == ("zeta", "pending")
    assert unrelated not in mappings


def test_rejected_suggestion_is_not_proposed_again_and_manual_mapping_wins(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="zeta", name="Zeta Systems")
    CustomerFactory(organization=organization, external_id="acme", name="Acme")
    cus_zeta = stripe_account.customer(name="Zeta Systems Inc.")
    cus_acme = stripe_account.customer(name="Acme", customer_id="acme")
    services.revenue_sync(organization=organization)
    suggestion = CustomerMapping.objects.get(stripe_customer_id=cus_zeta)
    services.customer_mapping_review(mapping=suggestion, approve=False)
    services.customer_mapping_upsert(organization=organization, stripe_customer_id=cus_acme, tag_value="zeta")

    result = services.revenue_sync(organization=organization)

    assert result.auto_matches_created == 0
    assert CustomerMapping.objects.get(stripe_customer_id=cus_zeta).status == "rejected"
    manual = CustomerMapping.objects.get(stripe_customer_id=cus_acme)
    assert (manual.tag_value, manual.match_type) == ("zeta", "manual")


def test_metadata_removed_drops_the_exact_link(organization, connected, stripe_account):
    CustomerFactory(organization=organization, external_id="acme")
    cus = stripe_account.customer(name="Someone", customer_id="acme")
    services.revenue_sync(organization=organization)
    stripe_account.set_customer_id(cus, "not-a-usage-customer")

    services.revenue_sync(organization=organization)

    assert not CustomerMapping.objects.filter(stripe_customer_id=cus, status="active").exists()


def test_customers_are_upserted_with_raw_payload(organization, connected, stripe_account):
    cus = stripe_account.customer(name="Acme", email="billing@acme.com", customer_id="acme")
    services.revenue_sync(organization=organization)
    stripe_account.client.v1.customers.update(cus, params={"name": "Acme Renamed"})

    services.revenue_sync(organization=organization)

    row = StripeCustomer.objects.get(organization=organization, stripe_id=cus)
    assert (row.name, row.email, row.metadata) == ("Acme Renamed", "billing@acme.com", {"customer_id": "acme"})
    assert row.raw["id"] == cus
    assert StripeCustomer.objects.filter(organization=organization).count() == 1


def test_sync_without_connection_is_not_found(organization):
    with pytest.raises(services.StripeNotConnected):
        services.revenue_sync(organization=organization)


def test_a_key_that_can_no_longer_be_decrypted_fails_the_sync_but_not_the_reads(
    organization, connected, settings, member_client
):
    from cryptography.fernet import Fernet

    from accounts.crypto import reset_key_cache
    from margins.stripe_api import StripeKeyRejected

    settings.SECRETS_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the key it was stored with is gone
    reset_key_cache()
    try:
        with pytest.raises(StripeKeyRejected, match="decrypted"):
            services.revenue_sync(organization=organization)
        assert StripeConnection.objects.filter(pk=connected.pk).values_list("status", flat=True).get() == "error"
        client = member_client(role="admin")
        assert client.get("/api/margins").json()["data"]["summary"]["syncStatus"] == "error"
        assert client.delete("/api/stripe/disconnect").status_code == 200
    finally:
        reset_key_cache()


def test_stripe_decimal_fields_are_stored_in_the_raw_payload(organization, settings):
    """Real invoices carry `*_decimal` fields the stripe library turns into Decimal; they must reach JSONB.
    localstripe omits them, so a stub serves a Stripe-shaped page here."""
    from tests.margins.http_stub import start_stub

    invoice = {
        "id": "in_dec1", "object": "invoice", "customer": "cus_dec1", "status": "paid", "currency": "usd",
        "amount_paid": 1250, "created": 1775000000, "status_transitions": {"paid_at": 1775000000},
        "lines": {"object": "list", "has_more": False, "data": [
            {"id": "il_1", "object": "line_item", "amount": 1250,
             "price": {"id": "price_1", "object": "price", "unit_amount_decimal": "12.5"}},
        ]},
    }
    stub, server = start_stub(routes={
        "/v1/customers": {"object": "list", "has_more": False, "data": []},
        "/v1/invoices": {"object": "list", "has_more": False, "data": [invoice]},
    })
    try:
        settings.STRIPE_API_BASE = stub.url
        StripeConnection.objects.create(
            organization=organization, secret_key="rk_live_4eC39HqLyjWDarjtT1zdp7dc", key_prefix="rk_live_4eC3...p7dc"
        )
        services.revenue_sync(organization=organization)
    finally:
        server.shutdown()

    row = StripeInvoice.objects.get(stripe_id="in_dec1")
    assert row.raw["lines"]["data"][0]["price"]["unit_amount_decimal"] == "12.5"
    assert (row.amount_paid_microdollars, row.period) == (12_500_000, "2026-03")


def test_an_uncollectible_invoice_paid_later_is_rechecked_and_counted(organization, settings):
    """Stripe lets an invoice marked uncollectible be paid afterwards; the sync must keep re-checking it.
    localstripe cannot mark invoices uncollectible, so a stub serves the Stripe-shaped answers here."""
    import json

    from tests.margins.http_stub import start_stub

    CustomerFactory(organization=organization, external_id="late")
    customer = {"id": "cus_unc1", "object": "customer", "name": "Late Payer", "metadata": {"customer_id": "late"},
                "created": 1772000000}
    invoice = {"id": "in_unc1", "object": "invoice", "customer": "cus_unc1", "status": "uncollectible",
               "currency": "usd", "amount_paid": 0, "created": 1772000000, "status_transitions": {}}
    paid = {**invoice, "status": "paid", "amount_paid": 4200, "status_transitions": {"paid_at": 1775000000}}
    stub, server = start_stub(routes={
        "/v1/invoices/in_unc1": invoice,
        "/v1/customers": {"object": "list", "has_more": False, "data": [customer]},
        "/v1/invoices": {"object": "list", "has_more": False, "data": [invoice]},
    })
    try:
        settings.STRIPE_API_BASE = stub.url
        StripeConnection.objects.create(
            organization=organization, secret_key="rk_live_4eC39HqLyjWDarjtT1zdp7dc", key_prefix="rk_live_4eC3...p7dc"
        )
        services.revenue_sync(organization=organization)
        assert StripeInvoice.objects.get(stripe_id="in_unc1").status == "uncollectible"
        stub.routes["/v1/invoices/in_unc1"] = json.dumps(paid).encode()  # paid since; the list still ends there

        result = services.revenue_sync(organization=organization)
    finally:
        server.shutdown()

    row = StripeInvoice.objects.get(stripe_id="in_unc1")
    assert (row.status, row.amount_paid_microdollars, row.period) == ("paid", 42_000_000, "2026-03")
    assert result.periods_updated == 1
    assert _revenue_by_tag(organization, "2026-03") == {"late": 42_000_000}
