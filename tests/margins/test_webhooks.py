"""`margin.threshold_crossed`: signing, verification, delivery to a receiver on 127.0.0.1, retries, and
detection of tier changes after a sync."""

import json
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from margins import calculations, services, tasks, webhooks
from margins.models import CustomerHealth, WebhookDelivery, WebhookEndpoint
from tests.factories import CustomerFactory, OrganizationFactory
from tests.margins.conftest import record_usage
from tests.margins.http_stub import start_stub

pytestmark = pytest.mark.django_db

SECRET = webhooks.generate_secret()


# --- signing and verification (pure) -----------------------------------------------------------


def test_signature_round_trip():
    body = b'{"type":"margin.threshold_crossed"}'
    headers = webhooks.signed_headers(secret=SECRET, webhook_id="msg_1", body=body)

    assert headers["webhook-signature"].startswith("v1,")
    assert webhooks.verify_webhook(body=body, headers=headers, secret=SECRET) == {"type": "margin.threshold_crossed"}


def test_signature_is_hmac_sha256_over_id_timestamp_and_body():
    import base64
    import hashlib
    import hmac

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, b"msg_1.1700000000.{}", hashlib.sha256).digest()).decode()

    assert webhooks.sign(secret=SECRET, webhook_id="msg_1", timestamp=1700000000, body=b"{}") == "v1," + expected


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, b: (h, b + b" "), "signature mismatch"),
        (lambda h, b: ({**h, "webhook-id": "msg_2"}, b), "signature mismatch"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "webhook-signature"}, b), "missing header"),
        (lambda h, b: ({**h, "webhook-timestamp": "soon"}, b), "not an integer"),
    ],
)
def test_tampering_is_rejected(mutate, reason):
    body = b'{"a":1}'
    headers, body = mutate(webhooks.signed_headers(secret=SECRET, webhook_id="msg_1", body=body), body)

    with pytest.raises(webhooks.WebhookVerificationError, match=reason):
        webhooks.verify_webhook(body=body, headers=headers, secret=SECRET)


def test_stale_and_future_timestamps_are_rejected():
    now = int(time.time())
    body = b"{}"
    stale = webhooks.signed_headers(secret=SECRET, webhook_id="m", body=body, timestamp=now - 301)
    future = webhooks.signed_headers(secret=SECRET, webhook_id="m", body=body, timestamp=now + 120)
    fresh = webhooks.signed_headers(secret=SECRET, webhook_id="m", body=body, timestamp=now - 299)

    with pytest.raises(webhooks.WebhookVerificationError, match="too old"):
        webhooks.verify_webhook(body=body, headers=stale, secret=SECRET, now=now)
    with pytest.raises(webhooks.WebhookVerificationError, match="future"):
        webhooks.verify_webhook(body=body, headers=future, secret=SECRET, now=now)
    assert webhooks.verify_webhook(body=body, headers=fresh, secret=SECRET, now=now) == {}


def test_verification_accepts_any_of_several_signatures_and_rejects_other_secrets():
    body = b"{}"
    headers = webhooks.signed_headers(secret=SECRET, webhook_id="m", body=body)
    rotated = {**headers, "Webhook-Signature": "v1,bm90LXRoaXMtb25l " + headers["webhook-signature"]}
    del rotated["webhook-signature"]

    assert webhooks.verify_webhook(body=body, headers=rotated, secret=SECRET) == {}
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify_webhook(body=body, headers=headers, secret=webhooks.generate_secret())


# --- delivery ----------------------------------------------------------------------------------


@pytest.fixture
def receiver():
    servers = []

    def make(statuses=(200,)):
        stub, server = start_stub(list(statuses))
        servers.append(server)
        return stub

    yield make
    for server in servers:
        server.shutdown()


def _endpoint(organization, url, secret=SECRET):
    return WebhookEndpoint.objects.create(
        organization=organization, url=url + "/hooks", secret=secret, event_types=[webhooks.THRESHOLD_CROSSED]
    )


def _delivery(organization, endpoint):
    return WebhookDelivery.objects.create(
        organization=organization, endpoint=endpoint, event_type=webhooks.THRESHOLD_CROSSED,
        payload={"type": webhooks.THRESHOLD_CROSSED, "data": {"customer": "acme"}},
    )


def test_delivery_is_signed_and_recorded(organization, receiver):
    stub = receiver([204])
    delivery = _delivery(organization, _endpoint(organization, stub.url))

    tasks.webhook_deliver.delay(str(delivery.id))

    (request,) = stub.received
    assert request.path == "/hooks"
    payload = webhooks.verify_webhook(body=request.body, headers=request.headers, secret=SECRET)
    assert payload["data"] == {"customer": "acme"}
    assert request.headers["webhook-id"] == str(delivery.id)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_status) == ("succeeded", 1, 204)
    assert delivery.delivered_at is not None


def test_failed_deliveries_are_retried_then_given_up(organization, receiver, monkeypatch):
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)  # eager tasks re-run on Retry only then
    flaky = receiver([500, 503, 200])
    dead = receiver([500])
    recovers = _delivery(organization, _endpoint(organization, flaky.url))
    never = _delivery(organization, _endpoint(organization, dead.url))

    tasks.webhook_deliver.apply(args=[str(recovers.id)])
    outcome = tasks.webhook_deliver.apply(args=[str(never.id)])

    recovers.refresh_from_db()
    never.refresh_from_db()
    assert (recovers.status, recovers.attempts, recovers.last_error) == ("succeeded", 3, "")
    assert len({r.headers["webhook-id"] for r in flaky.received}) == 1  # same id on every retry
    assert outcome.state == "FAILURE"
    assert never.status == "failed"
    assert never.attempts == tasks.WEBHOOK_MAX_RETRIES + 1
    assert (never.response_status, never.last_error) == (500, "HTTP 500")


def test_a_succeeded_delivery_is_not_sent_again(organization, receiver):
    stub = receiver([200])
    delivery = _delivery(organization, _endpoint(organization, stub.url))
    tasks.webhook_deliver.delay(str(delivery.id))

    tasks.webhook_deliver.delay(str(delivery.id))

    assert len(stub.received) == 1


# --- threshold detection -----------------------------------------------------------------------


def test_tier_change_after_a_sync_sends_threshold_crossed(
    organization, connected, stripe_account, receiver, django_capture_on_commit_callbacks
):
    stub = receiver([200])
    _endpoint(organization, stub.url)
    WebhookEndpoint.objects.create(organization=OrganizationFactory(), url=stub.url + "/other", secret=SECRET)
    acme = CustomerFactory(organization=organization, external_id="acme", name="Acme")
    cus = stripe_account.customer(name="Acme Corp", customer_id="acme")
    stripe_account.paid_invoices(cus, amount=10000)  # 100 $ this month
    record_usage(acme, when=timezone.now(), cost=10_000_000)
    with django_capture_on_commit_callbacks(execute=True):
        services.revenue_sync(organization=organization)  # first sight: healthy (90 %), nothing sent
    assert CustomerHealth.objects.get(organization=organization, tag_value="acme").tier == "healthy"
    assert stub.received == []

    record_usage(acme, when=timezone.now() - timedelta(seconds=1), cost=85_000_000)  # now 5 %: critical
    with django_capture_on_commit_callbacks(execute=True):
        services.revenue_sync(organization=organization)
    with django_capture_on_commit_callbacks(execute=True):
        services.revenue_sync(organization=organization)  # no further change: nothing more

    (request,) = stub.received
    assert request.path == "/hooks"
    payload = webhooks.verify_webhook(body=request.body, headers=request.headers, secret=SECRET)
    assert payload["type"] == "margin.threshold_crossed"
    assert payload["orgId"] == str(organization.pk)
    assert payload["data"] == {
        "customer": "acme",
        "stripeCustomerId": cus,
        "customerName": "Acme Corp",
        "period": payload["data"]["period"],
        "previousTier": "healthy",
        "currentTier": "critical",
        "direction": "worsened",
        "marginPercent": 5,
        "revenueMicrodollars": 100_000_000,
        "costMicrodollars": 95_000_000,
    }
    assert WebhookDelivery.objects.get(organization=organization).status == "succeeded"


def test_settings_change_that_moves_a_tier_fires_too(organization, receiver, django_capture_on_commit_callbacks):
    stub = receiver([200])
    _endpoint(organization, stub.url)
    customer = CustomerFactory(organization=organization, external_id="evented")
    record_usage(customer, when=timezone.now(), cost=6_000_000, revenue=10_000_000)  # 40 %: at risk
    services.health_recompute(organization=organization)

    with django_capture_on_commit_callbacks(execute=True):
        services.margin_settings_update(organization=organization, healthy_min_percent=35)

    (request,) = stub.received
    data = json.loads(request.body)["data"]
    assert (data["previousTier"], data["currentTier"], data["direction"]) == ("at_risk", "healthy", "improved")


# --- webhook endpoint API ----------------------------------------------------------------------


def test_admin_registers_an_endpoint_and_sees_the_secret_once(member_client, organization):
    admin = member_client(role="admin")

    created = admin.post("/api/webhook-endpoints", {"url": "https://hooks.example.com/tl"}, format="json")
    listed = admin.get("/api/webhook-endpoints")

    assert created.status_code == 201
    secret = created.json()["data"]["secret"]
    assert secret.startswith("whsec_")
    assert created.json()["data"]["eventTypes"] == ["margin.threshold_crossed"]
    assert WebhookEndpoint.objects.get().secret == secret
    assert secret not in listed.content.decode()
    assert member_client(role="member").get("/api/webhook-endpoints").status_code == 403


@pytest.mark.parametrize("url", ["ftp://example.com/x", "not a url", "file:///etc/passwd"])
def test_endpoint_urls_must_be_http(member_client, organization, url):
    response = member_client(role="admin").post("/api/webhook-endpoints", {"url": url}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "url"


def test_delete_endpoint_is_tenant_scoped(member_client, organization):
    mine = _endpoint(organization, "https://a.example")
    theirs = _endpoint(OrganizationFactory(), "https://b.example")
    admin = member_client(role="admin")

    assert admin.delete(f"/api/webhook-endpoints?id={theirs.id}").status_code == 404
    assert admin.delete(f"/api/webhook-endpoints?id={mine.id}").status_code == 200
    assert list(WebhookEndpoint.objects.all()) == [theirs]


def test_a_new_month_sets_a_baseline_instead_of_alerting(organization, receiver, django_capture_on_commit_callbacks):
    stub = receiver([200])
    _endpoint(organization, stub.url)
    customer = CustomerFactory(organization=organization, external_id="monthly")
    last_month = timezone.now().replace(day=1) - timedelta(days=3)
    record_usage(customer, when=last_month, cost=1_000_000, revenue=10_000_000)  # healthy last month
    services.health_recompute(organization=organization, now=last_month)
    record_usage(customer, when=timezone.now(), cost=9_000_000, revenue=10_000_000)  # critical this month

    with django_capture_on_commit_callbacks(execute=True):
        services.health_recompute(organization=organization)

    assert stub.received == []
    health = CustomerHealth.objects.get(organization=organization, tag_value="monthly")
    assert (health.tier, health.period) == ("critical", calculations.period_of(timezone.now()))


def test_extreme_losses_are_stored(organization):
    customer = CustomerFactory(organization=organization, external_id="whale")
    record_usage(customer, when=timezone.now(), cost=10**15, revenue=1)

    services.health_recompute(organization=organization)

    assert CustomerHealth.objects.get(tag_value="whale").margin_percent == Decimal("-99999999999999900.0")


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_retries_a_failing_receiver_with_backoff(celery_worker_process, receiver):
    """On the `webhooks` queue of a real worker: the first answer is a 500, the retry (after its backoff
    countdown) succeeds, and both requests carry the same webhook-id with valid signatures."""
    organization = OrganizationFactory()
    stub = receiver([500, 200])
    delivery = _delivery(organization, _endpoint(organization, stub.url))

    tasks.webhook_deliver.delay(str(delivery.id)).get(timeout=60, propagate=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        delivery.refresh_from_db()
        if delivery.status == "succeeded":
            break
        time.sleep(0.2)

    assert (delivery.status, delivery.attempts) == ("succeeded", 2)
    assert [r.headers["webhook-id"] for r in stub.received] == [str(delivery.id)] * 2
    for request in stub.received:
        webhooks.verify_webhook(body=request.body, headers=request.headers, secret=SECRET)


# --- scheduled tier check ----------------------------------------------------------------------


def test_the_schedule_alerts_an_organization_without_stripe_when_usage_moves_a_tier(
    organization, receiver, django_capture_on_commit_callbacks
):
    """Revenue carried on events, no Stripe connection, so no sync ever runs: the beat task notices."""
    stub = receiver([200])
    _endpoint(organization, stub.url)
    free = OrganizationFactory(plan="free")
    _endpoint(free, stub.url)
    muted = OrganizationFactory()
    WebhookEndpoint.objects.create(organization=muted, url=stub.url, secret=SECRET, is_active=False)
    customer = CustomerFactory(organization=organization, external_id="evented")
    record_usage(customer, when=timezone.now(), cost=1_000_000, revenue=10_000_000)  # 90 %: healthy
    assert tasks.health_recompute_all.delay().get() == 1  # baseline; the free and the muted org are skipped

    record_usage(customer, when=timezone.now(), cost=8_000_000, revenue=0)  # 9 / 10: 10 %, critical
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.health_recompute_all.delay().get() == 1
    with django_capture_on_commit_callbacks(execute=True):
        tasks.health_recompute_all.delay().get()  # nothing changed since: nothing more

    (request,) = stub.received
    data = webhooks.verify_webhook(body=request.body, headers=request.headers, secret=SECRET)["data"]
    assert (data["customer"], data["previousTier"], data["currentTier"]) == ("evented", "healthy", "critical")
    assert not CustomerHealth.objects.filter(organization__in=[free, muted]).exists()


def test_health_check_schedule_is_installed_by_migration():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="margins.tasks.health_recompute_all")

    assert task.enabled
    assert (task.crontab.minute, task.queue) == ("*/10", "sync")


@pytest.mark.django_db(transaction=True)
def test_concurrent_recomputes_wait_for_each_other_instead_of_failing():
    """A sync and the schedule recomputing at once: the second waits for the first's baseline rather than
    inserting the same one and failing on the unique constraint."""
    import threading

    from django.db import connection, transaction

    organization = OrganizationFactory()
    customer = CustomerFactory(organization=organization, external_id="racer")
    record_usage(customer, when=timezone.now(), cost=1_000_000, revenue=10_000_000)
    first_done = threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with transaction.atomic():
                services.health_recompute(organization=organization)  # inserts the baseline, uncommitted
                first_done.set()
                time.sleep(0.5)  # the second one reaches its insert meanwhile
        except BaseException as exc:
            errors.append(exc)
        finally:
            first_done.set()
            connection.close()

    def second() -> None:
        first_done.wait(10)
        try:
            services.health_recompute(organization=organization)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert errors == []
    assert CustomerHealth.objects.filter(organization=organization).count() == 1
