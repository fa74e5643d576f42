"""Pure arithmetic of collection through Stripe: currencies' minor units, invoice items, status order.

Our invoices count money in integer **cents: hundredths of the invoice currency's main unit** (rate
prices are cents, whatever the currency). Stripe counts in each currency's minor unit: the cent for
most, the unit itself for zero-decimal currencies (JPY, KRW, ...), a thousandth for three-decimal
ones (KWD, BHD, ...). `to_minor` is the one place a conversion rounds: zero-decimal amounts are
rounded ROUND_HALF_UP to the whole unit, per line (each Stripe item is a whole number of yen), so a
Stripe total is exactly the sum of the items we sent, which may differ from our total / 100 by the
rounding of each line.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

# https://docs.stripe.com/currencies#zero-decimal and #three-decimal
ZERO_DECIMAL = frozenset(
    ["bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"]
)
THREE_DECIMAL = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])
UNIT_DECIMAL_PLACES = 12  # Stripe's unit_amount_decimal keeps at most 12 decimal places


def minor_digits(currency: str) -> int:
    """Decimal places of the currency's minor unit at Stripe (0, 2 or 3)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def to_minor(cents: int, currency: str) -> int:
    """Our cents (hundredths of the unit) as Stripe's minor units; zero-decimal rounds half up."""
    digits = minor_digits(currency)
    if digits == 2:
        return cents
    if digits == 3:
        return cents * 10
    return int((Decimal(cents) / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_cents(minor: int, currency: str) -> int:
    """Stripe's minor units as our cents (three-decimal amounts round half up to the cent)."""
    digits = minor_digits(currency)
    if digits == 2:
        return minor
    if digits == 0:
        return minor * 100
    return int((Decimal(minor) / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class ItemPricing:
    quantity: int
    unit_amount_decimal: str  # minor units per unit, as Stripe's `unit_amount_decimal` takes it
    exact_quantity: bool  # False: quantity 1 carrying the whole amount (the real quantity is in the text)


def plain(value: Decimal) -> str:
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def item_pricing(*, quantity: Decimal, amount_minor: int) -> ItemPricing:
    """Quantity and unit amount of one Stripe invoice item whose product is exactly ``amount_minor``.

    Stripe items take a whole quantity and multiply it by the unit amount (12 decimals at most). When
    the line's quantity is a whole number and the amount divides by it within 12 decimals, that is what
    is sent; otherwise (fractional quantities such as 1.5 million tokens, or a unit price that does not
    terminate) the item is quantity 1 at the line's amount, so Stripe's total never drifts from ours.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        if quantity >= 1 and quantity == quantity.to_integral_value():
            whole = int(quantity)
            unit = Decimal(amount_minor) / whole
            rounded = unit.quantize(Decimal(1).scaleb(-UNIT_DECIMAL_PLACES))
            if rounded == unit and rounded * whole == amount_minor:
                return ItemPricing(quantity=whole, unit_amount_decimal=plain(rounded), exact_quantity=True)
    return ItemPricing(quantity=1, unit_amount_decimal=str(amount_minor), exact_quantity=False)


# Stripe invoice statuses only move forward: draft -> open -> (paid | void | uncollectible), and an
# uncollectible invoice may still be paid or voided. Webhooks arrive in any order; an event that would
# move an invoice backwards is old news and is not applied.
_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}
TERMINAL = frozenset({"paid", "void"})


def status_advances(current: str, incoming: str) -> bool:
    """Whether a Stripe status seen in an event may replace the one we hold."""
    if incoming not in _RANK:
        return False
    if not current:
        return True
    if current in TERMINAL:
        return incoming == current
    return _RANK[incoming] >= _RANK.get(current, 0)
