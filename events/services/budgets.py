"""Budgets, the SDK blocklist and the debounced budget evaluation after ingest."""

import json
import logging
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.tasking import enqueue

from .. import hooks
from ..budgeting import (
    EMPTY_BLOCKED,
    BudgetRule,
    PeriodTotals,
    blocked_as_json,
    evaluate_budgets,
    period_bounds,
)
from ..models import BlocklistState, Budget, BudgetAlert, Customer, UsageEvent

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
    """Recompute the organization's blocklist: its enabled budgets (set-based sums over each period)
    united with every registered block source (`events.hooks.blocked_by_sources`, e.g. billing's
    spending limits). The version grows only when the blocked set changes; reached budgets get one
    `BudgetAlert` per period and subject. Public: call it after anything that changes a source."""
    now = now or timezone.now()
    budgets = list(Budget.objects.filter(organization=organization, enabled=True))
    rules = [BudgetRule(b.id, b.scope, b.scope_value, b.limit_microdollars, b.period, b.action) for b in budgets]
    own, reached = evaluate_budgets(rules, _period_totals(organization.pk, rules, now)) if rules else (None, [])
    blocked = hooks.blocked_by_sources(organization=organization)
    if own is not None:
        blocked = own.union(blocked)
    wanted = blocked_as_json(blocked)

    state = BlocklistState.objects.filter(organization=organization).first()
    if state is not None and (state.blocked or EMPTY_BLOCKED) == wanted and not reached:
        return state  # the common case after ingest: nothing to write
    with transaction.atomic():
        if state is None or (state.blocked or EMPTY_BLOCKED) != wanted:
            state = _store_blocklist(organization, wanted, now)
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


def _store_blocklist(organization, wanted: dict, now: datetime) -> BlocklistState:
    """Under the row lock: bump the version only if the set really differs from the stored one."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {BlocklistState._meta.db_table} (organization_id, version, blocked) "  # noqa: S608
            "VALUES (%s, 0, %s::jsonb) ON CONFLICT (organization_id) DO NOTHING",
            [organization.pk, json.dumps(EMPTY_BLOCKED)],
        )
    state = BlocklistState.objects.select_for_update().get(organization=organization)
    if (state.blocked or EMPTY_BLOCKED) != wanted:
        state.version += 1
        state.blocked = wanted
        state.changed_at = now
    state.computed_at = now
    state.save()
    return state


def _period_totals(organization_id, rules: list[BudgetRule], now: datetime) -> dict[str, PeriodTotals]:
    """Cost per period, all / per event type / per customer, in one aggregate query."""
    periods = sorted({rule.period for rule in rules})
    bounds = {period: period_bounds(period, now) for period in periods}
    scan_start = min(start for start, _ in bounds.values())
    scan_end = max(end for _, end in bounds.values())
    sums, params = [], []
    for period in periods:
        start, end = bounds[period]
        sums.append("COALESCE(SUM(cost_microdollars) FILTER (WHERE occurred_at >= %s AND occurred_at < %s), 0)")
        params += [start, end]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT GROUPING(event_type), GROUPING(customer_id), event_type, customer_id, {', '.join(sums)} "  # noqa: S608
            f"FROM {UsageEvent._meta.db_table} WHERE organization_id = %s AND occurred_at >= %s AND occurred_at < %s "
            "GROUP BY GROUPING SETS ((), (event_type), (customer_id))",
            [*params, organization_id, scan_start, scan_end],
        )
        rows = cursor.fetchall()
    totals = {period: PeriodTotals() for period in periods}
    by_customer_pk: dict[int, list[int]] = {}
    for grouped_type, grouped_customer, event_type, customer_id, *amounts in rows:
        for period, amount in zip(periods, amounts, strict=True):
            if grouped_type and grouped_customer:
                totals[period].organization = int(amount)
            elif not grouped_type:
                totals[period].event_types[event_type] = int(amount)
        if not grouped_customer:
            by_customer_pk[customer_id] = [int(amount) for amount in amounts]
    if by_customer_pk:
        external_ids = dict(Customer.objects.filter(pk__in=by_customer_pk).values_list("pk", "external_id"))
        for customer_pk, amounts in by_customer_pk.items():
            for period, amount in zip(periods, amounts, strict=True):
                totals[period].customers[external_ids[customer_pk]] = amount
    return totals


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
    """The task's body: recompute once, then release the lock and re-queue if more usage came in."""
    cache.delete(_dirty_key(organization_id))
    try:
        organization = Organization.objects.filter(pk=organization_id).first()
        state = blocklist_recompute(organization=organization) if organization is not None else None
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
