"""Fixtures shared by every app's tests.

- `organization` (Pro) / `free_organization`, `api_key` (secret string) and `api_client` (a DRF
  client authenticated with it), `member_client(role=...)` for session-authenticated callers.
- `celery_worker_process`: a real Celery worker subprocess on the test database, for tests marked
  `broker` (they run only when REDIS_URL is set).
"""

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import time_machine
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import Organization, Role
from accounts.services import api_key_cache_clear, api_key_create
from tests.factories import MembershipFactory, OrganizationFactory

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    if os.environ.get("REDIS_URL"):
        return
    skip = pytest.mark.skip(reason="needs a Redis broker: set REDIS_URL (CI does)")
    for item in items:
        if "broker" in item.keywords:
            item.add_marker(skip)


CLOCK_ENV = "TOKENLEDGER_TEST_CLOCK"


@pytest.fixture(autouse=True)
def _clock(request):
    """Tests marked `clock` depend on what time it is. With TOKENLEDGER_TEST_CLOCK set (an ISO 8601
    instant; `.ci/run` uses 00:30, 23:59:59 and a month's last day) they run with the clock frozen
    there; otherwise at the real time. Either way they must pass."""
    frozen = os.environ.get(CLOCK_ENV)
    if not frozen or request.node.get_closest_marker("clock") is None:
        yield
        return
    with time_machine.travel(datetime.fromisoformat(frozen), tick=False):
        yield


@pytest.fixture(autouse=True)
def _celery_joins_allowed():
    """Celery marks "a task is running here, do not join a result" in one process-wide flag while an
    eager task runs, and each eager run restores the value it found. Two eager runs that overlap in
    two threads (concurrent ingests, each queuing its budget evaluation on commit) can restore in
    the wrong order and leave the flag set with no task running: every later `.get()` on an eager
    result in the session then raises "Never call result.get() within a task!". No task runs between
    tests, so each starts with the flag clear."""
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield


@pytest.fixture(autouse=True)
def _fresh_api_key_cache():
    """Keys verified in one test are not trusted in the next (each test has its own database state),
    and one test's failed authentications do not count against the next one's (same test address)."""
    from django.core.cache import cache

    api_key_cache_clear()
    cache.delete("throttle:auth_failures:127.0.0.1")
    yield
    api_key_cache_clear()


@pytest.fixture
def organization(db) -> Organization:
    return OrganizationFactory(name="Acme AI", plan=Organization.Plan.PRO)


@pytest.fixture
def free_organization(db) -> Organization:
    return OrganizationFactory(name="Tiny Free", plan=Organization.Plan.FREE)


@pytest.fixture
def api_key(organization) -> str:
    _, raw_key = api_key_create(organization=organization, name="tests")
    return raw_key


@pytest.fixture
def api_client(api_key) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture
def anonymous_client() -> APIClient:
    return APIClient()


@pytest.fixture
def member_client(organization):
    """Factory: a session-authenticated client for a new user with ``role`` in ``org`` (default: organization)."""

    def make(role: str = Role.MEMBER, org: Organization | None = None) -> APIClient:
        membership = MembershipFactory(organization=org or organization, role=role)
        client = APIClient()
        client.force_login(membership.user)
        client.user = membership.user
        return client

    return make


@pytest.fixture
def admin_client_logged_in(client):
    """Django's test client logged in as a superuser (for admin pages)."""
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def shared_dir() -> Path:
    if not settings.SHARED_DIR.exists():
        pytest.fail(f"shared data folder not found at {settings.SHARED_DIR}; set TOKENLEDGER_SHARED_DIR")
    return settings.SHARED_DIR


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, localstripe_url):
    """Start a real Celery worker (all queues) against REDIS_URL and the test database, with Stripe's
    API at this run's localstripe (tasks that call Stripe reach it as the tests' own code does); stop
    it after."""
    from config.celery import app

    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        pytest.skip("needs REDIS_URL")
    env = {
        **os.environ,
        "DATABASE_NAME": connection.settings_dict["NAME"],
        "REDIS_URL": redis_url,
        "CONN_MAX_AGE": "0",
        "STRIPE_API_BASE": localstripe_url,
    }
    hostname = f"test-worker-{os.getpid()}@%h"
    log_path = REPO_ROOT / ".data" / f"celery-worker-{os.getpid()}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,ingest,billing,sync,webhooks",
             "--pool", "solo", "-n", hostname, "-l", "info", "--without-gossip", "--without-mingle"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log_path.read_text()[-4000:]}")
            if app.control.ping(timeout=0.5):
                break
        else:
            pytest.fail(f"celery worker did not answer ping within 60s:\n{log_path.read_text()[-4000:]}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def localstripe_url() -> str:
    from tests.localstripe_server import start_localstripe

    return start_localstripe()


@pytest.fixture
def localstripe(localstripe_url, settings) -> str:
    """A clean localstripe, with settings.STRIPE_API_BASE pointing at it. Returns its base URL."""
    from tests.localstripe_server import flush

    flush(localstripe_url)
    settings.STRIPE_API_BASE = localstripe_url
    return localstripe_url
