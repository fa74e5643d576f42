"""The Celery application. Settings come from Django settings (CELERY_* names)."""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("tokenledger")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("default", "ingest", "billing", "sync", "webhooks")]
app.autodiscover_tasks()


@app.task(name="tokenledger.ping")
def ping() -> str:
    """Answer "pong": used by health checks and the broker test to see a round trip."""
    return "pong"
