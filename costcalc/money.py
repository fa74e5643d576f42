"""Money helpers used by every app. Money is never a float.

- Cost and revenue amounts are integers of microdollars (1e-6 USD).
- Unit prices are Decimal (USD per million tokens for models; cents for billing rates).
- Rounding happens once, where a Decimal amount becomes an integer amount, with ROUND_HALF_UP.
"""

from decimal import ROUND_HALF_UP, Decimal

MICRODOLLARS_PER_DOLLAR = 1_000_000
MICRODOLLARS_PER_CENT = 10_000
ROUNDING = ROUND_HALF_UP

_ONE = Decimal(1)


def to_decimal(value: int | str | Decimal) -> Decimal:
    """Exact Decimal from an int, a Decimal or a numeric string. Floats are refused."""
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a str, int or Decimal")
    return value if isinstance(value, Decimal) else Decimal(value)


def usd_to_microdollars(usd: int | str | Decimal) -> int:
    """USD amount → integer microdollars, rounded half up."""
    return int((to_decimal(usd) * MICRODOLLARS_PER_DOLLAR).quantize(_ONE, rounding=ROUNDING))


def cents_to_microdollars(cents: int | str | Decimal) -> int:
    return int((to_decimal(cents) * MICRODOLLARS_PER_CENT).quantize(_ONE, rounding=ROUNDING))


def microdollars_to_cents(microdollars: int) -> int:
    """Integer microdollars → integer cents, rounded half up (invoice lines round to the cent)."""
    return int((Decimal(microdollars) / MICRODOLLARS_PER_CENT).quantize(_ONE, rounding=ROUNDING))


def microdollars_to_usd(microdollars: int) -> Decimal:
    """Exact USD Decimal of an integer microdollar amount (no rounding needed)."""
    return Decimal(microdollars) / MICRODOLLARS_PER_DOLLAR


def format_usd(microdollars: int, places: int = 2) -> str:
    """'$1,234.57' style text for humans (templates, CSV); rounds half up to ``places``."""
    amount = microdollars_to_usd(microdollars).quantize(Decimal(1).scaleb(-places), rounding=ROUNDING)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.{places}f}"
