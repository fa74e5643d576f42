"""Budgets, the SDK blocklist and the debounced budget evaluation after ingest."""

import json
import logging
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.tasking import enqueue

from .. import hooks, usage
from ..budgeting import (
    CUSTOMER,
    EMPTY_BLOCKED,
    BudgetRule,
    PeriodTotals,
    blocked_as_json,
    evaluate_budgets,
    period_bounds,
)
from ..hooks import BlockedSet
from ..models import BlocklistState, Budget, BudgetAlert, BudgetPendingCustomer

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# budgets


@transaction.atomic
def budget_create(
    *,
    organization,
    scope: str,
    limit_microdollars: int,
    scope_value: str = "",
    period: str = Budget.Period.MONTH,
    action: str = Budget.Action.BLOCK,
    enabled: bool = True,
    name: str = "",
) -> Budget:
    budget = Budget.objects.create(
        organization=organization,
        scope=scope,
        scope_value="" if scope == Budget.Scope.ORGANIZATION else scope_value,
        limit_microdollars=limit_microdollars,
        period=period,
        action=action,
        enabled=enabled,
        name=name,
    )
    blocklist_recompute(organization=organization)
    return budget


_EDITABLE = {"name", "scope", "scope_value", "limit_microdollars", "period", "action", "enabled"}


@transaction.atomic
def budget_update(*, budget: Budget, **changes) -> Budget:
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise TypeError(f"budget_update() got unexpected fields {sorted(unknown)}")
    for name, value in changes.items():
        setattr(budget, name, value)
    if budget.scope == Budget.Scope.ORGANIZATION:
        budget.scope_value = ""
    budget.save()
    blocklist_recompute(organization=budget.organization)
    return budget


@transaction.atomic
def budget_delete(*, budget: Budget) -> None:
    organization = budget.organization
    budget.delete()
    blocklist_recompute(organization=organization)


# --------------------------------------------------------------------------------------------
# blocklist


def blocklist_recompute(*, organization, now: datetime | None = None) -> BlocklistState:
    """Recompute the organization's blocklist: its enabled budgets (from the usage rollups) united
    with every registered block source (`events.hooks.blocked_by_sources`, e.g. billing's spending
    limits). The version grows only when the blocked set changes; reached budgets get one
    `BudgetAlert` per period and subject. Public: call it after anything that changes a source."""
    return _evaluate(organization, now or timezone.now(), incremental=False)


def blocklist_evaluate_changes(*, organization, now: datetime | None = None) -> BlocklistState:
    """The evaluation after ingest: like `blocklist_recompute`, but customer budgets are decided again
    only for the customers whose usage changed since the last evaluation (those ingest queued,
    `BudgetPendingCustomer`); the others keep what the last evaluation decided. Organization and
    event-type budgets read at most a row per day and event type. So its cost follows the customers
    an ingest touched, not the organization's size. Falls back to the full recompute when the last
    evaluation was on another UTC day (a day or month period rolled over) or there was none."""
    return _evaluate(organization, now or timezone.now(), incremental=True)


_TAKE_PENDING_SQL = (
    f"DELETE FROM {BudgetPendingCustomer._meta.db_table} WHERE organization_id = %s RETURNING customer_id"  # noqa: S608
)


def _evaluate(organization, now: datetime, *, incremental: bool) -> BlocklistState:
    with transaction.atomic():
        # One evaluation of an organization at a time (the row lock), so the customers taken below
        # are decided by exactly one of them, against the stored decisions of the one before.
        state = _locked_state(organization)
        # Taken before the usage is read: an ingest that commits after this statement leaves its
        # customers for the next evaluation (and schedules it); one before it is read below.
        with connection.cursor() as cursor:
            cursor.execute(_TAKE_PENDING_SQL, [organization.pk])
            changed = [customer_id for (customer_id,) in cursor.fetchall()]
        today = now.astimezone(UTC).date()
        if state.computed_at is None or state.computed_at.astimezone(UTC).date() != today:
            incremental = False
        budgets = list(Budget.objects.filter(organization=organization, enabled=True))
        rules = [BudgetRule(b.id, b.scope, b.scope_value, b.limit_microdollars, b.period, b.action) for b in budgets]
        budget_customers: set[str] = set()
        reached = []
        own = None
        if rules:
            customers = changed if incremental else None
            totals, seen = _period_totals(organization.pk, rules, now, customers=customers)
            own, reached = evaluate_budgets(rules, totals)
            budget_customers = set(own.customer_ids)
            if incremental:
                # A changed customer without usage in the periods cannot have moved: keep its decision.
                budget_customers |= set(state.budget_customer_ids or ()) - seen
        blocked = hooks.blocked_by_sources(organization=organization)
        if own is not None:
            blocked = BlockedSet(own.organization, own.event_types, frozenset(budget_customers)).union(blocked)
        wanted = blocked_as_json(blocked)
        stored_customers = sorted(budget_customers)
        if (state.blocked or EMPTY_BLOCKED) != wanted:
            state.version += 1
            state.blocked = wanted
            state.changed_at = now
        state.computed_at = now
        state.budget_customer_ids = stored_customers
        state.save()
        if reached:
            BudgetAlert.objects.bulk_create(
                [
                    BudgetAlert(
                        organization=organization,
                        budget_id=item.budget_id,
                        period_start=period_bounds(item.period, now)[0],
                        subject=item.subject,
                        action=item.action,
                        spent_microdollars=item.spent_microdollars,
                        limit_microdollars=item.limit_microdollars,
                    )
                    for item in reached
                ],
                ignore_conflicts=True,
            )
    return state


def _locked_state(organization) -> BlocklistState:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {BlocklistState._meta.db_table} (organization_id, version, blocked, budget_customer_ids) "  # noqa: S608
            "VALUES (%s, 0, %s::jsonb, '[]'::jsonb) ON CONFLICT (organization_id) DO NOTHING",
            [organization.pk, json.dumps(EMPTY_BLOCKED)],
        )
    return BlocklistState.objects.select_for_update().get(organization=organization)


def _period_totals(
    organization_id, rules: list[BudgetRule], now: datetime, *, customers: list[int] | None
) -> tuple[dict[str, PeriodTotals], set[str]]:
    """Cost per period: all of it and per event type (from the organization's daily rollups), and per
    customer (external id): every customer, or only ``customers`` (ids). Also returns the external
    ids of the customers read. Budget periods are whole UTC days and months: rollups alone."""
    periods = sorted({rule.period for rule in rules})
    bounds = {period: tuple(instant.date() for instant in period_bounds(period, now)) for period in periods}
    totals = {period: PeriodTotals() for period in periods}
    for period in periods:
        start, end = bounds[period]
        by_type = usage.organization_cost_by_event_type(organization_id=organization_id, start=start, end=end)
        totals[period].event_types = by_type
        totals[period].organization = sum(by_type.values())
    by_customer: dict[str, list[int]] = {}
    if any(rule.scope == CUSTOMER for rule in rules) and (customers is None or customers):
        by_customer = usage.customer_cost(
            organization_id=organization_id, windows=[bounds[period] for period in periods], customer_ids=customers
        )
    for external_id, amounts in by_customer.items():
        for period, amount in zip(periods, amounts, strict=True):
            totals[period].customers[external_id] = amount
    return totals, set(by_customer)


# --------------------------------------------------------------------------------------------
# debounced evaluation after ingest


def _lock_key(organization_id) -> str:
    return f"events:budget-eval:lock:{organization_id}"


def _dirty_key(organization_id) -> str:
    return f"events:budget-eval:dirty:{organization_id}"


def budget_evaluation_schedule(*, organization_id) -> bool:
    """Queue one budget evaluation for a burst of ingests (called on commit of each ingest).

    Every call marks the organization dirty; only the call that takes the lock queues the task
    (with a short countdown, so the burst lands first). The task clears the flag before it
    computes and re-queues itself if the flag was set again meanwhile, so no ingest is missed and a
    burst costs one recompute. Returns whether this call queued the task.
    """
    lock_seconds = settings.BUDGET_EVALUATION_LOCK_SECONDS
    cache.set(_dirty_key(organization_id), 1, timeout=lock_seconds * 10)
    if not cache.add(_lock_key(organization_id), 1, timeout=lock_seconds):
        return False
    try:
        enqueue(
            "events.tasks.evaluate_budgets",
            args=[str(organization_id)],
            countdown=settings.BUDGET_EVALUATION_DEBOUNCE_SECONDS,
        )
    except Exception:
        cache.delete(_lock_key(organization_id))
        raise
    return True


def budget_evaluation_run(*, organization_id) -> BlocklistState | None:
    """The task's body: evaluate the changes once, then release the lock and re-queue if more usage came in."""
    cache.delete(_dirty_key(organization_id))
    try:
        organization = Organization.objects.filter(pk=organization_id).first()
        state = blocklist_evaluate_changes(organization=organization) if organization is not None else None
    finally:
        cache.delete(_lock_key(organization_id))
    if organization is not None and cache.get(_dirty_key(organization_id)):
        budget_evaluation_schedule(organization_id=organization_id)
    return state


def budget_evaluation_pending(organization_id) -> bool:
    """A recompute is queued or running (the blocklist's `recompute_in_progress`)."""
    return cache.get(_lock_key(organization_id)) is not None


def blocklists_refresh() -> int:
    """Schedule a recompute for every organization with enabled budgets or a non-empty blocklist, so
    day and month budgets unblock when their period rolls over. Returns how many were scheduled."""
    organization_ids = set(Budget.objects.filter(enabled=True).values_list("organization_id", flat=True))
    organization_ids |= set(
        BlocklistState.objects.exclude(blocked=EMPTY_BLOCKED)
        .exclude(blocked={})
        .values_list("organization_id", flat=True)
    )
    for organization_id in organization_ids:
        budget_evaluation_schedule(organization_id=organization_id)
    return len(organization_ids)
