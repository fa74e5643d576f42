"""COST_PLUS rating (pure): the priced cost of the calls x (1 + markup), one rounding per line."""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import rating

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
WINDOW = rating.InvoiceWindow(start=START, end=END, contract_starting_at=START)
METRIC = rating.MetricDefinition(
    id="cost", aggregation_type=rating.AggregationType.SUM, aggregation_key="cost_microdollars", group_keys=("model",)
)
PRODUCT = rating.ProductDefinition(
    id="p", name="Model calls", type=rating.ProductType.USAGE, metric=METRIC, presentation_group_key=("model",)
)


def lines_for(costs: dict, terms: rating.CostPlus, tokens: dict | None = None, overrides=()):
    price = rating.Price(rate_type=rating.RateType.COST_PLUS, cost_plus=terms)
    book = rating.PricingBook(
        rates={"p": [rating.RateVersion(START, None, True, price)]}, overrides={"p": list(overrides)}
    )

    def usage(product, plan):
        return [
            rating.UsageCell(
                group=(("model", model),), segment_index=0, quantity=Decimal(cost), tokens=(tokens or {}).get(model, 0)
            )
            for model, cost in costs.items()
        ]

    return rating.rate_invoice(window=WINDOW, products=[PRODUCT], book=book, usage=usage)


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


MODELS = ["openai/gpt-4o", "anthropic/claude-3.5-sonnet", "anthropic/claude-3-haiku", "google/gemini-2.0-flash"]
markups = st.decimals(min_value=0, max_value=10, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    costs=st.dictionaries(st.sampled_from(MODELS), st.integers(min_value=0, max_value=10**13), min_size=1),
    markup=markups,
    overrides=st.dictionaries(st.sampled_from(MODELS), markups, max_size=2),
)
def test_total_is_the_sum_of_per_line_half_up_roundings_of_exact_cost_times_one_plus_markup(costs, markup, overrides):
    terms = rating.CostPlus(markup=markup, model_markups=tuple(sorted(overrides.items())))

    lines = lines_for(costs, terms)

    expected = {
        model: half_up(Decimal(cost) / 10_000 * (1 + overrides.get(model, markup))) for model, cost in costs.items()
    }
    assert {dict(line.group)["model"]: line.amount_cents for line in lines} == expected
    assert rating.invoice_total(lines) == sum(expected.values())
    for line in lines:
        assert line.rate_type == "COST_PLUS"
        assert line.cost_microdollars == costs[dict(line.group)["model"]]
        assert line.markup == overrides.get(dict(line.group)["model"], markup)


def test_a_worked_example_half_a_cent_rounds_up_once_per_line():
    # 7,500 µ$ x 1.3 = 0.975 cents → 1 cent; 21,000 µ$ x 1.5 = 3.15 → 3; 3,500 µ$ x 1.3 = 0.455 → 0.
    terms = rating.CostPlus(markup=Decimal("0.3"), model_markups=(("anthropic/claude-3.5-sonnet", Decimal("0.5")),))

    lines = lines_for(
        {"openai/gpt-4o": 7500, "anthropic/claude-3.5-sonnet": 21000, "anthropic/claude-3-haiku": 3500}, terms
    )

    assert [(dict(line.group)["model"], line.amount_cents) for line in lines] == [
        ("anthropic/claude-3-haiku", 0),
        ("anthropic/claude-3.5-sonnet", 3),
        ("openai/gpt-4o", 1),
    ]
    assert lines[1].quantity == Decimal("2.1") and lines[1].unit_price == Decimal("1.5")


def test_a_minimum_raises_lines_that_charge_something():
    terms = rating.CostPlus(markup=Decimal("0.3"), minimum_cents=Decimal(25))

    lines = lines_for({"openai/gpt-4o": 7500, "anthropic/claude-3-haiku": 0, "x/big": 1_000_000}, terms)

    assert {dict(line.group)["model"]: line.amount_cents for line in lines} == {
        "openai/gpt-4o": 25,
        "anthropic/claude-3-haiku": 0,
        "x/big": 130,
    }


def test_included_dollars_are_drawn_down_first_in_presentation_order():
    # Marked up: haiku 0.455¢... use round numbers: a 100¢ and a 260¢ line, 150¢ included.
    terms = rating.CostPlus(markup=Decimal("0.3"), included_cents=Decimal(150))

    lines = lines_for({"anthropic/claude-3-haiku": 769_231, "openai/gpt-4o": 2_000_000}, terms)

    by_model = {dict(line.group)["model"]: line for line in lines}
    haiku, gpt = by_model["anthropic/claude-3-haiku"], by_model["openai/gpt-4o"]
    assert haiku.amount_cents == 0 and haiku.allowance_cents == Decimal("76.9231") * Decimal("1.3")
    assert gpt.allowance_cents == Decimal(150) - haiku.allowance_cents
    assert gpt.amount_cents == half_up(Decimal(260) - gpt.allowance_cents)


def test_included_tokens_cover_that_share_of_a_lines_cost():
    terms = rating.CostPlus(markup=Decimal("0.3"), included_tokens=1000)

    lines = lines_for(
        {"anthropic/claude-3-haiku": 100_000, "openai/gpt-4o": 100_000},
        terms,
        tokens={"anthropic/claude-3-haiku": 400, "openai/gpt-4o": 2400},
    )

    by_model = {dict(line.group)["model"]: line for line in lines}
    assert by_model["anthropic/claude-3-haiku"].amount_cents == 0  # 400 of 1000 tokens included
    assert by_model["openai/gpt-4o"].amount_cents == 10  # 1800 of 2400 tokens charged: 13¢ x 0.75 = 9.75
    assert by_model["openai/gpt-4o"].tokens == 2400


def test_tiers_apply_to_the_marked_up_amount():
    tiers = (rating.Tier(price=Decimal(1), size=Decimal(100)), rating.Tier(price=Decimal("0.8")))
    terms = rating.CostPlus(markup=Decimal("0.3"), tiers=tiers)

    lines = lines_for({"openai/gpt-4o": 2_000_000}, terms)  # 200¢ x 1.3 = 260¢

    assert [(line.tier_index, line.quantity, line.amount_cents) for line in lines] == [
        (1, Decimal(100), 100),
        (2, Decimal(160), 128),
    ]


def test_a_contract_multiplier_scales_the_marked_up_amount():
    override = rating.Override(starting_at=START, ending_before=None, multiplier=Decimal("0.5"))

    (line,) = lines_for({"openai/gpt-4o": 1_000_000}, rating.CostPlus(markup=Decimal("0.3")), overrides=[override])

    assert line.amount_cents == 65 and line.unit_price == Decimal("0.65")


def test_a_cost_plus_price_needs_its_terms():
    with pytest.raises(ValueError, match="markup"):
        rating.Price(rate_type=rating.RateType.COST_PLUS)
