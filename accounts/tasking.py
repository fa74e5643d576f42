"""Queue Celery tasks by name: the one way a service asks for work to be done later.

A tasks module imports the services it calls, so a service never imports a tasks module back: it
names the task (`"billing.tasks.recompute_draft_invoices"`) and queues it through here, usually once
its transaction commits. Each app's `ready()` imports its tasks modules, so every process (web,
worker, beat) has them registered and eager mode (no `REDIS_URL`) runs them in-process; a name
nobody registered is a `KeyError` at once, never a message sent to a queue nobody reads.
"""

from collections.abc import Sequence
from functools import partial

from celery import current_app
from django.db import transaction


def enqueue(task_name: str, *, args: Sequence = (), countdown: float | None = None) -> None:
    """Queue the registered task `task_name` now (eager mode runs it now)."""
    current_app.tasks[task_name].apply_async(args=list(args), countdown=countdown)


def enqueue_on_commit(
    task_name: str, *, args: Sequence = (), countdown: float | None = None, robust: bool = False
) -> None:
    """Queue the task once the current transaction commits (at once outside one). With `robust`, an
    error while queueing is logged and does not reach the caller, whose work is committed already."""
    transaction.on_commit(partial(enqueue, task_name, args=tuple(args), countdown=countdown), robust=robust)
