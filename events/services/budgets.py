"""Budgets, the SDK blocklist and the debounced budget evaluation after ingest."""
# ruff: noqa: S608  (SQL built from table names only; values are parameters)

import json
import logging
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Organization
from accounts.sql import fetch_one, fetch_pipelined
from accounts.tasking import enqueue

from .. import hooks
from ..budgeting import (
    DAY,
    EMPTY_BLOCKED,
    MONTH,
    BudgetRule,
    PeriodTotals,
    blocked_as_json,
    budget_headroom,
    evaluate_budgets,
    period_bounds,
)
from ..hooks import BlockedSet
from ..models import (
    BlocklistState,
    Budget,
    BudgetAlert,
    BudgetPendingCustomer,
    Customer,
    OrganizationUsageDay,
    UsageDay,
)

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


def blocklist_recompute(*, organization, now: datetime | None = None) -> BlocklistState | None:
    """Recompute the organization's blocklist: its enabled budgets (from the usage rollups) united
    with every registered block source (`events.hooks.blocked_by_sources`, e.g. billing's spending
    limits). The version grows only when the blocked set changes; reached budgets get one
    `BudgetAlert` per period and subject. Public: call it after anything that changes a source."""
    return _evaluate(organization, now or timezone.now(), incremental=False)


def blocklist_evaluate_changes(*, organization, now: datetime | None = None) -> BlocklistState | None:
    """The evaluation after ingest: like `blocklist_recompute`, but customer budgets are decided again
    only for the customers whose usage changed since the last evaluation (those ingest queued,
    `BudgetPendingCustomer`); the others keep what the last evaluation decided. Organization and
    event-type budgets read at most a row per day and event type. So its cost follows the customers
    an ingest touched, not the organization's size. Falls back to the full recompute when the last
    evaluation was on another UTC day (a day or month period rolled over) or there was none. None
    when the organization no longer exists (``organization`` may be an unsaved `Organization(pk=…)`).

    Skipped, one read instead, while nothing can have changed: the last evaluation was today, no
    block source watches the organization, and the organization has spent less since then than the
    headroom that evaluation stored (the least further spend that could reach a budget: no
    customer's or event type's spend grows by more than the organization's). The customers ingest
    queued stay queued for the evaluation that runs."""
    now = now or timezone.now()
    return _unchanged_state(organization, now) or _evaluate(organization, now, incremental=True)


_STATE = BlocklistState._meta.db_table
_BUDGETS = Budget._meta.db_table
# A lock of its own per organization (one evaluation at a time), in the one-key space of the ledger
# locks: the organization's 64-bit ledger key XOR a constant ("BDGT").
_EVALUATION_LOCK_SQL = "SELECT pg_advisory_xact_lock(events_ledger_lock_key(%(organization)s::uuid) # 1111770964)"
_STATE_SQL = (
    f"SELECT version, blocked, computed_at, changed_at, budget_customer_ids, headroom_microdollars, "
    f"month_spend_microdollars FROM {_STATE} "
    "WHERE organization_id = %(organization)s"
)
_RULES_SQL = (
    f"SELECT id, scope, scope_value, limit_microdollars, period, action FROM {_BUDGETS} "
    "WHERE organization_id = %(organization)s AND enabled ORDER BY id"
)
# Cost of the month and of the day (inside it) per event type, over all customers.
_ORGANIZATION_TOTALS_SQL = (
    "SELECT event_type, sum(cost_microdollars), "
    "coalesce(sum(cost_microdollars) FILTER (WHERE day = %(day)s), 0) "
    f"FROM {OrganizationUsageDay._meta.db_table} WHERE organization_id = %(organization)s "
    "AND day >= %(month_start)s AND day < %(month_end)s GROUP BY 1"
)
# Takes the customers ingest queued and reads their month and day cost, in one statement (one
# snapshot): whatever committed before it is both taken and read; what commits after it is left
# for the next evaluation. Every customer is read instead when the last evaluation was not today
# (the periods rolled over, or there was none); none when no customer budget is enabled.
_CUSTOMER_TOTALS_SQL = f"""
WITH taken AS (
    DELETE FROM {BudgetPendingCustomer._meta.db_table} WHERE organization_id = %(organization)s RETURNING customer_id
), scope AS (
    SELECT EXISTS (SELECT 1 FROM {_BUDGETS} WHERE organization_id = %(organization)s AND enabled
                   AND scope = 'customer') AS any_budget,
           %(full)s OR NOT EXISTS (SELECT 1 FROM {_STATE} WHERE organization_id = %(organization)s
                                   AND computed_at >= %(day_start)s AND computed_at < %(day_end)s) AS everyone
)
SELECT c.external_id, sum(d.cost_microdollars), coalesce(sum(d.cost_microdollars) FILTER (WHERE d.day = %(day)s), 0)
FROM {UsageDay._meta.db_table} d JOIN {Customer._meta.db_table} c ON c.id = d.customer_id, scope
WHERE scope.any_budget AND scope.everyone AND d.organization_id = %(organization)s
    AND d.day >= %(month_start)s AND d.day < %(month_end)s
GROUP BY 1
UNION ALL
SELECT c.external_id, s.month_cost, s.day_cost
FROM (SELECT DISTINCT customer_id FROM taken) AS t
JOIN {Customer._meta.db_table} c ON c.id = t.customer_id
CROSS JOIN scope
CROSS JOIN LATERAL (  -- an index range per customer taken, whatever the organization's size
    SELECT sum(d.cost_microdollars) AS month_cost,
        coalesce(sum(d.cost_microdollars) FILTER (WHERE d.day = %(day)s), 0) AS day_cost
    FROM {UsageDay._meta.db_table} d WHERE d.organization_id = %(organization)s AND d.customer_id = t.customer_id
        AND d.day >= %(month_start)s AND d.day < %(month_end)s
) AS s
WHERE scope.any_budget AND NOT scope.everyone AND s.month_cost IS NOT NULL
"""
_WRITE_STATE_SQL = f"""
INSERT INTO {_STATE} (organization_id, version, blocked, computed_at, changed_at, budget_customer_ids,
    headroom_microdollars, month_spend_microdollars)
VALUES (%(organization)s, %(version)s, %(blocked)s::jsonb, %(computed_at)s, %(changed_at)s, %(customers)s::jsonb,
    %(headroom)s, %(month_spend)s)
ON CONFLICT (organization_id) DO UPDATE SET version = EXCLUDED.version, blocked = EXCLUDED.blocked,
    computed_at = EXCLUDED.computed_at, changed_at = EXCLUDED.changed_at,
    budget_customer_ids = EXCLUDED.budget_customer_ids, headroom_microdollars = EXCLUDED.headroom_microdollars,
    month_spend_microdollars = EXCLUDED.month_spend_microdollars
"""
# One row per budget, period and subject, the first time it is found reached: every evaluation of
# an organization at its limits finds the same ones again, so the insert is set-based (one
# statement, not a model instance per reached customer).
_ALERTS_SQL = f"""
INSERT INTO {BudgetAlert._meta.db_table} (organization_id, budget_id, period_start, subject, action,
    spent_microdollars, limit_microdollars, created_at)
SELECT %(organization)s, a.budget, a.period_start, a.subject, a.action, a.spent, a.lim, %(created_at)s
FROM json_to_recordset(%(alerts)s::json) AS a(budget bigint, period_start timestamptz, subject text, action text,
    spent bigint, lim bigint)
ORDER BY a.budget, a.subject
ON CONFLICT (budget_id, period_start, subject) DO NOTHING
"""
_WRITE_BOUNDS_SQL = (
    f"UPDATE {_STATE} SET headroom_microdollars = %(headroom)s, month_spend_microdollars = %(month_spend)s "
    "WHERE organization_id = %(organization)s"
)
# The state as stored, when the last evaluation was today and left a headroom, with what the
# organization has spent in the month since (its rollup rows: at most a day's worth per event type
# and shard). One indexed read, no lock: see blocklist_evaluate_changes.
_UNCHANGED_SQL = f"""
SELECT s.version, s.blocked, s.computed_at, s.changed_at, s.budget_customer_ids,
    (SELECT coalesce(sum(cost_microdollars), 0) FROM {OrganizationUsageDay._meta.db_table}
     WHERE organization_id = %(organization)s AND day >= %(month_start)s AND day < %(month_end)s)
        - s.month_spend_microdollars < s.headroom_microdollars
FROM {_STATE} s
WHERE s.organization_id = %(organization)s AND s.headroom_microdollars IS NOT NULL
    AND s.computed_at >= %(day_start)s AND s.computed_at < %(day_end)s
"""


def _period_params(organization, now: datetime) -> dict:
    """The statements' parameters: the organization and the UTC day and month around `now` (UTC)."""
    day_start, day_end = period_bounds(DAY, now)
    month_start, month_end = period_bounds(MONTH, now)
    return {
        "organization": organization.pk, "day": day_start.date(), "day_start": day_start, "day_end": day_end,
        "month_start": month_start.date(), "month_end": month_end.date(),
    }


def _json(value):
    """A jsonb column as read on Django's connection, which leaves it as text (its JSONField parses it)."""
    return json.loads(value) if isinstance(value, str) else value


def _unchanged_state(organization, now: datetime) -> BlocklistState | None:
    """The stored state when no budget decision can have changed since the last evaluation, else None."""
    row = fetch_one(_UNCHANGED_SQL, _period_params(organization, now.astimezone(UTC)))
    if row is None or not row[5]:
        return None
    version, blocked, computed_at, changed_at, customers = row[:5]
    blocked, customers = _json(blocked), _json(customers)
    return BlocklistState(
        organization=organization, version=version, blocked=blocked, computed_at=computed_at,
        changed_at=changed_at, budget_customer_ids=customers,
    )


def _evaluate(organization, now: datetime, *, incremental: bool) -> BlocklistState | None:
    """One round trip reads everything (after the evaluation lock), then the block sources are asked
    and the state is written only when it changed (or once per UTC day)."""
    now = now.astimezone(UTC)
    params = {**_period_params(organization, now), "full": not incremental}
    day_start, day_end = params["day_start"], params["day_end"]
    watch_columns = hooks.block_sources_watch_columns()
    watch_sql = (
        f"SELECT EXISTS (SELECT 1 FROM {Organization._meta.db_table} WHERE id = %(organization)s)"
        + "".join(f", {column}" for column in watch_columns)
    )
    with transaction.atomic():
        # Everything written here is derived and written again by the next evaluation: a commit
        # lost in a crash loses the whole transaction (the pending rows it took come back), so it
        # need not wait for its WAL to reach the disk (one flush per ingest batch in eager mode).
        _, _, watch_rows, state_rows, rule_rows, organization_rows, customer_rows = fetch_pipelined(
            [
                ("SET LOCAL synchronous_commit = off", None, False),
                (_EVALUATION_LOCK_SQL, params, True),
                (watch_sql, params, True),
                (_STATE_SQL, params, True),
                (_RULES_SQL, params, True),
                (_ORGANIZATION_TOTALS_SQL, params, True),
                (_CUSTOMER_TOTALS_SQL, params, True),
            ]
        )
        exists, *watching = watch_rows[0]
        if not exists:  # deleted since the evaluation was queued
            return None
        version, stored_blocked, computed_at, changed_at, stored_customers, stored_headroom, stored_spend = (
            state_rows[0] if state_rows else (0, EMPTY_BLOCKED, None, None, [], None, None)
        )
        stored_blocked, stored_customers = _json(stored_blocked), _json(stored_customers)
        incremental = incremental and computed_at is not None and day_start <= computed_at < day_end
        rules = [BudgetRule(*row) for row in rule_rows]
        own, reached = None, []
        budget_customers: set[str] = set()
        headroom = month_spend = None
        if rules:
            totals = {MONTH: PeriodTotals(), DAY: PeriodTotals()}
            for event_type, month_cost, day_cost in organization_rows:
                totals[MONTH].event_types[event_type] = int(month_cost)
                totals[DAY].event_types[event_type] = int(day_cost)
            for period in totals.values():
                period.organization = sum(period.event_types.values())
            for external_id, month_cost, day_cost in customer_rows:
                totals[MONTH].customers[external_id] = int(month_cost)
                totals[DAY].customers[external_id] = int(day_cost)
            own, reached = evaluate_budgets(rules, totals)
            budget_customers = set(own.customer_ids)
            month_spend = totals[MONTH].organization
            headroom = None if any(watching) else budget_headroom(rules, totals)
            if incremental:
                # A customer whose usage did not change this period keeps its decision, and its
                # margin to each limit: it was at least the headroom stored then.
                budget_customers |= set(stored_customers or ()) - set(totals[MONTH].customers)
                headroom = None if headroom is None or stored_headroom is None else min(headroom, stored_headroom)
        blocked = hooks.blocked_by_sources(organization=organization, watching=watching)
        if own is not None:
            blocked = BlockedSet(own.organization, own.event_types, frozenset(budget_customers)).union(blocked)
        wanted = blocked_as_json(blocked)
        customers = sorted(budget_customers)
        stored_blocked = {**EMPTY_BLOCKED, **(stored_blocked or {})}
        set_changed = stored_blocked != wanted
        if set_changed:
            version, stored_blocked, changed_at = version + 1, wanted, now
        if headroom is None:
            month_spend = None  # nothing to measure the spend since against
        if not state_rows or set_changed or not incremental or customers != stored_customers:
            computed_at = now
            with connection.cursor() as cursor:
                cursor.execute(
                    _WRITE_STATE_SQL,
                    {**params, "version": version, "blocked": json.dumps(wanted), "computed_at": now,
                     "changed_at": changed_at, "customers": json.dumps(customers), "headroom": headroom,
                     "month_spend": month_spend},
                )
        elif (headroom, month_spend) != (stored_headroom, stored_spend):  # only the bounds moved
            with connection.cursor() as cursor:
                cursor.execute(_WRITE_BOUNDS_SQL, {**params, "headroom": headroom, "month_spend": month_spend})
        if reached:
            period_starts = {period: period_bounds(period, now)[0].isoformat() for period in (DAY, MONTH)}
            alerts = [
                {"budget": item.budget_id, "period_start": period_starts[item.period], "subject": item.subject,
                 "action": item.action, "spent": item.spent_microdollars, "lim": item.limit_microdollars}
                for item in reached
            ]
            with connection.cursor() as cursor:
                cursor.execute(
                    _ALERTS_SQL,
                    {"organization": organization.pk, "alerts": json.dumps(alerts), "created_at": timezone.now()},
                )
    return BlocklistState(
        organization=organization, version=version, blocked=stored_blocked, computed_at=computed_at,
        changed_at=changed_at, budget_customer_ids=customers,
    )


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
        # Not read first: the evaluation checks in its own round trip that the organization exists.
        organization = Organization(pk=uuid.UUID(str(organization_id)))
        state = blocklist_evaluate_changes(organization=organization)
    finally:
        cache.delete(_lock_key(organization_id))
    if state is not None and cache.get(_dirty_key(organization_id)):
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
