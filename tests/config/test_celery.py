import pytest

from config.celery import ping


@pytest.fixture
def eager(settings):
    if settings.REDIS_URL:
        pytest.skip("a broker is configured")


def test_eager_tasks_overlapping_in_two_threads_leave_celerys_join_flag_set():
    """The hazard tests/conftest.py's `_celery_joins_allowed` clears before every test: the test
    after this one joins an eager result and passes only because of it."""
    import threading

    from celery._state import task_join_will_block
    from celery.result import denied_join_result

    first_in, second_in = threading.Event(), threading.Event()

    def first():
        with denied_join_result():  # an eager run: finds the flag clear, will restore it clear
            first_in.set()
            second_in.wait(5)

    def second():
        first_in.wait(5)
        with denied_join_result():  # finds it set by the first, will restore it set, after the first
            second_in.set()
            threading.Event().wait(0.05)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert task_join_will_block()  # no task runs, yet a join would be refused


def test_tasks_run_eagerly_without_a_broker(eager):
    assert ping.delay().get(timeout=1) == "pong"


def test_eager_tasks_log_no_success_line_and_their_failures_reach_the_caller(eager, caplog):
    import logging

    from celery import shared_task

    @shared_task(name="tests.fails")
    def fails():
        raise ValueError("boom")

    with caplog.at_level(logging.INFO):
        ping.delay()
        with pytest.raises(ValueError):
            fails.delay()

    assert not [record for record in caplog.records if record.name == "celery.app.trace"]


@pytest.mark.broker
def test_a_task_runs_through_redis_on_a_real_worker(celery_worker_process):
    result = ping.apply_async(queue="default")

    assert result.get(timeout=30) == "pong"
    assert result.state == "SUCCESS"
    assert not result.__class__.__name__.startswith("Eager")
