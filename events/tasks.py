"""Celery tasks of the ingest queue: thin wrappers that take ids and call one service."""

from celery import shared_task

from .services.budgets import blocklists_refresh, budget_evaluation_run


@shared_task(name="events.tasks.evaluate_budgets")
def evaluate_budgets(organization_id: str) -> int | None:
    """Recompute one organization's budgets and blocklist (idempotent); returns the blocklist version."""
    state = budget_evaluation_run(organization_id=organization_id)
    return None if state is None else state.version


@shared_task(name="events.tasks.refresh_blocklists")
def refresh_blocklists() -> int:
    """Beat: re-evaluate organizations with budgets so period rollovers lift blocks."""
    return blocklists_refresh()
