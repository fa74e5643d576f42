import pytest
from django_celery_beat.models import PeriodicTask

from costcalc.models import ModelPrice
from costcalc.tasks import refresh_model_prices

from ._shared import PRICING_HISTORY, shared_file

pytestmark = pytest.mark.django_db


def test_the_daily_refresh_is_scheduled_by_a_migration():
    task = PeriodicTask.objects.get(task="costcalc.tasks.refresh_model_prices")
    assert task.crontab is not None and task.crontab.hour == "4" and task.crontab.day_of_week == "*"
    assert task.queue == "sync" and task.enabled


def test_refresh_syncs_the_configured_sources_and_is_idempotent(settings):
    settings.COSTCALC_PRICE_SOURCES = ["genai-prices", f"openrouter-history={shared_file(PRICING_HISTORY)}"]
    first = refresh_model_prices.apply().get()
    assert first[0].startswith("genai-prices: ") and first[1].startswith("openrouter-history: ")
    count = ModelPrice.objects.count()
    second = refresh_model_prices.apply().get()
    assert all(" 0 added, 0 changed," in line for line in second)
    assert ModelPrice.objects.count() == count


def test_a_source_that_cannot_be_loaded_does_not_stop_the_others(settings):
    settings.COSTCALC_PRICE_SOURCES = ["openrouter=/no/such/file.json", "genai-prices"]
    summaries = refresh_model_prices.apply().get()
    assert summaries[0] == "openrouter: failed to load"
    assert ModelPrice.objects.filter(source="genai-prices").exists()


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_the_refresh_runs_on_a_real_worker_from_the_sync_queue(celery_worker_process):
    result = refresh_model_prices.apply_async(queue="sync")
    summaries = result.get(timeout=120)
    assert summaries[0].startswith("genai-prices: ")
    assert ModelPrice.objects.filter(source="genai-prices").count() > 1000
