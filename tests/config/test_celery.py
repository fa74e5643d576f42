import pytest

from config.celery import ping


def test_tasks_run_eagerly_without_a_broker(settings):
    if settings.REDIS_URL:
        pytest.skip("a broker is configured")

    assert ping.delay().get(timeout=1) == "pong"


@pytest.mark.broker
def test_a_task_runs_through_redis_on_a_real_worker(celery_worker_process):
    result = ping.apply_async(queue="default")

    assert result.get(timeout=30) == "pong"
    assert result.state == "SUCCESS"
    assert not result.__class__.__name__.startswith("Eager")
