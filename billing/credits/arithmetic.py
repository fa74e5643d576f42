"""Pure arithmetic of prepaid credits: no database, no Stripe, only integers and datetimes.

Amounts are integer microdollars (1e-6 USD) unless a name says cents. The ledger is the source of
truth: a customer's balance is the exact sum of its entries. Positive entries (grants, top-ups,
positive adjustments) are *lots*; negative entries (invoice drawdowns, expiries, negative
adjustments) draw from lots, soonest-expiring first, and record how much they took from each, so
that every lot's remainder (and so what expires when) is derived, never stored.

Invoices are in cents, credits in microdollars: credits are applied to invoice lines in whole cents
(`apply_credits_to_lines`), so `amount_due` stays a whole number of cents that Stripe can charge;
a sub-cent remainder stays on the balance for the next invoice.
"""

from __future__ import annotations

import calendar
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from costcalc.money import MICRODOLLARS_PER_CENT, MICRODOLLARS_PER_DOLLAR

# --- Balance -----------------------------------------------------------------------------------


def ledger_balance(amounts: Iterable[int]) -> int:
    """The balance: the exact sum of ledger entry amounts (microdollars, signed)."""
    total = 0
    for amount in amounts:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise TypeError("ledger amounts are integer microdollars")
        total += amount
    return total


def dollars(microdollars: int) -> str:
    """Exact USD decimal string of a microdollar amount, at least two decimals: 12500000 → "12.50",
    1 → "0.000001", -2500000 → "-2.50". This is how the Cloudflare-dialect endpoints render money
    (the seed's floats, without the float)."""
    value = Decimal(microdollars) / MICRODOLLARS_PER_DOLLAR
    text = format(value.quantize(Decimal("0.000001")), "f").rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def dollars_to_microdollars(amount: Decimal) -> int:
    """A Decimal USD amount with at most six decimals → exact integer microdollars (no rounding)."""
    scaled = amount * MICRODOLLARS_PER_DOLLAR
    if scaled != scaled.to_integral_value():
        raise ValueError("amount has more than six decimals")
    return int(scaled)


# --- Lots and drawdown -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditLot:
    """What is left of one positive ledger entry."""

    id: Hashable
    remaining: int  # microdollars, >= 0
    granted_at: datetime
    expires_at: datetime | None = None

    def usable_at(self, at: datetime) -> bool:
        return self.remaining > 0 and (self.expires_at is None or self.expires_at > at)


def drawdown_order(lot: CreditLot) -> tuple:
    """Soonest expiry first; lots that never expire last; then oldest first (FIFO); then id."""
    return (lot.expires_at is None, lot.expires_at or lot.granted_at, lot.granted_at, str(lot.id))


def usable_lots(lots: Iterable[CreditLot], *, at: datetime) -> list[CreditLot]:
    """Lots with something left that have not expired at ``at``, in drawdown order."""
    return sorted((lot for lot in lots if lot.usable_at(at)), key=drawdown_order)


def available_balance(lots: Iterable[CreditLot], *, at: datetime) -> int:
    """Microdollars that can still be spent at ``at`` (expired remainders excluded)."""
    return sum(lot.remaining for lot in lots if lot.usable_at(at))


def allocate(lots: Sequence[CreditLot], amount: int, *, at: datetime) -> list[tuple[Hashable, int]]:
    """Take up to ``amount`` microdollars from the usable lots, soonest-expiring first.

    Returns [(lot id, microdollars taken)], every part > 0; the parts sum to
    min(amount, available balance). Lots are not mutated.
    """
    if amount < 0:
        raise ValueError("amount to allocate must not be negative")
    parts: list[tuple[Hashable, int]] = []
    left = amount
    for lot in usable_lots(lots, at=at):
        if left == 0:
            break
        take = min(lot.remaining, left)
        parts.append((lot.id, take))
        left -= take
    return parts


def expired_remainders(lots: Iterable[CreditLot], *, at: datetime) -> list[tuple[Hashable, int]]:
    """[(lot id, remainder)] for lots that have expired at ``at`` with something left: each becomes
    one expiry entry of minus the remainder."""
    return sorted(
        ((lot.id, lot.remaining) for lot in lots
         if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= at),
        key=lambda part: str(part[0]),
    )


# --- Invoice drawdown --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineCharge:
    """One invoice line as far as credits care: its key and its amount in cents."""

    key: Hashable
    amount_cents: int


@dataclass(frozen=True)
class LineCredit:
    key: Hashable
    credit_cents: int
    parts: tuple[tuple[Hashable, int], ...]  # (lot id, microdollars) drawn for this line


@dataclass(frozen=True)
class Drawdown:
    """Credits applied to one invoice."""

    total_cents: int
    credit_cents: int
    lines: tuple[LineCredit, ...] = field(default_factory=tuple)

    @property
    def amount_due_cents(self) -> int:
        return self.total_cents - self.credit_cents

    @property
    def credit_microdollars(self) -> int:
        return self.credit_cents * MICRODOLLARS_PER_CENT

    def lot_totals(self) -> dict[Hashable, int]:
        totals: dict[Hashable, int] = {}
        for line in self.lines:
            for lot_id, amount in line.parts:
                totals[lot_id] = totals.get(lot_id, 0) + amount
        return totals


def apply_credits_to_lines(lines: Sequence[LineCharge], lots: Sequence[CreditLot], *, at: datetime) -> Drawdown:
    """Apply usable credits to an invoice before tax, in whole cents, line by line in order.

    The credit is capped by the invoice total (a negative line, such as a discount, lowers what
    credits may pay) and by the usable balance floored to the cent. Each line takes at most its own
    amount; negative and zero lines take nothing. Within a line, cents are drawn from lots
    soonest-expiring first, so one line may draw from several lots.
    """
    total = sum(line.amount_cents for line in lines)
    usable = usable_lots(lots, at=at)
    budget_cents = min(max(total, 0), sum(lot.remaining for lot in usable) // MICRODOLLARS_PER_CENT)
    remaining = {lot.id: lot.remaining for lot in usable}
    order = [lot.id for lot in usable]
    applied: list[LineCredit] = []
    for line in lines:
        cents = min(max(line.amount_cents, 0), budget_cents)
        parts: list[tuple[Hashable, int]] = []
        need = cents * MICRODOLLARS_PER_CENT
        for lot_id in order:
            if need == 0:
                break
            take = min(remaining[lot_id], need)
            if take:
                parts.append((lot_id, take))
                remaining[lot_id] -= take
                need -= take
        budget_cents -= cents
        applied.append(LineCredit(key=line.key, credit_cents=cents, parts=tuple(parts)))
    return Drawdown(
        total_cents=total,
        credit_cents=sum(line.credit_cents for line in applied),
        lines=tuple(applied),
    )


# --- Auto top-up -------------------------------------------------------------------------------


def auto_topup_due(*, balance: int, threshold: int | None, amount: int | None, active: bool) -> bool:
    """Charge the saved card when an active config has both values and the balance is below the
    threshold (strictly: a balance exactly at the threshold is fine)."""
    return bool(active and threshold is not None and amount and amount > 0 and balance < threshold)


def failure_disables(*, consecutive_failures: int, max_failures: int) -> bool:
    """After ``max_failures`` failed charges in a row, auto top-up turns itself off."""
    return consecutive_failures >= max_failures


# --- Spending limits ---------------------------------------------------------------------------

DURATIONS = ("daily", "weekly", "monthly")  # Cloudflare AI Gateway spending-limit values
STRATEGIES = ("fixed", "sliding")


def _months_back(moment: datetime, months: int) -> datetime:
    """The same wall-clock time ``months`` calendar months earlier, clamped to the month's last day."""
    month_index = moment.year * 12 + (moment.month - 1) - months
    year, month = divmod(month_index, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def spending_window(*, now: datetime, duration: str, strategy: str) -> tuple[datetime, datetime]:
    """[start, end) of the period a spending limit counts, for a timezone-aware UTC ``now``.

    fixed: the calendar day / ISO week (Monday) / month containing now, reset at its start.
    sliding: the last 24 hours / 7 days / calendar month ending now.
    """
    if duration not in DURATIONS:
        raise ValueError(f"duration must be one of {', '.join(DURATIONS)}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if strategy == "sliding":
        if duration == "daily":
            return now - timedelta(days=1), now
        if duration == "weekly":
            return now - timedelta(days=7), now
        return _months_back(now, 1), now
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if duration == "daily":
        return midnight, midnight + timedelta(days=1)
    if duration == "weekly":
        start = midnight - timedelta(days=midnight.weekday())
        return start, start + timedelta(days=7)
    start = midnight.replace(day=1)
    return start, _months_back(start, -1)


def over_limit(*, spent: int, limit: int) -> bool:
    """A customer is over its limit once what it spent in the window reaches the limit."""
    return spent >= limit
