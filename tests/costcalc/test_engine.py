"""The pure cost engine and the in-process catalog snapshot (no database)."""

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costcalc.engine import (
    CatalogSnapshot,
    InvalidUsageError,
    PriceNotInEffectError,
    UnknownModelError,
    cost_microdollars,
)
from costcalc.sources import PriceRecord, PriceTier

D = Decimal
JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


def price(slug="acme/model", **fields) -> PriceRecord:
    base = {"input_per_mtok": D("3"), "output_per_mtok": D("15"), "vendor": slug.split("/")[0], "display_name": slug}
    return PriceRecord(slug=slug, **{**base, **fields})


def cost(record, **usage) -> int:
    return cost_microdollars(record, **{"input_tokens": 0, "output_tokens": 0, **usage})


# --- token semantics ------------------------------------------------------------------------


def test_input_and_output_are_priced_per_million_tokens():
    # 1,000 in x $3/M + 100 out x $15/M = $0.003 + $0.0015 = 4,500 microdollars
    assert cost(price(), input_tokens=1000, output_tokens=100) == 4500


def test_cached_tokens_are_part_of_input_and_use_the_cache_price_when_distinct():
    record = price(cache_read_per_mtok=D("0.3"))
    # 600 uncached x 3 + 400 cached x 0.3 = 1800 + 120
    assert cost(record, input_tokens=1000, cached_input_tokens=400) == 1920


def test_cached_tokens_are_billed_as_input_when_the_model_has_no_cache_price():
    assert cost(price(), input_tokens=1000, cached_input_tokens=400) == 3000


def test_cache_writes_are_part_of_input_and_use_the_cache_write_price():
    record = price(cache_read_per_mtok=D("0.3"), cache_write_per_mtok=D("3.75"))
    # 500 plain x 3 + 300 read x 0.3 + 200 written x 3.75 = 1500 + 90 + 750
    assert cost(record, input_tokens=1000, cached_input_tokens=300, cache_write_tokens=200) == 2340


def test_reasoning_tokens_are_part_of_output_and_billed_as_output_unless_distinct():
    assert cost(price(), output_tokens=1000, reasoning_tokens=600) == 15000
    distinct = price(reasoning_per_mtok=D("3"))
    # 400 x 15 + 600 x 3
    assert cost(distinct, output_tokens=1000, reasoning_tokens=600) == 7800


def test_request_fee_is_added_once_per_call():
    assert cost(price(request_fee_usd=D("0.005")), input_tokens=1000) == 3000 + 5000


def test_free_variants_cost_nothing_even_if_a_price_is_stored():
    assert cost(price("acme/model:free"), input_tokens=10**6, output_tokens=10**6) == 0


def test_long_context_tier_replaces_every_price_above_its_threshold_only():
    tier = PriceTier(
        above_input_tokens=200_000, input_per_mtok=D("6"), output_per_mtok=D("22.5"), cache_read_per_mtok=D("0.6")
    )
    record = price(cache_read_per_mtok=D("0.3"), tiers=(tier,))
    at_threshold = cost(record, input_tokens=200_000, output_tokens=1000)
    above = cost(record, input_tokens=200_001, output_tokens=1000, cached_input_tokens=1)
    assert at_threshold == 200_000 * 3 + 1000 * 15
    # 200,000 plain x 6 + 1 cached x 0.6 + 1,000 out x 22.5 = 1,222,500.6 → 1,222,501
    assert above == 1_222_501


def test_the_last_applicable_tier_wins():
    tiers = (
        PriceTier(above_input_tokens=32_000, input_per_mtok=D("4"), output_per_mtok=D("16")),
        PriceTier(above_input_tokens=128_000, input_per_mtok=D("5"), output_per_mtok=D("20")),
    )
    record = price(tiers=tiers)
    assert cost(record, input_tokens=100_000) == 400_000
    assert cost(record, input_tokens=200_000) == 1_000_000


def test_one_rounding_half_up_to_the_microdollar():
    record = price(input_per_mtok=D("0.5"), output_per_mtok=D("0.25"))
    assert cost(record, input_tokens=1) == 1  # 0.5 µ$ rounds up
    assert cost(record, output_tokens=1) == 0  # 0.25 µ$ rounds down
    # rounding happens on the sum, not per part: 0.5 + 0.25 = 0.75 → 1, and 3 x 0.25 = 0.75 → 1
    assert cost(record, input_tokens=1, output_tokens=1) == 1
    assert cost(record, output_tokens=3) == 1


def test_float_artifact_prices_are_kept_exactly():
    record = price(input_per_mtok=D("0.90000000000000005"), output_per_mtok=D("0"))
    # exactly 90,000,000.000000005 µ$ (a float would already have lost the tail)
    assert cost(record, input_tokens=10**8) == 90_000_000
    assert cost(record, input_tokens=10**8 + 1) == 90_000_001


@pytest.mark.parametrize(
    "usage, field",
    [
        ({"input_tokens": -1}, "input_tokens"),
        ({"output_tokens": 1.5}, "output_tokens"),
        ({"input_tokens": True}, "input_tokens"),
        ({"input_tokens": 10, "cached_input_tokens": 11}, "cached_input_tokens"),
        ({"input_tokens": 10, "cached_input_tokens": 6, "cache_write_tokens": 5}, "cached_input_tokens"),
        ({"output_tokens": 10, "reasoning_tokens": 11}, "reasoning_tokens"),
    ],
)
def test_impossible_usage_is_rejected_not_priced(usage, field):
    with pytest.raises(InvalidUsageError) as error:
        cost(price(), **usage)
    assert error.value.field == field


# --- property tests -------------------------------------------------------------------------

prices = st.decimals(min_value=0, max_value=1000, places=8, allow_nan=False, allow_infinity=False)
optional_prices = st.none() | prices


@st.composite
def records_and_usage(draw):
    record = price(
        input_per_mtok=draw(prices),
        output_per_mtok=draw(prices),
        cache_read_per_mtok=draw(optional_prices),
        cache_write_per_mtok=draw(optional_prices),
        reasoning_per_mtok=draw(optional_prices),
        request_fee_usd=draw(st.decimals(min_value=0, max_value=1, places=9)),
    )
    input_tokens = draw(st.integers(0, 10**8))
    cached = draw(st.integers(0, input_tokens))
    written = draw(st.integers(0, input_tokens - cached))
    output_tokens = draw(st.integers(0, 10**8))
    reasoning = draw(st.integers(0, output_tokens))
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": written,
        "reasoning_tokens": reasoning,
    }
    return record, usage


def reference_cost(record: PriceRecord, usage: dict) -> Decimal:
    """The documented formula, written the plain way with an ample Decimal context."""
    with localcontext(prec=100):
        cache_read = record.cache_read_per_mtok
        cache_write = record.cache_write_per_mtok
        reasoning = record.reasoning_per_mtok
        plain_in = usage["input_tokens"]
        total = record.request_fee_usd * 1_000_000
        if cache_read is not None:
            plain_in -= usage["cached_input_tokens"]
            total += usage["cached_input_tokens"] * cache_read
        if cache_write is not None:
            plain_in -= usage["cache_write_tokens"]
            total += usage["cache_write_tokens"] * cache_write
        plain_out = usage["output_tokens"]
        if reasoning is not None:
            plain_out -= usage["reasoning_tokens"]
            total += usage["reasoning_tokens"] * reasoning
        return total + plain_in * record.input_per_mtok + plain_out * record.output_per_mtok


@given(records_and_usage())
def test_cost_is_the_exact_total_rounded_once_half_up(case):
    record, usage = case
    exact = reference_cost(record, usage)
    result = cost_microdollars(record, **usage)
    assert isinstance(result, int)
    assert result == int(exact.to_integral_value(rounding=ROUND_HALF_UP))
    assert abs(Decimal(result) - exact) <= Decimal("0.5")


@given(records_and_usage(), st.integers(1, 10**6))
def test_more_output_never_costs_less(case, extra):
    record, usage = case
    more = {**usage, "output_tokens": usage["output_tokens"] + extra}
    assert cost_microdollars(record, **more) >= cost_microdollars(record, **usage)


@given(records_and_usage())
def test_reading_from_cache_never_costs_more_when_the_cache_price_is_lower(case):
    record, usage = case
    if record.cache_read_per_mtok is None or record.cache_read_per_mtok > record.input_per_mtok:
        return
    uncached = {**usage, "cached_input_tokens": 0}
    assert cost_microdollars(record, **usage) <= cost_microdollars(record, **uncached)


# --- snapshot -------------------------------------------------------------------------------


def dated(slug, start, until, source="openrouter-history", **fields):
    return price(slug, effective_from=start, effective_until=until, source=source, **fields)


def test_price_as_of_picks_the_price_in_force_at_the_moment():
    snapshot = CatalogSnapshot(
        [
            dated("acme/model", None, MAR, input_per_mtok=D("1")),
            dated("acme/model", MAR, None, input_per_mtok=D("2")),
        ]
    )
    assert snapshot.price_as_of("acme/model", JAN).input_per_mtok == 1
    assert snapshot.price_as_of("acme/model", MAR - timedelta(microseconds=1)).input_per_mtok == 1
    assert snapshot.price_as_of("acme/model", MAR).input_per_mtok == 2  # effective_until is exclusive
    assert snapshot.price_as_of("acme/model", APR).input_per_mtok == 2


def test_a_known_slug_without_a_price_in_force_is_not_guessed():
    snapshot = CatalogSnapshot([dated("acme/model", MAR, APR)])
    with pytest.raises(PriceNotInEffectError):
        snapshot.price_as_of("acme/model", JAN)
    with pytest.raises(PriceNotInEffectError):
        snapshot.price_as_of("acme/model", APR)


def test_unknown_slug_raises_with_up_to_three_suggestions():
    snapshot = CatalogSnapshot(
        [price(slug) for slug in ("openai/gpt-4o", "openai/gpt-4o-mini", "openai/gpt-4.1", "anthropic/claude-opus-4")]
    )
    with pytest.raises(UnknownModelError) as error:
        snapshot.price_as_of("openai/gpt4o", APR)
    assert error.value.slug == "openai/gpt4o"
    assert error.value.suggestions[0] == "openai/gpt-4o"
    assert 1 <= len(error.value.suggestions) <= 3
    assert "did you mean" in str(error.value)
    with pytest.raises(UnknownModelError) as bare:
        snapshot.price_as_of("gpt-4o", APR)
    assert "openai/gpt-4o" in bare.value.suggestions
    with pytest.raises(UnknownModelError) as nothing_close:
        snapshot.price_as_of("zzzz/qqqq", APR)
    assert nothing_close.value.suggestions == ()


def test_lookup_normalises_case_and_compact_dates_like_genai_prices():
    snapshot = CatalogSnapshot([price("openai/gpt-5.2-2025-12-11")])
    assert snapshot.price_as_of("OpenAI/GPT-5.2-2025-12-11", APR).slug == "openai/gpt-5.2-2025-12-11"
    assert snapshot.price_as_of("openai/gpt-5.2-20251211", APR).slug == "openai/gpt-5.2-2025-12-11"


def test_anthropic_api_model_ids_resolve_to_the_catalogs_slugs():
    snapshot = CatalogSnapshot(
        [
            price(slug)
            for slug in (
                "anthropic/claude-sonnet-4.5",
                "anthropic/claude-haiku-4.5-20251001",
                "anthropic/claude-haiku-4.5",
                "anthropic/claude-3.5-sonnet",
                "anthropic/claude-sonnet-4",
                "openai/gpt-4o",
            )
        ]
    )
    resolved = {
        model: snapshot.price_as_of(model, APR).slug
        for model in (
            "claude-sonnet-4-5-20250929",  # versions with dashes, a snapshot the catalog does not list
            "anthropic/claude-sonnet-4-5",
            "claude-haiku-4-5-20251001",  # the catalog's own dated entry wins over the family
            "claude-3-5-sonnet-20241022",
            "Claude-3-5-Sonnet-Latest",
            "claude-sonnet-4-20250514",
        )
    }
    assert resolved == {
        "claude-sonnet-4-5-20250929": "anthropic/claude-sonnet-4.5",
        "anthropic/claude-sonnet-4-5": "anthropic/claude-sonnet-4.5",
        "claude-haiku-4-5-20251001": "anthropic/claude-haiku-4.5-20251001",
        "claude-3-5-sonnet-20241022": "anthropic/claude-3.5-sonnet",
        "Claude-3-5-Sonnet-Latest": "anthropic/claude-3.5-sonnet",
        "claude-sonnet-4-20250514": "anthropic/claude-sonnet-4",
    }
    for unknown in ("claude-opus-4-1-20250805", "gpt-4o", "anthropic/gpt-4o"):  # no such family; not Claude
        with pytest.raises(UnknownModelError):
            snapshot.price_as_of(unknown, APR)


def test_free_variant_of_a_known_model_costs_zero():
    snapshot = CatalogSnapshot([price("acme/model")])
    assert snapshot.cost_microdollars("acme/model:free", APR, input_tokens=10**6, output_tokens=10) == 0
    assert snapshot.cost_microdollars("acme/model", APR, input_tokens=10**6, output_tokens=0) == 3_000_000
    with pytest.raises(UnknownModelError):
        snapshot.price_as_of("acme/other:free", APR)


def test_between_sources_the_most_recent_start_wins_then_priority():
    snapshot = CatalogSnapshot(
        [
            dated("acme/model", None, None, source="genai-prices", input_per_mtok=D("1")),
            dated("acme/model", MAR, None, source="genai-prices", input_per_mtok=D("4")),
            dated("acme/model", None, None, source="openrouter-history", input_per_mtok=D("2")),
        ],
        source_priority=("openrouter-history", "genai-prices"),
    )
    assert snapshot.price_as_of("acme/model", JAN).input_per_mtok == 2  # same start: priority
    assert snapshot.price_as_of("acme/model", APR).input_per_mtok == 4  # newer change wins


def test_organization_overrides_win_for_that_organization_only():
    override = dated("acme/model", None, None, source="override", input_per_mtok=D("0.5"), row_id=7)
    snapshot = CatalogSnapshot([price("acme/model", row_id=1)], overrides={"org-a": [override]})
    record, is_override = snapshot.resolve("acme/model", APR, organization_id="org-a")
    assert (record.input_per_mtok, record.row_id, is_override) == (D("0.5"), 7, True)
    record, is_override = snapshot.resolve("acme/model", APR, organization_id="org-b")
    assert (record.input_per_mtok, is_override) == (D("3"), False)


def test_an_override_that_is_not_in_force_falls_back_to_the_catalog():
    override = dated("acme/model", MAR, APR, source="override", input_per_mtok=D("0.5"))
    snapshot = CatalogSnapshot([price("acme/model")], overrides={"org-a": [override]})
    assert snapshot.price_as_of("acme/model", JAN, organization_id="org-a").input_per_mtok == 3
    assert snapshot.price_as_of("acme/model", MAR, organization_id="org-a").input_per_mtok == D("0.5")


def test_naive_datetimes_are_refused():
    snapshot = CatalogSnapshot([price()])
    with pytest.raises(ValueError, match="timezone-aware"):
        snapshot.price_as_of("acme/model", datetime(2026, 4, 1))
