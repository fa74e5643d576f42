"""events' write API. Other apps call these (never the models directly).

- `ingest_events`: the one ingest core every dialect feeds.
- `customers_resolve`, `customer_create`: customers from any identifier.
- `blocklist_recompute`: call it after anything that changes a block source's answer.
- `budget_create` / `budget_update` / `budget_delete`.
"""

from .budgets import (
    blocklist_recompute,
    budget_create,
    budget_delete,
    budget_evaluation_schedule,
    budget_update,
)
from .customers import customer_create, customers_resolve
from .ingest import ingest_events

__all__ = [
    "blocklist_recompute",
    "budget_create",
    "budget_delete",
    "budget_evaluation_schedule",
    "budget_update",
    "customer_create",
    "customers_resolve",
    "ingest_events",
]
