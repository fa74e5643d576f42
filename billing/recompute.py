"""Queue the recompute of customers' draft invoices, debounced: after usage commits (from the ingest
hook, metering.aggregate_usage), after a contract or a finalization changes a customer's drafts, and
after a metric's rollups are rebuilt. The task itself (billing.tasks.recompute_draft_invoices, one
per call with every customer that needed one: an ingest batch over 100 contracted customers queues
one task, not 100) is queued by name, so this module never imports the tasks module that imports it
back."""

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from accounts.tasking import enqueue

from .models import Contract, StaleDrafts

RECOMPUTE_TASK = "billing.tasks.recompute_draft_invoices"
ADJUSTED_RECOMPUTE_TASK = "billing.tasks.recompute_adjusted_drafts"


def _debounce_key(customer_id) -> str:
    return f"billing:draft-recompute:{customer_id}"


RECOMPUTE_CHUNK = 100  # customers per task: one for an ingest batch (≤ 100 events), several for an organization


def schedule_drafts_recompute(customer_ids) -> list[int]:
    """Queue the recompute of the drafts of every customer in ``customer_ids`` that has no recompute
    queued yet, in BILLING_RECOMPUTE_DEBOUNCE_SECONDS: one task per RECOMPUTE_CHUNK customers (so an
    ingest batch queues one, and a refresh of a whole organization's drafts spreads over workers).
    Returns the customers it took.

    A burst of ingests gives one recompute per customer. None is lost: the task clears the customers'
    keys (`recompute_started`) before it reads any usage, so usage committed after that point
    schedules the next run.
    """
    delay = settings.BILLING_RECOMPUTE_DEBOUNCE_SECONDS
    timeout = delay + 300
    taken = [customer_id for customer_id in customer_ids if cache.add(_debounce_key(customer_id), 1, timeout=timeout)]
    for start in range(0, len(taken), RECOMPUTE_CHUNK):
        chunk = taken[start : start + RECOMPUTE_CHUNK]
        try:
            enqueue(RECOMPUTE_TASK, args=[chunk], countdown=delay)
        except Exception:
            cache.delete_many([_debounce_key(customer_id) for customer_id in taken[start:]])  # the next usage retries
            raise
    return taken


def schedule_draft_recompute(customer_id) -> bool:
    """`schedule_drafts_recompute` for one customer: whether a recompute was queued (False: one is)."""
    return bool(schedule_drafts_recompute([customer_id]))


def recompute_started(customer_ids) -> None:
    """Called by the task before it reads usage: the next usage of these customers schedules another run."""
    cache.delete_many([_debounce_key(customer_id) for customer_id in customer_ids])


def queue_draft_recompute(*, customer_ids=()) -> None:
    """Recompute the customers' drafts, debounced (called after the usage committed).

    Only customers with a contract can have drafts (an invoice belongs to a contract, which cannot
    be deleted while it has one), so the others are left out with one query: for them a recompute
    does nothing, yet scheduling it costs a cache round trip per customer. A contract created after
    this query queues its own recompute when it commits, which sees this usage.

    Without a worker (eager Celery), the request would run the recompute itself: instead the
    customers' drafts are marked stale (`StaleDrafts`, in the same one statement) and recomputed
    when they are next read (`invoicing.drafts_refresh`), except those of customers an invoice
    adjuster acts on (credits: their balance and auto top-up follow the draft), which are
    recomputed at once.
    """
    if not customer_ids:
        return
    if current_app.conf.task_always_eager:
        billed_ids = drafts_mark_stale(customer_ids)
        if billed_ids:
            enqueue(ADJUSTED_RECOMPUTE_TASK, args=[billed_ids])
        return
    with connection.cursor() as cursor:  # one array parameter, not one placeholder per customer
        cursor.execute(
            f"SELECT DISTINCT customer_id FROM {Contract._meta.db_table} WHERE customer_id = ANY(%s::bigint[])",  # noqa: S608
            [list(customer_ids)],
        )
        billed = {customer_id for (customer_id,) in cursor.fetchall()}
    billed_ids = [customer_id for customer_id in customer_ids if customer_id in billed]
    if billed_ids:
        schedule_drafts_recompute(billed_ids)


def drafts_mark_stale(customer_ids) -> list[int]:
    """Mark the drafts of those of ``customer_ids`` who have a contract stale (one statement; rows
    in customer order, so two ingests marking overlapping customers never deadlock); returns those
    customers, in order."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH billed AS (SELECT DISTINCT customer_id, organization_id FROM {Contract._meta.db_table} "  # noqa: S608
            "WHERE customer_id = ANY(%s::bigint[])), "
            f"marked AS (INSERT INTO {StaleDrafts._meta.db_table} (customer_id, organization_id, marked_at) "
            "SELECT customer_id, organization_id, now() FROM billed ORDER BY customer_id "
            "ON CONFLICT (customer_id) DO NOTHING) "
            "SELECT customer_id FROM billed ORDER BY customer_id",
            [sorted({int(customer_id) for customer_id in customer_ids})],
        )
        return [customer_id for (customer_id,) in cursor.fetchall()]


def stale_draft_customers(*, organization_id=None, customer_ids=None) -> list[int]:
    """Customers whose drafts are marked stale: of the organization (every one without it), among
    ``customer_ids`` if given; in order."""
    rows = StaleDrafts.objects.all()
    if organization_id is not None:
        rows = rows.filter(organization_id=organization_id)
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=list(customer_ids))
    return list(rows.order_by("customer_id").values_list("customer_id", flat=True))


def stale_marks_take(customer_ids) -> None:
    """Called by a recompute in its transaction before it reads usage: the customers' drafts are no
    longer stale (usage committed after this statement marks them again; a recompute that fails
    rolls back and leaves them marked)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {StaleDrafts._meta.db_table} WHERE customer_id = ANY(%s::bigint[])",  # noqa: S608
            [list(customer_ids)],
        )
