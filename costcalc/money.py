"""Money helpers used by every app. Money is never a float.

- Cost and revenue amounts are integers of microdollars (1e-6 USD).
- Unit prices are Decimal (USD per million tokens for models; cents for billing rates).
- Rounding happens once, where a Decimal amount becomes an integer amount, with ROUND_HALF_UP.
"""

from decimal import ROUND_HALF_UP, Decimal

from accounts.api.renderers import plain_decimal

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


# --- Text for people: one set of helpers for pages, admin, CSV and messages -------------------------

def plain(number: int | Decimal) -> str:
    """A number as plain text without exponent or trailing zeros: 1.500000 → '1.5', 1E+6 → '1000000'
    (the API's exact-number writer, `accounts.api.renderers.plain_decimal`, for ints too)."""
    return plain_decimal(to_decimal(number))


def _grouped(text: str, min_places: int = 0) -> str:
    """'-1234.5' → '-1,234.5' (and at least ``min_places`` decimals)."""
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("-").partition(".")
    fraction = fraction.ljust(min_places, "0")
    return f"{sign}{int(whole or 0):,}" + (f".{fraction}" if fraction else "")


def format_quantity(quantity: int | Decimal, max_places: int = 6) -> str:
    """A quantity (tokens, requests, units) without trailing zeros, thousands grouped:
    Decimal('1500000.000000000000') → '1,500,000', Decimal('0.250') → '0.25'; at most ``max_places``
    decimals shown (rounded half up; the stored value stays exact)."""
    rounded = to_decimal(quantity).quantize(Decimal(1).scaleb(-max_places), rounding=ROUNDING)
    return _grouped(plain(rounded))


def format_money(microdollars: int | None) -> str:
    """Dollars with the precision the amount needs: cents from $1 up ('$1,234.57'); below a dollar,
    three significant digits, never past the microdollar nor below two places ('$0.356', '$0.0045',
    '$0.20', '$0.000125'). Costs of single model calls are fractions of a cent, so two places would
    show most of them as $0.00, and six would bury a 36-cent amount in digits. ``None`` (no amount)
    is an em dash. Text only: amounts themselves stay exact integers."""
    if microdollars is None:
        return "—"
    amount = microdollars_to_usd(microdollars)
    if abs(amount) >= 1 or amount == 0:
        return format_usd(microdollars)
    places = min(6, max(2, 2 - abs(amount).adjusted()))  # 0.0045 → adjusted() -3 → 5 places
    rounded = abs(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUNDING)
    if rounded >= 1:  # $0.999999 → $1.00
        return format_usd(microdollars)
    sign = "-" if amount < 0 else ""
    return f"{sign}${_grouped(plain(rounded), min_places=2)}"


def format_usd_price(usd: int | str | Decimal) -> str:
    """A unit price in USD exactly as stored, at least two decimals, no trailing zeros past them:
    Decimal('0.2000000000') → '$0.20', Decimal('2.5') → '$2.50', Decimal('0.000125') → '$0.000125'."""
    amount = to_decimal(usd)
    sign = "-" if amount < 0 else ""
    return f"{sign}${_grouped(plain(abs(amount)), min_places=2)}"


def format_cents_price(cents: int | str | Decimal) -> str:
    """A unit price in cents (billing rates) as dollars: Decimal('20.000000000000') → '$0.20'."""
    return format_usd_price(to_decimal(cents) / 100)
