"""Margin arithmetic as pure functions over integers (microdollars) and Decimals. No database here.

Rounding (documented once, applied once):
- `marginPercent` = (revenue - cost) / revenue x 100, rounded half up to one decimal place; it is
  None when revenue is zero (a margin of nothing is undefined, not 0 % or -∞).
- Health tiers compare that rounded percent with the organization's thresholds, so the tier never
  disagrees with the number shown next to it.
- Projected amounts and budget suggestions are rounded half up to whole microdollars.
- Stripe minor units become micro-units exactly (integer multiplication, no rounding).
"""

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from costcalc.money import ROUNDING

HEALTHY = "healthy"
AT_RISK = "at_risk"
CRITICAL = "critical"
TIERS = (HEALTHY, AT_RISK, CRITICAL)  # best first

PERCENT_PLACES = Decimal("0.1")

# ISO 4217 currencies Stripe treats as zero-decimal (amount 500 JPY is ¥500) and three-decimal.
ZERO_DECIMAL_CURRENCIES = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
THREE_DECIMAL_CURRENCIES = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])


def minor_units_to_micro_units(amount: int, currency: str) -> int:
    """A Stripe amount (minor units of ``currency``) → millionths of the currency's major unit.

    For USD that is microdollars: 1234 cents → 12_340_000. Zero-decimal currencies (JPY) have no minor
    unit, so 500 → 500_000_000; three-decimal ones (KWD) have thousandths.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError("Stripe amounts are integers of minor units")
    code = currency.lower()
    if code in ZERO_DECIMAL_CURRENCIES:
        return amount * 1_000_000
    if code in THREE_DECIMAL_CURRENCIES:
        return amount * 1_000
    return amount * 10_000


# --- Periods (calendar months, UTC) -----------------------------------------------------------


def period_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def parse_period(period: str) -> tuple[int, int]:
    """'2026-04' → (2026, 4). Raises ValueError for anything else."""
    # isascii(): str.isdigit() also accepts other scripts' digits (fullwidth, Arabic-Indic), which int() takes.
    if len(period) != 7 or not period.isascii() or period[4] != "-" or not (
        period[:4].isdigit() and period[5:].isdigit()
    ):
        raise ValueError("period must be YYYY-MM")
    year, month = int(period[:4]), int(period[5:])
    if not (1 <= month <= 12 and 1 <= year <= 9999):
        raise ValueError("period must be YYYY-MM with a month from 01 to 12")
    return year, month


@functools.lru_cache(maxsize=1024)  # the margin table shifts the same few periods for every row
def shift_period(period: str, months: int) -> str:
    year, month = parse_period(period)
    index = year * 12 + (month - 1) + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in UTC."""
    year, month = parse_period(period)
    next_year, next_month = parse_period(shift_period(period, 1))
    return datetime(year, month, 1, tzinfo=UTC), datetime(next_year, next_month, 1, tzinfo=UTC)


def trailing_periods(period: str, count: int) -> list[str]:
    """The ``count`` months ending with ``period``, oldest first."""
    return [shift_period(period, offset) for offset in range(1 - count, 1)]


# --- Margins and tiers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    healthy_min_percent: Decimal
    at_risk_min_percent: Decimal
    target_margin_percent: Decimal


def margin_percent(revenue: int, cost: int) -> Decimal | None:
    if revenue == 0:
        return None
    exact = Decimal(revenue - cost) * 100 / Decimal(revenue)
    return exact.quantize(PERCENT_PLACES, rounding=ROUNDING)


def health_tier(*, revenue: int, cost: int, thresholds: Thresholds) -> str:
    return tier_of(margin_percent(revenue, cost), cost=cost, thresholds=thresholds)


def tier_of(percent: Decimal | None, *, cost: int, thresholds: Thresholds) -> str:
    """The tier of a month whose `margin_percent` is ``percent`` (so that a caller that shows the
    percent computes it once)."""
    if percent is None:
        return CRITICAL if cost > 0 else HEALTHY
    if percent >= thresholds.healthy_min_percent:
        return HEALTHY
    if percent >= thresholds.at_risk_min_percent:
        return AT_RISK
    return CRITICAL


def tier_is_worse(candidate: str, than: str) -> bool:
    return TIERS.index(candidate) > TIERS.index(than)


def budget_suggestion(*, revenue: int, cost: int, target_margin_percent: Decimal) -> int | None:
    """The monthly cost budget that brings the margin back to the target: revenue x (1 - target).

    None when the customer is already at or above the target (cost within that budget).
    """
    # revenue x (100 - target) / 100 as one fraction of integers (a Decimal is an exact ratio).
    target, scale = target_margin_percent.as_integer_ratio()
    numerator, denominator = revenue * (100 * scale - target), 100 * scale
    if cost * denominator <= numerator:
        return None
    return _round_half_up(numerator, denominator)


# --- Trend projection -------------------------------------------------------------------------


def _round_half_up(numerator: int, denominator: int) -> int:
    """numerator / denominator (denominator > 0) rounded half up to an integer, in integers:
    floor(x + 1/2) for x ≥ 0; for negatives mirrored, so halves round away from zero, as ROUND_HALF_UP does."""
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


def project_next(values: Sequence[int]) -> int:
    """Next value of an evenly spaced series by its least-squares linear trend, clamped at zero.

    One point projects itself; an empty series projects 0. Exact, in integers: for x = 0..n-1 the
    trend's value at x = n is (6·Σxy - 2(n-1)·Σy) / (n(n-1)), rounded half up once to a whole
    microdollar (the margin table projects every row, so this runs thousands of times per page;
    the same formula in Fractions was most of the table's time).
    """
    n = len(values)
    if n == 0:
        return 0
    if n == 1:
        return max(0, int(values[0]))
    total = sum(values)
    weighted = sum(x * y for x, y in enumerate(values))
    numerator = 6 * weighted - 2 * (n - 1) * total
    denominator = n * (n - 1)
    if numerator <= 0:
        return 0  # a trend at or below zero is clamped (a negative half rounds to 0 as well)
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True)
class MonthAmounts:
    period: str
    revenue: int
    cost: int
    revenue_source: str = ""  # where the revenue came from (margins.selectors.REVENUE_SOURCES)


@dataclass(frozen=True)
class SparkPoint:
    period: str
    margin_percent: Decimal | None
    projected: bool = False


@dataclass(frozen=True)
class Outlook:
    sparkline: list[SparkPoint]
    projected_revenue: int
    projected_cost: int
    projected_tier: str
    projected_tier_worsening: bool


def outlook(*, months: Sequence[MonthAmounts], thresholds: Thresholds) -> Outlook:
    """Sparkline of the given months (oldest first, the last one is the current period) plus a projected
    next month, whose revenue and cost are each projected by `project_next`; the projected tier is the
    tier of that projected month, and it is "worsening" when worse than the current month's tier.
    """
    if not months:
        raise ValueError("outlook needs at least the current month")
    projected_revenue = project_next([m.revenue for m in months])
    projected_cost = project_next([m.cost for m in months])
    current = months[-1]
    points = [SparkPoint(m.period, margin_percent(m.revenue, m.cost)) for m in months]
    points.append(
        SparkPoint(shift_period(current.period, 1), margin_percent(projected_revenue, projected_cost), True)
    )
    current_tier = tier_of(points[-2].margin_percent, cost=current.cost, thresholds=thresholds)
    projected_tier = tier_of(points[-1].margin_percent, cost=projected_cost, thresholds=thresholds)
    return Outlook(
        sparkline=points,
        projected_revenue=projected_revenue,
        projected_cost=projected_cost,
        projected_tier=projected_tier,
        projected_tier_worsening=tier_is_worse(projected_tier, current_tier),
    )
