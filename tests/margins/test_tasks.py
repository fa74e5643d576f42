"""Celery tasks (run eagerly here): retries on transient Stripe errors only, fan-out, the beat schedule."""

import socket

import pytest
from django_celery_beat.models import PeriodicTask

from margins import tasks
from margins.models import StripeConnection, SyncRun
from margins.stripe_api import StripeKeyRejected, StripeSyncError, StripeTransientError
from tests.factories import OrganizationFactory
from tests.margins.conftest import STRIPE_TEST_KEY
from tests.margins.http_stub import start_stub

pytestmark = pytest.mark.django_db

@pytest.fixture(autouse=True)
def eager_retries_do_not_propagate(monkeypatch):
    """Eager tasks re-run themselves on Retry only when errors are not propagated to the caller."""
    from config.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)


def run_with_retries(task, *args):
    """Run a task eagerly the way a worker would: a Retry re-runs it (here at once, ignoring the countdown)
    until it succeeds or exhausts max_retries; the final outcome is returned, not raised."""
    return task.apply(args=args)


STRIPE_ERROR = {"error": {"message": "Stripe is having a bad day", "type": "api_error"}}


@pytest.fixture
def failing_stripe(settings, organization):
    """Point the Stripe client at a stub that answers with ``status`` on every request."""
    servers = []

    def make(status: int):
        stub, server = start_stub([status], STRIPE_ERROR)
        servers.append(server)
        settings.STRIPE_API_BASE = stub.url
        settings.STRIPE_MAX_NETWORK_RETRIES = 0  # let the task's own backoff do the retrying
        StripeConnection.objects.create(organization=organization, secret_key=STRIPE_TEST_KEY, key_prefix="sk_test_…")
        return stub

    yield make
    for server in servers:
        server.shutdown()


@pytest.mark.parametrize("status", [429, 500, 503])
def test_transient_stripe_errors_are_retried_with_backoff_then_raised(failing_stripe, organization, status):
    stub = failing_stripe(status)

    result = run_with_retries(tasks.revenue_sync_organization, str(organization.pk))

    assert result.state == "FAILURE" and isinstance(result.result, StripeTransientError)
    attempts = tasks.revenue_sync_organization.max_retries + 1
    assert SyncRun.objects.filter(organization=organization, status="failed").count() == attempts
    assert len(stub.received) == attempts  # each attempt stops at the first failing request
    assert StripeConnection.objects.get(organization=organization).status == "active"


def test_unreachable_stripe_is_transient(settings, organization):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again on exit: nothing listens there
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0
    StripeConnection.objects.create(organization=organization, secret_key=STRIPE_TEST_KEY, key_prefix="sk_test_…")

    result = run_with_retries(tasks.revenue_sync_organization, str(organization.pk))

    assert isinstance(result.result, StripeTransientError)
    assert SyncRun.objects.filter(organization=organization).count() == tasks.revenue_sync_organization.max_retries + 1


@pytest.mark.parametrize(("status", "error"), [(401, StripeKeyRejected), (400, StripeSyncError)])
def test_permanent_errors_are_not_retried(failing_stripe, organization, status, error):
    failing_stripe(status)

    result = run_with_retries(tasks.revenue_sync_organization, str(organization.pk))

    assert result.state == "FAILURE" and type(result.result) is error
    assert not result.result.transient
    assert SyncRun.objects.filter(organization=organization).count() == 1


def test_sync_all_fans_out_to_connected_pro_organizations(localstripe, stripe_account):
    from margins import services

    pro_1, pro_2, free = OrganizationFactory(), OrganizationFactory(), OrganizationFactory(plan="free")
    for org in (pro_1, pro_2, free):
        services.stripe_connect(organization=org, stripe_key=STRIPE_TEST_KEY)
    OrganizationFactory()  # not connected

    assert tasks.revenue_sync_all.delay().get() == 2
    synced = SyncRun.objects.filter(status="succeeded", trigger="schedule").values_list("organization", flat=True)
    assert set(synced) == {pro_1.pk, pro_2.pk}


def test_sync_task_for_a_disconnected_organization_is_a_no_op(organization):
    assert tasks.revenue_sync_organization.delay(str(organization.pk)).get() == {"skipped": True}


def test_beat_schedule_is_installed_by_migration():
    task = PeriodicTask.objects.get(task="margins.tasks.revenue_sync_all")

    assert task.enabled
    assert task.crontab.minute == "15"
    assert task.queue == "sync"
