"""Queue the recompute of customers' draft invoices, debounced: after usage commits (from the ingest
hook, metering.aggregate_usage), after a contract or a finalization changes a customer's drafts, and
after a metric's rollups are rebuilt. The task itself (billing.tasks.recompute_draft_invoice) is
queued by name, so this module never imports the tasks module that imports it back."""

from django.conf import settings
from django.core.cache import cache
from django.db import connection

from accounts.tasking import enqueue

from .models import Contract

RECOMPUTE_TASK = "billing.tasks.recompute_draft_invoice"


def _debounce_key(customer_id) -> str:
    return f"billing:draft-recompute:{customer_id}"


def schedule_draft_recompute(customer_id) -> bool:
    """Queue one recompute of the customer's drafts in BILLING_RECOMPUTE_DEBOUNCE_SECONDS, unless one is queued.

    A burst of ingests gives one recompute. None is lost: the task clears the key (`recompute_started`)
    before it reads any usage, so usage committed after that point schedules the next run.
    """
    delay = settings.BILLING_RECOMPUTE_DEBOUNCE_SECONDS
    if not cache.add(_debounce_key(customer_id), 1, timeout=delay + 300):
        return False
    enqueue(RECOMPUTE_TASK, args=[customer_id], countdown=delay)
    return True


def recompute_started(customer_id) -> None:
    """Called by the task before it reads usage: the next usage schedules another run."""
    cache.delete(_debounce_key(customer_id))


def queue_draft_recompute(*, customer_ids=()) -> None:
    """Recompute the customers' drafts, debounced (called after the usage committed).

    Only customers with a contract can have drafts (an invoice belongs to a contract, which cannot
    be deleted while it has one), so the others are left out with one query: for them a recompute
    does nothing, yet scheduling it costs a cache round trip and a task per customer (run inline,
    per ingest batch, when Celery is eager). A contract created after this query queues its own
    recompute when it commits, which sees this usage.
    """
    if not customer_ids:
        return
    with connection.cursor() as cursor:  # one array parameter, not one placeholder per customer
        cursor.execute(
            f"SELECT DISTINCT customer_id FROM {Contract._meta.db_table} WHERE customer_id = ANY(%s::bigint[])",  # noqa: S608
            [list(customer_ids)],
        )
        billed = {customer_id for (customer_id,) in cursor.fetchall()}
    for customer_id in customer_ids:
        if customer_id in billed:
            schedule_draft_recompute(customer_id)
