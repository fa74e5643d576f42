"""Cloudflare's own Python SDK (PyPI `cloudflare`, pinned in the test extras) against the real
TokenLedger server (`live_server`), with only `base_url` and `api_token` set: every public method of
`client.ai_gateway.billing` (invoice preview and history, usage history, credit balance, top-ups and
their status against localstripe, auto top-up configuration, spending limit), the v4 envelope on
success and on error, and `account_id` naming a customer by uuid, external id or ingest alias.

The clock is frozen (time-machine, ticking so the server can run) at 2026-06-10 12:30 UTC: May's
invoice is closed, June's is the draft.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from decimal import Decimal

import cloudflare
import pytest
import time_machine
from cloudflare import Cloudflare

from billing import invoicing, services
from billing.credits.models import AutoTopUpConfig
from billing.credits.selectors import credit_balance
from billing.models import Invoice
from tests.billing.conftest import ingest, utc
from tests.billing.conftest import seed_pricing as seed_pricing
from tests.billing.credits.helpers import pay_in_browser
from tests.billing.credits.helpers import stripe_api as stripe_api
from tests.billing.credits.helpers import stripe_organization as stripe_organization
from tests.factories import CustomerFactory, OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 6, 10, 12, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def account(organization):
    return CustomerFactory(
        organization=organization, external_id="cust_123", name="Globex", email="ap@globex.test",
        ingest_aliases=["gw-acct-7"],
    )  # fmt: skip


@pytest.fixture
def client(live_server, api_key) -> Cloudflare:
    # Cloudflare's base URL conventionally ends in /client/v4; the SDK appends /accounts/{account_id}/...
    with Cloudflare(api_token=api_key, base_url=f"{live_server.url}/client/v4", max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def billed(organization, account, seed_pricing, settings):
    """Seed 001's pricing (50 cents per million langModel4 tokens) on a contract since May: May closed at
    150 cents, June's draft at 125 cents (1.5M tokens on June 2, 1M on June 5)."""
    settings.INVOICE_FINALIZE_GRACE_HOURS = 0
    services.contract_create(
        organization=organization, customer=account, rate_card=seed_pricing["rate_card"], starting_at=utc(2026, 5, 1)
    )
    ingest(organization, account, [
        {"event_type": "langModel4", "occurred_at": utc(2026, 5, 3, 9), "properties": {"tokens": 3_000_000}},
        {"event_type": "langModel4", "occurred_at": utc(2026, 6, 2, 0, 30), "properties": {"tokens": 1_500_000}},
        {"event_type": "langModel4", "occurred_at": utc(2026, 6, 5, 23, 59, 59), "properties": {"tokens": 1_000_000}},
    ])  # fmt: skip
    invoicing.customer_drafts_recompute(customer_id=account.pk)
    (closed,) = invoicing.invoices_finalize_due()
    return closed


def ms(*args) -> int:
    return int(utc(*args).timestamp()) * 1000


def test_invoice_preview_is_the_current_draft(client, account, billed):
    preview = client.ai_gateway.billing.invoice_preview(account_id="cust_123")

    draft = Invoice.objects.get(customer=account, status=Invoice.Status.DRAFT)
    assert preview.id == str(draft.pk) and preview.status == "draft" and preview.currency == "usd"
    assert (preview.amount_due, preview.amount_paid, preview.amount_remaining) == (125, 0, 125)
    assert (preview.period_start, preview.period_end) == (ms(2026, 6, 1) // 1000, ms(2026, 7, 1) // 1000)
    (line,) = preview.invoice_lines
    assert (line.quantity, line.amount, line.pricing.unit_amount_decimal) == (2.5, 125, "50")


def test_invoice_history_pages_with_cloudflares_pagination(client, account, billed):
    history = client.ai_gateway.billing.invoice_history(account_id="gw-acct-7")  # an ingest alias

    (invoice,) = history.invoices
    assert (invoice.id, invoice.status, invoice.amount_due) == (str(billed.pk), "open", 150)
    assert history.pagination.model_dump() == {"has_more": False, "page": 1, "per_page": 20, "total_count": 1}
    assert client.ai_gateway.billing.invoice_history(account_id="cust_123", type="all").invoices[0].id == str(billed.pk)
    manual = client.ai_gateway.billing.invoice_history(account_id="cust_123", type="manual")
    assert manual.invoices == [] and manual.pagination.total_count == 0


def test_usage_history_by_day_and_hour_in_unix_milliseconds(client, account, billed):
    by_day = client.ai_gateway.billing.usage_history(
        account_id=str(account.uuid), value_grouping_window="day", start_time=ms(2026, 6, 1), end_time=ms(2026, 6, 7)
    )
    assert [(row.start_time, row.end_time) for row in by_day.history] == [
        (ms(2026, 6, day), ms(2026, 6, day + 1)) for day in range(1, 7)
    ]
    # What the contract charged that day, in cents: 1.5M and 1M tokens at 50 cents per million.
    assert [row.aggregated_value for row in by_day.history] == [0, 75, 0, 0, 50, 0]

    by_hour = client.ai_gateway.billing.usage_history(
        account_id="cust_123", value_grouping_window="hour", start_time=ms(2026, 6, 5, 22), end_time=ms(2026, 6, 6, 1)
    )
    assert [(row.start_time, row.aggregated_value) for row in by_hour.history] == [
        (ms(2026, 6, 5, 22), 0), (ms(2026, 6, 5, 23), 50), (ms(2026, 6, 6, 0), 0),
    ]  # fmt: skip


def test_errors_come_in_the_v4_envelope(client, live_server, api_key, account, billed):
    with pytest.raises(cloudflare.NotFoundError) as unknown:
        client.ai_gateway.billing.credit_balance(account_id="nobody")
    body = unknown.value.response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    assert body["errors"] == [{"code": 404, "message": "No account 'nobody' in this organization."}]

    theirs = CustomerFactory(organization=OrganizationFactory(name="Other"), external_id="theirs")
    for account_id in ("theirs", str(theirs.uuid)):
        with pytest.raises(cloudflare.NotFoundError):
            client.ai_gateway.billing.invoice_preview(account_id=account_id)

    with pytest.raises(cloudflare.BadRequestError) as bad:
        client.ai_gateway.billing.usage_history(account_id="cust_123", value_grouping_window="week")
    assert bad.value.response.json()["errors"][0]["code"] == 400

    wrong = Cloudflare(api_token="tl_live_not-a-key", base_url=f"{live_server.url}/client/v4", max_retries=0)
    with wrong, pytest.raises(cloudflare.AuthenticationError) as refused:
        wrong.ai_gateway.billing.credit_balance(account_id="cust_123")
    assert refused.value.response.json()["success"] is False

    # The same routes without /client/v4 in the base URL.
    with Cloudflare(api_token=api_key, base_url=live_server.url, max_retries=0) as bare:
        assert bare.ai_gateway.billing.invoice_history(account_id="cust_123").pagination.total_count == 1


def test_top_ups_auto_top_up_and_spending_limit(client, stripe_organization, stripe_api, account):
    billing = client.ai_gateway.billing

    empty = billing.credit_balance(account_id="cust_123")
    assert (empty.balance, empty.has_default_payment_method, empty.payment_method) == (0, False, None)
    nothing = empty.topup_config
    assert (nothing.amount, nothing.threshold, nothing.disabled_reason, nothing.error, nothing.last_failed_at) == (
        None, None, None, None, None,
    )  # fmt: skip

    created = billing.topup.create(account_id="cust_123", amount=2500)
    assert created.onboarding is False and created.client_secret and created.payment_intent_id.startswith("pi_")
    assert billing.topup.status(account_id="cust_123", payment_intent_id=created.payment_intent_id).status == "pending"
    assert pay_in_browser(stripe_api, created.payment_intent_id) == "succeeded"
    done = billing.topup.status(account_id="gw-acct-7", payment_intent_id=created.payment_intent_id)
    assert (done.payment_intent_id, done.status) == (created.payment_intent_id, "completed")
    assert credit_balance(customer=account) == 25_000_000

    balance = billing.credit_balance(account_id="cust_123")
    assert (balance.balance, balance.has_default_payment_method, balance.first_topup_success) == (2500, True, True)
    assert (balance.payment_method.brand, balance.payment_method.last4) == ("visa", "4242")

    # Saved card: the next top-up is charged at once.
    onboarded = billing.topup.create(account_id="cust_123", amount=1000)
    assert (onboarded.onboarding, onboarded.brand, onboarded.last4) == (True, "visa", "4242")
    assert billing.credit_balance(account_id="cust_123").balance == 3500
    with pytest.raises(cloudflare.BadRequestError):
        billing.topup.create(account_id="cust_123", amount=1000, payment_method_id="pm_other")
    with pytest.raises(cloudflare.BadRequestError):
        billing.topup.create(account_id="cust_123", amount=999)  # Cloudflare's minimum is 1000 cents

    config = billing.topup.config.create(account_id="cust_123", amount=1000, threshold=500)
    assert (config.amount, config.threshold) == (1000, 500)
    read = billing.topup.config.get(account_id="cust_123")
    assert (read.amount, read.threshold, read.disabled_reason, read.error, read.last_failed_at) == (
        1000, 500, None, None, None,
    )  # fmt: skip
    # After failed auto top-ups: the fields Cloudflare spells disabledReason / lastFailedAt reach the SDK.
    AutoTopUpConfig.objects.filter(customer=account).update(
        error="card_declined", disabled_reason="too many failures", last_failed_at=utc(2026, 6, 9, 8)
    )
    failed = billing.credit_balance(account_id="cust_123").topup_config
    assert (failed.amount, failed.error, failed.disabled_reason, failed.last_failed_at) == (
        1000, "card_declined", "too many failures", ms(2026, 6, 9, 8) // 1000,
    )  # fmt: skip
    assert billing.topup.config.get(account_id="cust_123").disabled_reason == "too many failures"
    assert billing.topup.config.delete(account_id="cust_123") == {}
    assert billing.topup.config.get(account_id="cust_123").amount is None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Cloudflare deprecated creating limits; we keep it
        set_limit = billing.spending_limit.create(account_id="cust_123", amount=5000, duration="monthly",
                                                  strategy="fixed")  # fmt: skip
    assert set_limit == {"config": {"amount": 5000, "duration": "monthly", "strategy": "fixed"}, "enabled": True}
    limit = billing.spending_limit.get(account_id="cust_123")
    assert (limit.config.amount, limit.config.duration, limit.config.strategy, limit.enabled) == (
        5000, "monthly", "fixed", True,
    )  # fmt: skip
    assert billing.spending_limit.delete(account_id="cust_123") == {}
    assert billing.spending_limit.get(account_id="cust_123").enabled is False
    assert Decimal(billing.credit_balance(account_id="cust_123").balance) == 3500
