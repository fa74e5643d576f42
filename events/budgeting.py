"""Pure budget arithmetic: period bounds and which budgets are reached, over plain data.

A budget is reached when the cost spent in its current period is at least its limit (a limit of 0
blocks as soon as anything is spent in the period, or at once for the organization scope).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .hooks import BlockedSet

ORGANIZATION, EVENT_TYPE, CUSTOMER = "organization", "event_type", "customer"
DAY, MONTH = "day", "month"
BLOCK, ALERT = "block", "alert"


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC day or calendar month containing `now` (aware, UTC), as [start, end)."""
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == DAY:
        return day_start, day_start + timedelta(days=1)
    month_start = day_start.replace(day=1)
    next_month = (month_start + timedelta(days=32)).replace(day=1)
    return month_start, next_month


@dataclass(frozen=True, slots=True)
class BudgetRule:
    id: int
    scope: str
    scope_value: str
    limit_microdollars: int
    period: str
    action: str


@dataclass(slots=True)
class PeriodTotals:
    """Cost spent in one period: all of it, per event type and per customer (external id)."""

    organization: int = 0
    event_types: dict[str, int] = field(default_factory=dict)
    customers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reached:
    budget_id: int
    subject: str  # "" for the organization, else the event type or customer external id
    spent_microdollars: int
    limit_microdollars: int
    action: str
    period: str


def evaluate_budgets(
    rules: Iterable[BudgetRule], totals: Mapping[str, PeriodTotals]
) -> tuple[BlockedSet, list[Reached]]:
    """What the block budgets block, and every reached budget (for alerts), given each period's totals."""
    organization = False
    event_types: set[str] = set()
    customers: set[str] = set()
    reached: list[Reached] = []
    for rule in rules:
        spent_by_subject = _spent(rule, totals.get(rule.period, PeriodTotals()))
        for subject, spent in spent_by_subject.items():
            if spent < rule.limit_microdollars:
                continue
            reached.append(Reached(rule.id, subject, spent, rule.limit_microdollars, rule.action, rule.period))
            if rule.action != BLOCK:
                continue
            if rule.scope == ORGANIZATION:
                organization = True
            elif rule.scope == EVENT_TYPE:
                event_types.add(subject)
            else:
                customers.add(subject)
    return BlockedSet(organization, frozenset(event_types), frozenset(customers)), reached


def budget_headroom(rules: Iterable[BudgetRule], totals: Mapping[str, PeriodTotals]) -> int | None:
    """The least further spend that could reach a budget not reached yet: over every rule and every
    subject below its limit, limit - spent. A rule over every event type or customer also counts a
    subject with nothing spent yet (its whole limit).
    None when there is no such subject (no rules, or only reached ones): nothing bounds the next one.

    Spend only grows within a period, and no subject's grows by more than the organization's: while
    the organization has spent less than this since these totals, no budget decision can change."""
    margins = []
    for rule in rules:
        spent_by_subject = _spent(rule, totals.get(rule.period, PeriodTotals()))
        margins.extend(rule.limit_microdollars - spent for spent in spent_by_subject.values()
                       if spent < rule.limit_microdollars)
        if rule.scope != ORGANIZATION and not rule.scope_value:  # every event type or customer: a new one too
            margins.append(rule.limit_microdollars)
    return min(margins) if margins else None


def _spent(rule: BudgetRule, totals: PeriodTotals) -> dict[str, int]:
    if rule.scope == ORGANIZATION:
        return {"": totals.organization}
    by_subject = totals.event_types if rule.scope == EVENT_TYPE else totals.customers
    if rule.scope_value:
        return {rule.scope_value: by_subject.get(rule.scope_value, 0)}
    return by_subject


def blocked_as_json(blocked: BlockedSet) -> dict:
    """The canonical stored and served form (sorted lists), so equal sets compare equal."""
    return {
        "organization": bool(blocked.organization),
        "event_types": sorted(blocked.event_types),
        "customer_ids": sorted(blocked.customer_ids),
    }


EMPTY_BLOCKED = blocked_as_json(BlockedSet())
