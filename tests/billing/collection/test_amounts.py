"""Pure arithmetic of collection: minor units per currency, Stripe items that total exactly, status order."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.collection import amounts


@pytest.mark.parametrize(
    ("cents", "currency", "minor"),
    [
        (12345, "usd", 12345),
        (12345, "EUR", 12345),
        (12345, "jpy", 123),  # ¥123.45 -> ¥123
        (12350, "JPY", 124),  # half up
        (12349, "krw", 123),
        (-150, "jpy", -2),  # credits: half away from zero, like the positive side
        (12345, "kwd", 123450),  # three decimals
    ],
)
def test_cents_become_the_currencys_minor_units(cents, currency, minor):
    assert amounts.to_minor(cents, currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "cents"), [(500, "usd", 500), (5, "jpy", 500), (1235, "bhd", 124), (1230, "bhd", 123)]
)
def test_minor_units_read_back_as_cents(minor, currency, cents):
    assert amounts.to_cents(minor, currency) == cents


def test_a_whole_quantity_that_divides_the_amount_is_sent_as_quantity_and_unit_amount():
    assert amounts.item_pricing(quantity=Decimal(3), amount_minor=150) == amounts.ItemPricing(3, "50", True)
    assert amounts.item_pricing(quantity=Decimal("3000000"), amount_minor=150) == amounts.ItemPricing(
        3_000_000, "0.00005", True
    )


@pytest.mark.parametrize(
    ("quantity", "amount"),
    [(Decimal("4.5"), 225), (Decimal(3), 100), (Decimal("0.25"), 1), (Decimal(0), 0), (Decimal(7), -3)],
)
def test_anything_else_is_one_unit_at_the_line_amount(quantity, amount):
    """Fractional quantities, a unit amount that does not terminate within 12 decimals (100/3), zero."""
    pricing = amounts.item_pricing(quantity=quantity, amount_minor=amount)
    assert (pricing.quantity, pricing.unit_amount_decimal, pricing.exact_quantity) == (1, str(amount), False)


@given(
    quantity=st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False, allow_infinity=False),
    amount=st.integers(min_value=-(10**12), max_value=10**12),
)
def test_stripe_multiplies_an_item_back_to_exactly_the_line_amount(quantity, amount):
    pricing = amounts.item_pricing(quantity=quantity, amount_minor=amount)
    unit = Decimal(pricing.unit_amount_decimal)
    assert -unit.as_tuple().exponent <= amounts.UNIT_DECIMAL_PLACES
    assert unit * pricing.quantity == amount
    assert pricing.quantity >= 1


@pytest.mark.parametrize(
    ("current", "incoming", "applies"),
    [
        ("", "draft", True),
        ("draft", "open", True),
        ("open", "open", True),  # a repeated status still refreshes amounts
        ("open", "paid", True),
        ("open", "uncollectible", True),
        ("uncollectible", "paid", True),
        ("uncollectible", "void", True),
        ("paid", "open", False),  # invoice.finalized arriving after invoice.paid
        ("paid", "void", False),
        ("void", "paid", False),
        ("uncollectible", "open", False),
        ("open", "draft", False),
        ("open", "deleted", False),
    ],
)
def test_statuses_only_move_forward(current, incoming, applies):
    assert amounts.status_advances(current, incoming) is applies
