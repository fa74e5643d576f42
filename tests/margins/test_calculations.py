"""Pure margin arithmetic: no database."""

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from margins import calculations
from margins.calculations import MonthAmounts, Thresholds

DEFAULTS = Thresholds(Decimal(50), Decimal(20), Decimal(50))
amounts = st.integers(min_value=0, max_value=10**13)
percents = st.decimals(min_value=0, max_value=Decimal("99.99"), places=2)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1234, "usd", 12_340_000),
        (1234, "USD", 12_340_000),
        (500, "jpy", 500_000_000),
        (500, "krw", 500_000_000),
        (1500, "kwd", 1_500_000),
        (0, "usd", 0),
    ],
)
def test_minor_units_conversion_knows_zero_and_three_decimal_currencies(amount, currency, expected):
    assert calculations.minor_units_to_micro_units(amount, currency) == expected


def test_minor_units_refuse_floats():
    with pytest.raises(TypeError):
        calculations.minor_units_to_micro_units(12.5, "usd")


@given(st.integers(min_value=0, max_value=10**12))
def test_usd_minor_units_are_exact_microdollars(cents):
    assert calculations.minor_units_to_micro_units(cents, "usd") == cents * 10_000


def test_periods():
    assert calculations.shift_period("2026-01", -1) == "2025-12"
    assert calculations.shift_period("2026-12", 1) == "2027-01"
    assert calculations.trailing_periods("2026-02", 3) == ["2025-12", "2026-01", "2026-02"]
    start, end = calculations.period_bounds("2026-12")
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00")
    fullwidth, arabic_indic = "\uff12\uff10\uff12\uff16-04", "2026-\u0660\u0664"  # isdigit() is True for both
    for bad in ("2026-00", "2026-13", "26-01", "2026/01", "abcd-ef", "2026-1", fullwidth, arabic_indic):
        with pytest.raises(ValueError):
            calculations.parse_period(bad)


def test_margin_percent_rounds_half_up_to_one_place():
    assert calculations.margin_percent(100_000_000, 30_000_000) == Decimal("70.0")
    assert calculations.margin_percent(2000, 1999) == Decimal("0.1")  # 0.05 → 0.1
    assert calculations.margin_percent(90, 25) == Decimal("72.2")
    assert calculations.margin_percent(100, 250) == Decimal("-150.0")
    assert calculations.margin_percent(0, 10) is None


@pytest.mark.parametrize(
    ("revenue", "cost", "tier"),
    [
        (100, 50, "healthy"),  # exactly 50 %
        (1000, 501, "at_risk"),  # 49.9 %
        (100, 80, "at_risk"),  # exactly 20 %
        (1000, 801, "critical"),  # 19.9 %
        (100, 150, "critical"),
        (0, 1, "critical"),
        (0, 0, "healthy"),
    ],
)
def test_health_tiers_at_the_boundaries(revenue, cost, tier):
    assert calculations.health_tier(revenue=revenue, cost=cost, thresholds=DEFAULTS) == tier


def test_tier_follows_the_displayed_rounded_percent():
    # 49.96 % is shown as 50.0, so it is healthy: the tier never contradicts the number beside it.
    assert calculations.margin_percent(10_000, 5_004) == Decimal("50.0")
    assert calculations.health_tier(revenue=10_000, cost=5_004, thresholds=DEFAULTS) == "healthy"


@given(amounts, amounts, amounts)
def test_more_cost_never_improves_the_tier(revenue, cost, extra):
    before = calculations.health_tier(revenue=revenue, cost=cost, thresholds=DEFAULTS)
    after = calculations.health_tier(revenue=revenue, cost=cost + extra, thresholds=DEFAULTS)
    assert not calculations.tier_is_worse(before, after)


@given(st.integers(min_value=1, max_value=10**13), amounts)
def test_margin_percent_is_at_most_100_and_close_to_exact(revenue, cost):
    percent = calculations.margin_percent(revenue, cost)
    exact = Fraction(revenue - cost, revenue) * 100
    assert percent <= 100
    assert abs(Fraction(percent) - exact) <= Fraction(1, 20)


def test_budget_suggestion():
    assert calculations.budget_suggestion(revenue=100_000_000, cost=60_000_000,
                                          target_margin_percent=Decimal(50)) == 50_000_000
    at_target = calculations.budget_suggestion(revenue=100_000_000, cost=50_000_000, target_margin_percent=Decimal(50))
    assert at_target is None
    assert calculations.budget_suggestion(revenue=3, cost=3, target_margin_percent=Decimal(50)) == 2  # 1.5 → 2
    assert calculations.budget_suggestion(revenue=0, cost=5, target_margin_percent=Decimal(50)) == 0
    assert calculations.budget_suggestion(revenue=0, cost=0, target_margin_percent=Decimal(50)) is None


@given(amounts, amounts, percents)
def test_budget_suggestion_restores_the_target_margin(revenue, cost, target):
    budget = calculations.budget_suggestion(revenue=revenue, cost=cost, target_margin_percent=target)
    exact_budget = Fraction(revenue) * (1 - Fraction(target) / 100)
    if budget is None:
        assert cost <= exact_budget
    else:
        assert cost > exact_budget
        assert abs(budget - exact_budget) <= Fraction(1, 2)  # one half-up rounding to a microdollar
        assert budget == int(exact_budget + Fraction(1, 2))  # half up, exactly (in integers, not Fractions)
        assert budget <= cost  # never suggests spending more than now


def test_budget_suggestion_rounds_negative_budgets_half_away_from_zero():
    # A target above 100 % (not accepted by the settings form, but the arithmetic stays exact): -1.5 → -2.
    assert calculations.budget_suggestion(revenue=3, cost=0, target_margin_percent=Decimal(150)) == -2
    assert calculations.budget_suggestion(revenue=10, cost=0, target_margin_percent=Decimal("112.5")) == -1


@given(amounts, amounts)
def test_tier_of_a_shown_percent_is_the_health_tier(revenue, cost):
    percent = calculations.margin_percent(revenue, cost)
    assert calculations.tier_of(percent, cost=cost, thresholds=DEFAULTS) == calculations.health_tier(
        revenue=revenue, cost=cost, thresholds=DEFAULTS
    )


@given(st.lists(st.tuples(amounts, amounts), min_size=1, max_size=4))
def test_outlook_tiers_are_the_health_tiers_of_its_months(pairs):
    months = [MonthAmounts(f"2026-0{n + 1}", revenue, cost) for n, (revenue, cost) in enumerate(pairs)]
    outlook = calculations.outlook(months=months, thresholds=DEFAULTS)
    current = months[-1]
    current_tier = calculations.health_tier(revenue=current.revenue, cost=current.cost, thresholds=DEFAULTS)
    projected_tier = calculations.health_tier(
        revenue=outlook.projected_revenue, cost=outlook.projected_cost, thresholds=DEFAULTS
    )
    assert outlook.projected_tier == projected_tier
    assert outlook.projected_tier_worsening == calculations.tier_is_worse(projected_tier, current_tier)
    assert [point.margin_percent for point in outlook.sparkline] == [
        *(calculations.margin_percent(m.revenue, m.cost) for m in months),
        calculations.margin_percent(outlook.projected_revenue, outlook.projected_cost),
    ]


def test_projection_of_a_linear_series_continues_it():
    assert calculations.project_next([90, 95, 100]) == 105
    assert calculations.project_next([25, 28, 30]) == 33  # 32.67 rounds half up
    assert calculations.project_next([10, 5, 0]) == 0  # clamped: revenue and cost are never negative
    assert calculations.project_next([7]) == 7
    assert calculations.project_next([]) == 0


@given(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9), st.integers(2, 6))
def test_projection_is_exact_on_increasing_lines(start, step, n):
    assert calculations.project_next([start + step * i for i in range(n)]) == start + step * n


def _least_squares_next(values) -> Fraction:
    """The textbook least-squares line through (x, values[x]), evaluated at x = n, in Fractions."""
    n = len(values)
    mean_x, mean_y = Fraction(n - 1, 2), Fraction(sum(values), n)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in enumerate(values)) / sum((x - mean_x) ** 2 for x in range(n))
    return mean_y + slope * (n - mean_x)


@given(st.lists(st.integers(min_value=0, max_value=10**15), min_size=2, max_size=12))
def test_projection_is_the_least_squares_trend_rounded_half_up_once(values):
    exact = _least_squares_next(values)
    expected = max(0, int((exact + Fraction(1, 2)).__floor__())) if exact > 0 else 0

    assert calculations.project_next(values) == expected


@given(st.lists(amounts, min_size=1, max_size=6))
def test_projection_is_never_negative_and_constant_series_stay_put(values):
    assert calculations.project_next(values) >= 0
    assert calculations.project_next([values[0]] * len(values)) == values[0]


def test_outlook_sparkline_and_worsening():
    months = [MonthAmounts("2026-02", 100, 10), MonthAmounts("2026-03", 100, 30), MonthAmounts("2026-04", 100, 45)]

    outlook = calculations.outlook(months=months, thresholds=DEFAULTS)

    assert [(p.period, p.margin_percent, p.projected) for p in outlook.sparkline] == [
        ("2026-02", Decimal("90.0"), False),
        ("2026-03", Decimal("70.0"), False),
        ("2026-04", Decimal("55.0"), False),
        ("2026-05", Decimal("37.0"), True),  # cost trend 63.33 → 63
    ]
    assert (outlook.projected_revenue, outlook.projected_cost) == (100, 63)
    assert outlook.projected_tier == "at_risk"
    assert outlook.projected_tier_worsening is True


def test_outlook_improving_is_not_worsening():
    months = [MonthAmounts("2026-02", 100, 90), MonthAmounts("2026-03", 100, 70), MonthAmounts("2026-04", 100, 50)]

    assert calculations.outlook(months=months, thresholds=DEFAULTS).projected_tier_worsening is False
