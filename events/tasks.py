"""Celery tasks of the ingest queue: thin wrappers that take ids and call one service."""

from celery import shared_task

from .services.budgets import blocklists_refresh, budget_evaluation_run
from .services.partitions import ledger_partitions_ensure


@shared_task(name="events.tasks.evaluate_budgets")
def evaluate_budgets(organization_id: str) -> int | None:
    """Recompute one organization's budgets and blocklist (idempotent); returns the blocklist version."""
    state = budget_evaluation_run(organization_id=organization_id)
    return None if state is None else state.version


@shared_task(name="events.tasks.refresh_blocklists")
def refresh_blocklists() -> int:
    """Beat: re-evaluate organizations with budgets so period rollovers lift blocks."""
    return blocklists_refresh()


@shared_task(name="events.tasks.ensure_ledger_partitions")
def ensure_ledger_partitions() -> dict[str, int]:
    """Beat (daily): the ledger's partitions for this month and LEDGER_PARTITION_MONTHS_AHEAD more;
    returns {"YYYY-MM": rows moved from the DEFAULT partition} of those it created."""
    return {f"{month:%Y-%m}": moved for month, moved in ledger_partitions_ensure().items()}
