"""Pure parts of the ingest core."""

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from events.services.ingest import MAX_MICRODOLLARS, _per_unit

prices = st.decimals(min_value=0, max_value=10**6, places=12, allow_nan=False, allow_infinity=False)
units = st.decimals(min_value=0, max_value=10**9, places=9, allow_nan=False, allow_infinity=False)


@given(prices, units)
def test_feature_amounts_are_exact_and_rounded_once_half_up(price, quantity):
    numerator = int(price.scaleb(12)) * int(quantity.scaleb(9))  # exact integer, units of 1e-21 USD
    expected = (numerator + 5 * 10**14) // 10**15  # to microdollars (1e-6 USD), half up
    result = _per_unit(price, quantity)
    if expected > MAX_MICRODOLLARS:
        assert result == MAX_MICRODOLLARS + 1
    else:
        assert result == expected


def test_missing_price_or_units_cost_nothing():
    assert _per_unit(None, Decimal(3)) == 0
    assert _per_unit(Decimal("0.5"), None) == 0
    assert _per_unit(Decimal("0.0000005"), Decimal(1)) == 1  # half a microdollar rounds up
    assert _per_unit(Decimal("0.0000004999"), Decimal(1)) == 0
