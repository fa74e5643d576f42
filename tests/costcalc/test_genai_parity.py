"""Parity with genai-prices: with the catalog loaded from the installed package, our cost equals
`genai_prices.calc_price(..., model_ref=slug, provider_id="openrouter")` rounded half up to the
microdollar, on generated (slug, token counts, date) cases over every slug its openrouter provider
knows. No database: the catalog is the parsed records in a `CatalogSnapshot`.
"""

import random
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP

import pytest
from genai_prices import Usage, calc_price

from costcalc.engine import CatalogSnapshot
from costcalc.sources import load_genai_prices_bundled

CASES = 3000


@pytest.fixture(scope="module")
def catalog():
    result = load_genai_prices_bundled()
    return result, CatalogSnapshot(result.records)


def genai_microdollars(slug, when, usage) -> int:
    total = calc_price(
        Usage(
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_read_tokens=usage["cached_input_tokens"],
            cache_write_tokens=usage["cache_write_tokens"],
            output_reasoning_tokens=usage["reasoning_tokens"],
        ),
        model_ref=slug,
        provider_id="openrouter",
        genai_request_timestamp=when,
    ).total_price
    return int((total * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))


def interesting_dates(result) -> list[datetime]:
    """Every price change date, a moment before it, and spread-out dates around them."""
    moments = {datetime(2023, 6, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)}
    for record in result.records:
        if record.effective_from is not None:
            moments |= {record.effective_from, record.effective_from - timedelta(microseconds=1)}
    return sorted(moments)


def token_counts(rng: random.Random, thresholds: list[int]) -> dict:
    input_tokens = rng.choice(
        [
            0,
            1,
            rng.randrange(10_000),
            rng.randrange(10**6),
            rng.randrange(10**8),
            *thresholds,
            *[t + 1 for t in thresholds],
        ]
    )
    cached = rng.randrange(input_tokens + 1) if rng.random() < 0.5 else 0
    written = rng.randrange(input_tokens - cached + 1) if rng.random() < 0.3 else 0
    output_tokens = rng.choice([0, 1, rng.randrange(10_000), rng.randrange(10**7)])
    reasoning = rng.randrange(output_tokens + 1) if rng.random() < 0.4 else 0
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_input_tokens": cached,
        "cache_write_tokens": written,
        "reasoning_tokens": reasoning,
    }


def test_every_slug_of_the_openrouter_provider_is_in_the_catalog(catalog):
    from genai_prices.data import providers

    (openrouter,) = [provider for provider in providers if provider.id == "openrouter"]
    model_ids = {model.id for model in openrouter.models if "/" in model.id}
    result, snapshot = catalog
    assert model_ids <= result.slugs
    assert len(snapshot) == len(result.slugs) >= 1000


def test_our_cost_equals_genai_prices_on_generated_cases(catalog):
    result, snapshot = catalog
    rng = random.Random(20260401)
    slugs = sorted(result.slugs)
    dates = interesting_dates(result)
    thresholds = sorted({tier.above_input_tokens for record in result.records for tier in record.tiers})
    mismatches = []
    # every slug once (on a random date), then random slugs, to CASES cases in all
    picks = slugs + [rng.choice(slugs) for _ in range(max(0, CASES - len(slugs)))]
    for slug in picks:
        when = (
            rng.choice(dates)
            if rng.random() < 0.7
            else datetime(2023, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(5 * 365 * 86_400))
        )
        usage = token_counts(rng, thresholds)
        ours = snapshot.cost_microdollars(slug, when, **usage)
        theirs = genai_microdollars(slug, when, usage)
        if ours != theirs:
            mismatches.append((slug, when.isoformat(), usage, ours, theirs))
    assert len(picks) >= 1000
    assert mismatches == []


def test_parity_holds_across_each_date_effective_change(catalog):
    result, snapshot = catalog
    changes = [r for r in result.records if r.effective_from is not None]
    assert changes, "the bundled catalog has date-effective prices"
    usage = {
        "input_tokens": 123_456,
        "output_tokens": 7_890,
        "cached_input_tokens": 23_456,
        "cache_write_tokens": 1_000,
        "reasoning_tokens": 890,
    }
    for record in changes:
        for when in (record.effective_from - timedelta(seconds=1), record.effective_from):
            assert snapshot.cost_microdollars(record.slug, when, **usage) == genai_microdollars(
                record.slug, when, usage
            )
