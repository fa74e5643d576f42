"""Reactions to usage: the drafts' recompute, queued by the ingest hook (metering.aggregate_usage)
once the ingest transaction commits."""

from django.db import connection

from .models import Contract
from .tasks import schedule_draft_recompute


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
