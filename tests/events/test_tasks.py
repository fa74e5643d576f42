"""events.tasks: the on-commit budget evaluation, on a real broker and worker when one is available."""

import time

import pytest
from django_celery_beat.models import PeriodicTask

from events.models import BlocklistState
from events.services import budget_create
from tests.events.conftest import md_event


@pytest.mark.django_db
def test_the_blocklist_refresh_is_scheduled_by_a_migration():
    task = PeriodicTask.objects.get(task="events.tasks.refresh_blocklists")
    assert task.interval is not None and task.interval.every == 60
    assert task.queue == "ingest" and task.enabled


@pytest.mark.django_db
def test_no_evaluation_is_queued_when_nothing_can_be_blocked(
    api_client, price_catalog, django_capture_on_commit_callbacks, monkeypatch
):
    from events import hooks, tasks

    monkeypatch.setattr(hooks, "_block_sources", [])
    queued = []
    monkeypatch.setattr(tasks.evaluate_budgets, "apply_async", lambda args, countdown: queued.append(args))

    with django_capture_on_commit_callbacks(execute=True):
        api_client.post("/api/v1/events", {"events": [md_event()]}, format="json")
    assert queued == []


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_ingest_commit_queues_the_evaluation_on_the_ingest_queue(
    celery_worker_process, api_client, price_catalog, organization, settings
):
    settings.BUDGET_EVALUATION_DEBOUNCE_SECONDS = 0.5
    budget_create(organization=organization, scope="customer", limit_microdollars=1)

    response = api_client.post("/api/v1/events", {"events": [md_event("heavy")]}, format="json")
    assert response.json()["budget_state_version"] == 0

    deadline = time.monotonic() + 60
    state = None
    while time.monotonic() < deadline:
        state = BlocklistState.objects.filter(organization=organization).first()
        if state is not None and state.version == 1:
            break
        time.sleep(0.2)
    assert state is not None and state.blocked["customer_ids"] == ["heavy"]
    assert api_client.get("/api/v1/budgets/blocklist?since_version=1").json()["changed"] is False
