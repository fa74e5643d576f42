"""Pure credit arithmetic (billing.credits): balances, drawdown order, invoice credits, windows."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.credits.arithmetic import (
    CreditLot,
    LineCharge,
    allocate,
    apply_credits_to_lines,
    auto_topup_due,
    available_balance,
    dollars,
    dollars_to_microdollars,
    expired_remainders,
    failure_disables,
    ledger_balance,
    over_limit,
    spending_window,
    usable_lots,
)

NOW = datetime(2025, 3, 15, 12, 30, tzinfo=UTC)


def lot(id, remaining, *, days_to_expiry=None, granted_days_ago=10):
    return CreditLot(
        id=id,
        remaining=remaining,
        granted_at=NOW - timedelta(days=granted_days_ago),
        expires_at=None if days_to_expiry is None else NOW + timedelta(days=days_to_expiry),
    )


lots_strategy = st.lists(
    st.builds(
        lot,
        id=st.uuids().map(str),
        remaining=st.integers(min_value=0, max_value=10**12),
        days_to_expiry=st.one_of(st.none(), st.integers(min_value=-30, max_value=365)),
        granted_days_ago=st.integers(min_value=0, max_value=400),
    ),
    max_size=8,
    unique_by=lambda credit_lot: credit_lot.id,
)


# --- balance and formatting ---


@given(st.lists(st.integers(min_value=-(10**15), max_value=10**15)))
def test_balance_is_the_exact_sum_of_entries(amounts):
    assert ledger_balance(amounts) == sum(amounts)


def test_balance_refuses_floats():
    with pytest.raises(TypeError):
        ledger_balance([1_000_000, 0.5])


@pytest.mark.parametrize(
    ("microdollars", "text"),
    [(0, "0.00"), (12_500_000, "12.50"), (1, "0.000001"), (-2_500_000, "-2.50"), (1_234_567, "1.234567"),
     (10_000_000_000, "10000.00")],
)
def test_dollars_are_exact_strings(microdollars, text):
    assert dollars(microdollars) == text


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_dollars_round_trip_exactly(microdollars):
    assert dollars_to_microdollars(Decimal(dollars(microdollars))) == microdollars


def test_more_than_six_decimals_is_refused():
    with pytest.raises(ValueError):
        dollars_to_microdollars(Decimal("0.0000001"))


# --- lots and allocation ---


def test_drawdown_takes_soonest_expiring_first_and_never_expiring_last():
    lots = [lot("forever", 5_000_000), lot("late", 5_000_000, days_to_expiry=60),
            lot("soon", 5_000_000, days_to_expiry=3), lot("expired", 5_000_000, days_to_expiry=-1)]

    assert [credit.id for credit in usable_lots(lots, at=NOW)] == ["soon", "late", "forever"]
    assert allocate(lots, 7_000_000, at=NOW) == [("soon", 5_000_000), ("late", 2_000_000)]


def test_lots_with_the_same_expiry_are_drawn_oldest_first():
    lots = [lot("young", 1_000_000, granted_days_ago=1), lot("old", 1_000_000, granted_days_ago=9)]
    assert allocate(lots, 1_500_000, at=NOW) == [("old", 1_000_000), ("young", 500_000)]


def test_a_lot_expiring_exactly_now_is_no_longer_usable():
    expiring = CreditLot(id="x", remaining=1, granted_at=NOW - timedelta(days=1), expires_at=NOW)
    assert available_balance([expiring], at=NOW) == 0
    assert expired_remainders([expiring], at=NOW) == [("x", 1)]


@given(lots_strategy, st.integers(min_value=0, max_value=10**13))
def test_allocation_never_overdraws_and_takes_all_it_can(lots, amount):
    parts = allocate(lots, amount, at=NOW)
    by_id = {credit.id: credit for credit in lots}

    assert sum(taken for _, taken in parts) == min(amount, available_balance(lots, at=NOW))
    assert all(0 < taken <= by_id[lot_id].remaining and by_id[lot_id].usable_at(NOW) for lot_id, taken in parts)
    assert len({lot_id for lot_id, _ in parts}) == len(parts)
    # every lot but the last one touched is emptied (FIFO: no lot is skipped half-used)
    assert all(taken == by_id[lot_id].remaining for lot_id, taken in parts[:-1])


def test_allocating_a_negative_amount_is_refused():
    with pytest.raises(ValueError):
        allocate([lot("a", 1)], -1, at=NOW)


@given(lots_strategy)
def test_expiry_removes_exactly_the_expired_remainders(lots):
    expired = dict(expired_remainders(lots, at=NOW))
    total = sum(credit.remaining for credit in lots)
    assert total - sum(expired.values()) == available_balance(lots, at=NOW)
    assert all(credit.expires_at is not None and credit.expires_at <= NOW for credit in lots if credit.id in expired)


# --- invoice drawdown ---


def test_credits_pay_lines_in_order_and_leave_amount_due():
    lines = [LineCharge("tokens", 1_000), LineCharge("seats", 2_500)]  # $10.00 + $25.00
    lots = [lot("promo", 15_000_000, days_to_expiry=5), lot("topup", 100_000_000)]

    drawdown = apply_credits_to_lines(lines, lots, at=NOW)

    assert drawdown.total_cents == 3_500
    assert drawdown.credit_cents == 3_500
    assert drawdown.amount_due_cents == 0
    assert [line.credit_cents for line in drawdown.lines] == [1_000, 2_500]
    assert drawdown.lines[0].parts == (("promo", 10_000_000),)
    assert drawdown.lines[1].parts == (("promo", 5_000_000), ("topup", 20_000_000))
    assert drawdown.lot_totals() == {"promo": 15_000_000, "topup": 20_000_000}


def test_credits_are_applied_in_whole_cents_and_the_sub_cent_rest_stays():
    drawdown = apply_credits_to_lines([LineCharge("a", 500)], [lot("x", 1_239_999)], at=NOW)
    assert drawdown.credit_cents == 123
    assert drawdown.credit_microdollars == 1_230_000
    assert drawdown.amount_due_cents == 377


def test_a_discount_line_lowers_what_credits_may_pay():
    lines = [LineCharge("usage", 1_000), LineCharge("discount", -400)]
    drawdown = apply_credits_to_lines(lines, [lot("x", 50_000_000)], at=NOW)
    assert drawdown.credit_cents == 600
    assert drawdown.amount_due_cents == 0
    assert [line.credit_cents for line in drawdown.lines] == [600, 0]


def test_expired_credits_do_not_pay_invoices():
    drawdown = apply_credits_to_lines([LineCharge("a", 1_000)], [lot("old", 50_000_000, days_to_expiry=-1)], at=NOW)
    assert drawdown.credit_cents == 0
    assert drawdown.amount_due_cents == 1_000


@given(
    st.lists(st.integers(min_value=-5_000, max_value=10**7), max_size=6).map(
        lambda amounts: [LineCharge(index, amount) for index, amount in enumerate(amounts)]
    ),
    lots_strategy,
)
def test_drawdown_invariants(lines, lots):
    drawdown = apply_credits_to_lines(lines, lots, at=NOW)
    by_id = {credit.id: credit for credit in lots}
    total = sum(line.amount_cents for line in lines)

    usable_cents = available_balance(lots, at=NOW) // 10_000
    assert drawdown.credit_cents == min(max(total, 0), usable_cents)
    assert drawdown.amount_due_cents == total - drawdown.credit_cents
    for line, credit in zip(lines, drawdown.lines, strict=True):
        assert 0 <= credit.credit_cents <= max(line.amount_cents, 0)
        assert sum(amount for _, amount in credit.parts) == credit.credit_cents * 10_000
    for lot_id, taken in drawdown.lot_totals().items():
        assert taken <= by_id[lot_id].remaining and by_id[lot_id].usable_at(NOW)


# --- auto top-up ---


@pytest.mark.parametrize(
    ("balance", "threshold", "amount", "active", "due"),
    [
        (4_999_999, 5_000_000, 20_000_000, True, True),
        (5_000_000, 5_000_000, 20_000_000, True, False),
        (0, 5_000_000, 20_000_000, False, False),
        (0, None, 20_000_000, True, False),
        (0, 5_000_000, None, True, False),
        (-3, 0, 10_000_000, True, True),
    ],
)
def test_auto_topup_is_due_only_below_an_active_threshold(balance, threshold, amount, active, due):
    assert auto_topup_due(balance=balance, threshold=threshold, amount=amount, active=active) is due


def test_repeated_failures_disable_auto_topup():
    assert not failure_disables(consecutive_failures=2, max_failures=3)
    assert failure_disables(consecutive_failures=3, max_failures=3)


# --- spending limits ---


def test_fixed_windows_are_calendar_periods():
    assert spending_window(now=NOW, duration="daily", strategy="fixed") == (
        datetime(2025, 3, 15, tzinfo=UTC), datetime(2025, 3, 16, tzinfo=UTC))
    assert spending_window(now=NOW, duration="weekly", strategy="fixed") == (  # 2025-03-15 is a Saturday
        datetime(2025, 3, 10, tzinfo=UTC), datetime(2025, 3, 17, tzinfo=UTC))
    assert spending_window(now=NOW, duration="monthly", strategy="fixed") == (
        datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))
    december = datetime(2025, 12, 31, 23, 59, tzinfo=UTC)
    assert spending_window(now=december, duration="monthly", strategy="fixed") == (
        datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


def test_sliding_windows_end_now():
    assert spending_window(now=NOW, duration="daily", strategy="sliding") == (NOW - timedelta(days=1), NOW)
    assert spending_window(now=NOW, duration="weekly", strategy="sliding") == (NOW - timedelta(days=7), NOW)
    march_31 = datetime(2025, 3, 31, 8, tzinfo=UTC)
    assert spending_window(now=march_31, duration="monthly", strategy="sliding") == (
        datetime(2025, 2, 28, 8, tzinfo=UTC), march_31)


@given(
    st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(["daily", "weekly", "monthly"]),
    st.sampled_from(["fixed", "sliding"]),
)
def test_every_window_contains_now(now, duration, strategy):
    start, end = spending_window(now=now, duration=duration, strategy=strategy)
    assert start <= now <= end
    assert start < end
    assert end - start <= timedelta(days=31)


@pytest.mark.parametrize(("duration", "strategy"), [("yearly", "fixed"), ("day", "fixed"), ("daily", "rolling")])
def test_unknown_durations_and_strategies_are_refused(duration, strategy):
    with pytest.raises(ValueError):
        spending_window(now=NOW, duration=duration, strategy=strategy)


def test_reaching_the_limit_is_over_it():
    assert not over_limit(spent=9_999_999, limit=10_000_000)
    assert over_limit(spent=10_000_000, limit=10_000_000)
