from datetime import UTC, datetime

from events.budgeting import BudgetRule, PeriodTotals, blocked_as_json, evaluate_budgets, period_bounds
from events.hooks import BlockedSet

NOW = datetime(2026, 2, 28, 23, 59, 59, tzinfo=UTC)


def test_period_bounds_are_the_utc_day_and_calendar_month():
    assert period_bounds("day", NOW) == (datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    assert period_bounds("month", NOW) == (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))
    december = datetime(2026, 12, 31, 12, tzinfo=UTC)
    assert period_bounds("month", december) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def rule(id, scope, value="", limit=100, period="month", action="block") -> BudgetRule:
    return BudgetRule(id, scope, value, limit, period, action)


def test_a_budget_is_reached_at_its_limit_not_before():
    totals = {"month": PeriodTotals(organization=100, customers={"a": 99, "b": 100})}

    blocked, reached = evaluate_budgets([rule(1, "customer")], totals)

    assert blocked.customer_ids == frozenset({"b"})
    assert [(r.budget_id, r.subject, r.spent_microdollars) for r in reached] == [(1, "b", 100)]


def test_scopes_named_and_each_periods_and_actions():
    totals = {
        "day": PeriodTotals(organization=50, event_types={"chat": 50}, customers={"a": 50}),
        "month": PeriodTotals(
            organization=500, event_types={"chat": 400, "embed": 100}, customers={"a": 300, "b": 200}
        ),
    }
    rules = [
        rule(1, "organization", limit=1000),  # not reached
        rule(2, "event_type", "embed", limit=100),  # named, reached
        rule(3, "customer", limit=250, action="alert"),  # each customer, alert only
        rule(4, "organization", limit=50, period="day"),  # day total reached
        rule(5, "customer", "zed", limit=0),  # a limit of 0 blocks a named customer at once
    ]

    blocked, reached = evaluate_budgets(rules, totals)

    assert blocked == BlockedSet(True, frozenset({"embed"}), frozenset({"zed"}))
    assert {(r.budget_id, r.subject, r.action) for r in reached} == {
        (2, "embed", "block"),
        (3, "a", "alert"),
        (4, "", "block"),
        (5, "zed", "block"),
    }


def test_no_usage_in_the_period_reaches_nothing_above_zero():
    blocked, reached = evaluate_budgets([rule(1, "organization", limit=1)], {})
    assert blocked == BlockedSet() and reached == []


def test_blocked_json_is_canonical():
    assert blocked_as_json(BlockedSet(False, frozenset({"b", "a"}), frozenset({"z", "y"}))) == {
        "organization": False,
        "event_types": ["a", "b"],
        "customer_ids": ["y", "z"],
    }


def test_the_headroom_is_the_least_spend_that_could_reach_a_budget_not_reached_yet():
    from events.budgeting import budget_headroom

    totals = {
        "day": PeriodTotals(organization=50, event_types={"chat": 50}, customers={"a": 50}),
        "month": PeriodTotals(organization=500, event_types={"chat": 400, "embed": 100}, customers={"a": 300}),
    }
    assert budget_headroom([rule(1, "organization", limit=1000)], totals) == 500
    assert budget_headroom([rule(1, "event_type", "embed", limit=150)], totals) == 50
    assert budget_headroom([rule(1, "event_type", "other", limit=150)], totals) == 150  # named, nothing spent
    # every customer: a's margin, and a customer with nothing spent yet (the whole limit)
    assert budget_headroom([rule(1, "customer", limit=320)], totals) == 20
    assert budget_headroom([rule(1, "customer", limit=80, period="day")], totals) == 30
    # reached subjects cannot be reached again: only those below their limit, and new ones, count
    assert budget_headroom([rule(1, "customer", limit=250)], totals) == 250
    assert budget_headroom([rule(1, "organization", limit=500)], totals) is None
    assert budget_headroom([rule(1, "customer", limit=0)], totals) == 0  # any spend by a new customer
    assert budget_headroom([], totals) is None
    assert budget_headroom([rule(1, "organization", limit=1000), rule(2, "event_type", limit=420)], totals) == 20
