"""Finalized invoices reach Stripe once: through localstripe and the real `stripe` library, including
crashes between steps, repeated runs, transient and permanent Stripe errors, $0 and non-USD invoices."""

from datetime import timedelta

import pytest

from billing.collection import services, stripe_calls
from billing.collection.models import ExternalInvoice
from billing.credits.models import CreditEntry, StripePaymentAccount
from billing.credits.services import credit_add
from billing.models import Invoice
from tests.billing.collection.helpers import billed_customer, finalize_february, tokens
from tests.localstripe_server import fail_next

pytestmark = pytest.mark.django_db

USAGE = [tokens(3_000_000, "alice"), tokens(1_500_000, "bob")]  # 3 million at 50¢ = $1.50; 1.5 million = $0.75


def stripe_invoices(stripe_api, stripe_customer_id):
    return [invoice.to_dict() for invoice in stripe_api.v1.invoices.list(params={"customer": stripe_customer_id})]


def lines(stripe_api, stripe_invoice_id):
    return [line.to_dict() for line in stripe_api.v1.invoices.line_items.list(stripe_invoice_id).data]


def push(invoice):
    return services.external_invoice_push(external_invoice_id=ExternalInvoice.objects.get(invoice=invoice).pk)


@pytest.fixture
def finalize(django_capture_on_commit_callbacks):
    return lambda customer: finalize_february(customer, django_capture_on_commit_callbacks)


def test_finalization_creates_finalizes_and_records_one_stripe_invoice(
    organization, pricing, stripe_billing, stripe_api, clock, finalize
):
    customer = billed_customer(organization, pricing, usage=USAGE)
    customer, invoice = finalize(customer)

    twin = invoice.external_invoice
    assert (twin.state, twin.error, twin.attempts) == ("finalized", "", 1)
    assert customer.stripe_customer_id and twin.stripe_customer_id == customer.stripe_customer_id
    stripe_customer = stripe_api.v1.customers.retrieve(customer.stripe_customer_id).to_dict()
    assert (stripe_customer["name"], stripe_customer["email"]) == ("Acme Ops", "billing@acme.test")
    assert stripe_customer["metadata"] == {"customer_id": "acme-ops"}

    (stripe_invoice,) = stripe_invoices(stripe_api, customer.stripe_customer_id)
    assert stripe_invoice["id"] == twin.stripe_invoice_id
    assert stripe_invoice["status"] == "open" and stripe_invoice["currency"] == "usd"
    assert stripe_invoice["collection_method"] == "charge_automatically" and stripe_invoice["auto_advance"] is True
    assert stripe_invoice["metadata"] == {
        "tokenledger_invoice_id": str(invoice.pk), "tokenledger_invoice_number": invoice.number,
        "tokenledger_invoice_kind": "regular", "tokenledger_customer_id": "acme-ops",
    }
    alice, bob = invoice.lines.order_by("position")
    sent = {line["metadata"]["tokenledger_line_id"]: line for line in lines(stripe_api, twin.stripe_invoice_id)}
    assert set(sent) == {str(alice.pk), str(bob.pk)}
    assert (sent[str(alice.pk)]["quantity"], sent[str(alice.pk)]["amount"]) == (3, 150)  # 3 x 50¢
    assert (sent[str(bob.pk)]["quantity"], sent[str(bob.pk)]["amount"]) == (1, 75)  # 1.5 million: one item of 75¢
    assert "1.5 million tokens" in sent[str(bob.pk)]["description"]
    assert sent[str(bob.pk)]["period"] == {
        "start": int(invoice.period_start.timestamp()), "end": int(invoice.period_end.timestamp())
    }
    assert sent[str(alice.pk)]["metadata"]["tokenledger_invoice_id"] == str(invoice.pk)
    assert (twin.sent_total, twin.stripe_total, twin.amount_due, twin.stripe_status) == (225, 225, 225, "open")
    assert twin.hosted_invoice_url.endswith(twin.stripe_invoice_id) and twin.invoice_pdf
    assert twin.due_at == twin.stripe_finalized_at + timedelta(hours=72)  # charge_automatically: past due after 72 h
    assert invoice.status == Invoice.Status.FINALIZED  # open in Stripe: ours stays finalized until paid


def test_running_the_push_again_changes_nothing(organization, pricing, stripe_billing, stripe_api, clock, finalize):
    customer, invoice = finalize(billed_customer(organization, pricing, usage=USAGE))
    before = ExternalInvoice.objects.get(invoice=invoice)

    from billing.collection.tasks import push_invoice

    assert push_invoice.delay(str(before.pk)).get() == "finalized"
    push(invoice)

    after = ExternalInvoice.objects.get(invoice=invoice)
    assert (after.stripe_invoice_id, after.attempts) == (before.stripe_invoice_id, 1)
    assert len(stripe_invoices(stripe_api, customer.stripe_customer_id)) == 1
    assert len(lines(stripe_api, after.stripe_invoice_id)) == 2


def test_a_crash_between_created_and_finalized_is_finished_by_the_next_run(
    organization, pricing, stripe_billing, stripe_api, clock, finalize, monkeypatch
):
    def worker_dies(**kwargs):
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(stripe_calls, "finalize_invoice", worker_dies)
        with pytest.raises(SystemExit):
            finalize(billed_customer(organization, pricing, usage=USAGE))
    twin = ExternalInvoice.objects.get()
    customer = twin.customer
    assert twin.state == "sent" and twin.stripe_invoice_id and twin.sent_total == 225
    (draft,) = stripe_invoices(stripe_api, twin.stripe_customer_id)
    assert draft["status"] == "draft"

    row = push(twin.invoice)

    assert (row.state, row.stripe_status, row.error) == ("finalized", "open", "")
    (stripe_invoice,) = stripe_invoices(stripe_api, customer.stripe_customer_id)
    assert stripe_invoice["status"] == "open" and stripe_invoice["id"] == twin.stripe_invoice_id
    assert len(lines(stripe_api, twin.stripe_invoice_id)) == 2


def test_a_crash_after_stripe_created_the_invoice_but_before_we_recorded_it(
    organization, pricing, stripe_billing, stripe_api, clock, finalize, monkeypatch
):
    """Stripe has the invoice, we do not know its id: the next run finds it by its metadata."""
    real_record, real_item = services._record_stripe_invoice, stripe_calls.create_item

    def dies_before_recording(*args, **kwargs):
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(services, "_record_stripe_invoice", dies_before_recording)
        with pytest.raises(SystemExit):
            finalize(billed_customer(organization, pricing, usage=USAGE))
    twin = ExternalInvoice.objects.get()
    assert (twin.state, twin.stripe_invoice_id) == ("pending", "")

    items_made = []
    with monkeypatch.context() as patch:  # and this time the worker dies after the first item
        def one_item_then_die(**kwargs):
            if items_made:
                raise SystemExit("worker killed")
            items_made.append(real_item(**kwargs))
            return items_made[-1]

        patch.setattr(stripe_calls, "create_item", one_item_then_die)
        with pytest.raises(SystemExit):
            push(twin.invoice)
    assert services._record_stripe_invoice is real_record

    row = push(twin.invoice)

    assert row.state == "finalized"
    (stripe_invoice,) = stripe_invoices(stripe_api, row.stripe_customer_id)
    assert stripe_invoice["id"] == row.stripe_invoice_id and stripe_invoice["total"] == 225
    assert sorted(line["amount"] for line in lines(stripe_api, row.stripe_invoice_id)) == [75, 150]


def test_transient_stripe_errors_are_retried_with_backoff(
    organization, pricing, stripe_billing, stripe_api, clock, finalize, localstripe
):
    fail_next(localstripe, "/v1/invoices", times=2, status=500)

    customer, invoice = finalize(billed_customer(organization, pricing, usage=USAGE))

    twin = ExternalInvoice.objects.get(invoice=invoice)
    assert (twin.state, twin.error, twin.attempts) == ("finalized", "", 3)
    assert len(stripe_invoices(stripe_api, customer.stripe_customer_id)) == 1


def test_a_push_that_keeps_meeting_transient_errors_gives_up_visibly(
    organization, pricing, stripe_billing, clock, finalize, localstripe, settings
):
    settings.STRIPE_INVOICING_MAX_RETRIES = 2
    fail_next(localstripe, "/v1/invoices", times=50, status=429)

    _, invoice = finalize(billed_customer(organization, pricing, usage=USAGE))

    twin = ExternalInvoice.objects.get(invoice=invoice)
    assert twin.state == "pending" and twin.attempts == 3
    assert twin.error.startswith("Gave up after repeated transient errors: RateLimitError")


def test_a_permanent_error_is_kept_and_a_retry_after_fixing_it_finishes(
    organization, pricing, stripe_billing, stripe_api, clock, finalize, api_client, django_capture_on_commit_callbacks
):
    customer = billed_customer(organization, pricing, usage=USAGE, stripe_customer_id="cus_deleted_in_stripe")
    customer, invoice = finalize(customer)

    twin = ExternalInvoice.objects.get(invoice=invoice)
    assert twin.state == "pending" and "InvalidRequestError" in twin.error
    shown = api_client.get(f"/api/v1/customers/acme-ops/invoices/{invoice.pk}").json()["data"]["external_invoice"]
    assert shown["state"] == "pending" and "InvalidRequestError" in shown["error"]
    assert services.external_invoice_push(external_invoice_id=twin.pk).attempts == 1  # stopped until a retry

    real = stripe_api.v1.customers.create(params={"name": "Acme Ops"}).id
    put = api_client.put(
        "/api/v1/customers/acme-ops/billing-configuration",
        {"bill_through_stripe": True, "stripe_customer_id": real}, format="json",
    )
    assert put.status_code == 200, put.content
    with django_capture_on_commit_callbacks(execute=True):
        retried = api_client.post(f"/api/v1/customers/acme-ops/invoices/{invoice.pk}/stripe/retry")

    assert retried.status_code == 202, retried.content
    twin.refresh_from_db()
    assert (twin.state, twin.error, twin.stripe_customer_id) == ("finalized", "", real)
    again = api_client.post(f"/api/v1/customers/acme-ops/invoices/{invoice.pk}/stripe/retry")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_without_a_stripe_account_the_push_fails_visibly(organization, pricing, localstripe, clock, finalize):
    _, invoice = finalize(billed_customer(organization, pricing, usage=USAGE))
    twin = ExternalInvoice.objects.get(invoice=invoice)
    assert twin.state == "pending" and "stripe-account" in twin.error
    assert not StripePaymentAccount.objects.exists()


def test_credits_are_one_negative_item_and_send_invoice_gets_a_due_date(
    organization, pricing, stripe_billing, stripe_api, clock, finalize
):
    customer = billed_customer(organization, pricing, collection_method="send_invoice", days_until_due=30,
                               auto_advance=False)
    credit_add(customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=1_000_000, reference="promo")  # $1
    from tests.billing.conftest import ingest

    ingest(organization, customer, USAGE)
    customer, invoice = finalize(customer)

    assert (invoice.total_cents, invoice.credits_applied_cents, invoice.amount_due_cents) == (225, 100, 125)
    twin = invoice.external_invoice
    (stripe_invoice,) = stripe_invoices(stripe_api, customer.stripe_customer_id)
    assert stripe_invoice["collection_method"] == "send_invoice" and stripe_invoice["auto_advance"] is False
    assert stripe_invoice["due_date"] == stripe_invoice["status_transitions"]["finalized_at"] + 30 * 86400
    sent = lines(stripe_api, twin.stripe_invoice_id)
    credit = [line for line in sent if line["metadata"]["tokenledger_line_id"] == "credits"]
    assert [(line["amount"], line["description"]) for line in credit] == [(-100, "Prepaid credits applied")]
    assert (stripe_invoice["total"], twin.sent_total, twin.stripe_total) == (125, 125, 125)
    assert twin.due_at == twin.stripe_finalized_at + timedelta(days=30)


def test_zero_invoices_are_not_sent_unless_configured(organization, pricing, stripe_billing, clock, finalize):
    quiet, invoice = finalize(billed_customer(organization, pricing))
    assert invoice.amount_due_cents == 0
    assert invoice.external_invoice.state == "skipped" and not invoice.external_invoice.stripe_invoice_id
    assert quiet.stripe_customer_id is None  # not even a Stripe customer was made


def test_zero_invoices_are_sent_when_configured_and_stripe_marks_them_paid(
    organization, pricing, stripe_billing, stripe_api, clock, finalize
):
    _, invoice = finalize(billed_customer(organization, pricing, send_zero_amount_invoices=True))
    twin = invoice.external_invoice
    assert (twin.state, twin.stripe_status, twin.stripe_total) == ("finalized", "paid", 0)
    assert invoice.status == Invoice.Status.PAID  # ours follows Stripe


def test_a_customer_billed_in_yen_gets_a_yen_invoice_in_whole_yen(
    organization, pricing, stripe_billing, stripe_api, clock, finalize
):
    """Rates are read in hundredths of the customer's currency: 3,000 million tokens at 50 → ¥1,500; 1,234,567
    tokens → 62 hundredths of a yen, sent as ¥1 (rounded half up, per line)."""
    customer = billed_customer(organization, pricing, currency="JPY",
                               usage=[tokens(3_000_000_000, "alice"), tokens(1_234_567, "bob")])
    customer, invoice = finalize(customer)

    assert (invoice.currency, invoice.total_cents) == ("JPY", 150_062)
    twin = invoice.external_invoice
    (stripe_invoice,) = stripe_invoices(stripe_api, customer.stripe_customer_id)
    assert (stripe_invoice["currency"], stripe_invoice["total"]) == ("jpy", 1501)
    by_amount = sorted((line["amount"], line["quantity"]) for line in lines(stripe_api, twin.stripe_invoice_id))
    assert by_amount == [(1, 1), (1500, 3000)]  # ¥0.5 per million tokens, 3,000 of them
    assert (twin.currency, twin.sent_total, twin.stripe_total) == ("jpy", 1501, 1501)
    march = Invoice.objects.get(customer=customer, status="draft")  # opened by the finalization
    assert march.currency == "JPY"


def test_a_second_worker_leaves_a_push_in_progress_alone(
    organization, pricing, stripe_billing, stripe_api, clock, django_capture_on_commit_callbacks
):
    """While one worker holds the push (its advisory lock, taken here on another connection), another
    run returns at once without calling Stripe."""
    import psycopg
    from django.db import connection

    from events.locks import uuid_lock_key

    customer = billed_customer(organization, pricing, usage=USAGE)
    with django_capture_on_commit_callbacks(execute=False):  # the queued push is not run
        from billing import invoicing

        invoicing.invoices_finalize_due()
    twin = ExternalInvoice.objects.get()
    params = connection.get_connection_params()
    with psycopg.connect(**{key: value for key, value in params.items() if key != "cursor_factory"}) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [uuid_lock_key(twin.pk, services._PUSH_LOCK_NAMESPACE)])
        row = services.external_invoice_push(external_invoice_id=twin.pk)
        assert (row.state, row.attempts, row.stripe_invoice_id) == ("pending", 0, "")
    customer.refresh_from_db()
    assert customer.stripe_customer_id is None  # Stripe was not called at all

    assert services.external_invoice_push(external_invoice_id=twin.pk).state == "finalized"


def test_a_lost_queue_message_is_requeued_by_the_beat_job(
    organization, pricing, stripe_billing, clock, django_capture_on_commit_callbacks
):
    from billing import invoicing
    from billing.collection.tasks import requeue_pending

    billed_customer(organization, pricing, usage=USAGE)
    with django_capture_on_commit_callbacks(execute=False):  # the broker lost the message
        invoicing.invoices_finalize_due()
    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_pending() == 0  # a push queued 0 minutes ago is left to its worker
    clock.shift(timedelta(minutes=11))

    with django_capture_on_commit_callbacks(execute=True):
        assert requeue_pending() == 1

    assert ExternalInvoice.objects.get().state == "finalized"


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (stripe_calls.stripe.APIConnectionError("connection reset"), True),
        (stripe_calls.stripe.RateLimitError("slow down", http_status=429), True),
        (stripe_calls.stripe.APIError("internal", http_status=503), True),
        (stripe_calls.stripe.APIError("no status"), True),
        (stripe_calls.stripe.InvalidRequestError("lock", None, http_status=409, code="lock_timeout"), True),
        (stripe_calls.stripe.InvalidRequestError("No such customer", "customer", http_status=404), False),
        (stripe_calls.stripe.AuthenticationError("bad key", http_status=401), False),
        (stripe_calls.stripe.PermissionError("restricted key", http_status=403), False),
        (stripe_calls.stripe.IdempotencyError("key reused", http_status=400), False),
    ],
)
def test_which_stripe_errors_are_retried(error, transient):
    assert stripe_calls.is_transient(error) is transient


def test_a_correction_invoice_for_late_usage_is_pushed_too(
    organization, customer, seed_pricing, stripe_billing, stripe_api, settings, django_capture_on_commit_callbacks
):
    """Issue 14's correction invoices (late usage of an ended contract) are finalized like any invoice,
    so they reach Stripe the same way, labelled as corrections."""
    from datetime import UTC, datetime

    import time_machine

    from billing import invoicing
    from billing import services as billing_services
    from billing.collection.services import billing_config_set
    from tests.billing.tokens import draft, send

    settings.INVOICE_FINALIZE_GRACE_HOURS = 24

    def late_tokens(at, count):
        return draft(customer.external_id, at, event_type="langModel4", properties={"tokens": count, "user_id": "u"})

    with time_machine.travel(datetime(2026, 11, 10, 8, 30, tzinfo=UTC), tick=True):
        contract = billing_services.contract_create(
            organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
            starting_at=datetime(2026, 10, 1, tzinfo=UTC), ending_before=datetime(2026, 12, 1, tzinfo=UTC),
        )
        billing_config_set(customer=customer, bill_through_stripe=True)
        send(organization, [late_tokens(datetime(2026, 11, 10, 8, tzinfo=UTC), 2_000_000)],
             now=datetime(2026, 11, 10, 8, 1, tzinfo=UTC))
        invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 11, 20, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        invoicing.invoices_finalize_due(now=datetime(2026, 12, 2, 12, tzinfo=UTC))
    send(organization, [late_tokens(datetime(2026, 11, 20, 23, 59, 59, tzinfo=UTC), 1_000_000)],
         now=datetime(2026, 12, 5, 10, 30, tzinfo=UTC))
    invoicing.customer_drafts_recompute(customer_id=customer.pk, now=datetime(2026, 12, 6, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        (correction,) = invoicing.invoices_finalize_due(now=datetime(2027, 1, 2, 12, tzinfo=UTC))

    assert (correction.kind, correction.total_cents, correction.contract_id) == ("correction", 50, contract.pk)
    twin = ExternalInvoice.objects.get(invoice=correction)
    assert twin.state == "finalized" and twin.stripe_total == 50
    stripe_invoice = stripe_api.v1.invoices.retrieve(twin.stripe_invoice_id).to_dict()
    assert stripe_invoice["metadata"]["tokenledger_invoice_kind"] == "correction"
    assert "correction, late usage of an ended contract that arrived in 2026-12" in stripe_invoice["description"]
    states = dict(ExternalInvoice.objects.values_list("invoice__period_start__month", "state"))
    assert states == {10: "skipped", 11: "finalized", 12: "finalized"}  # October was $0
