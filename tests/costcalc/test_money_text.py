"""The one set of text helpers for money and quantities (pages, admin, CSV, invoices)."""

from decimal import Decimal

import pytest
from django.template import Context, Template

from costcalc import money


@pytest.mark.parametrize(
    "microdollars, text",
    [(0, "$0.00"), (4_500, "$0.0045"), (200_000, "$0.20"), (125, "$0.000125"), (1, "$0.000001"),
     (355_973, "$0.356"), (192_547, "$0.193"), (7_453, "$0.00745"), (1_234, "$0.00123"), (12_345, "$0.0123"),
     (995, "$0.000995"), (999_999, "$1.00"), (994_999, "$0.995"), (1_000_000, "$1.00"), (1_234_565, "$1.23"),
     (1_235_000, "$1.24"), (123_456_789_000, "$123,456.79"), (-4_500, "-$0.0045"), (-355_973, "-$0.356"),
     (-2_500_000, "-$2.50"), (None, "—")],
)
def test_format_money_gives_cents_from_a_dollar_and_three_significant_digits_below(microdollars, text):
    assert money.format_money(microdollars) == text


@pytest.mark.parametrize(
    "value, text",
    [(Decimal("1500000.000000000000"), "1,500,000"), (Decimal("0.250"), "0.25"), (0, "0"), (12, "12"),
     (Decimal("1E+6"), "1,000,000"), (Decimal("0.0000004"), "0"), (Decimal("0.0000005"), "0.000001"),
     (Decimal("-1234.5"), "-1,234.5")],
)
def test_format_quantity_drops_trailing_zeros(value, text):
    assert money.format_quantity(value) == text


@pytest.mark.parametrize(
    "usd, text",
    [(Decimal("0.2000000000"), "$0.20"), (Decimal("2.5"), "$2.50"), (Decimal("0.000125"), "$0.000125"),
     (Decimal("1500"), "$1,500.00"), (Decimal("0"), "$0.00")],
)
def test_format_usd_price_is_exact(usd, text):
    assert money.format_usd_price(usd) == text


def test_format_cents_price_reads_billing_rates_in_cents():
    assert money.format_cents_price(Decimal("20.000000000000")) == "$0.20"
    assert money.format_cents_price(Decimal("0.0125")) == "$0.000125"


def test_money_is_never_a_float():
    with pytest.raises(TypeError):
        money.format_quantity(1.5)


def test_template_filters_use_the_same_helpers():
    rendered = Template("{% load money %}{{ a|money }} {{ b|quantity }} {{ c|percent }} {{ d|percent }}").render(
        Context({"a": 4_500, "b": Decimal("12.500"), "c": Decimal("52.9"), "d": None})
    )
    assert rendered == "$0.0045 12.5 52.9% —"
