"""Parsers of the three price sources (no database)."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costcalc.sources import (
    PriceTier,
    SourceFormatError,
    parse_genai_prices_document,
    parse_openrouter_history,
    parse_openrouter_models,
    tiers_from_json,
    tiers_to_json,
)

from ._shared import shared_file

D = Decimal


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def genai_doc(*models):
    return [{"id": "other", "models": []}, {"id": "openrouter", "models": list(models)}]


# --- genai-prices ---------------------------------------------------------------------------


def test_genai_prices_date_constraints_become_periods_and_the_first_price_covers_earlier_dates():
    doc = genai_doc(
        {
            "id": "acme/model",
            "match": {"equals": "acme/model"},
            "prices": [
                {"prices": {"input_mtok": 1, "output_mtok": 2}},
                {"constraint": {"start_date": "2026-03-01"}, "prices": {"input_mtok": 3, "output_mtok": 4}},
            ],
        }
    )
    records = sorted(parse_genai_prices_document(doc).records, key=lambda r: r.effective_from or day("1900-01-01"))
    assert [(r.effective_from, r.effective_until, r.input_per_mtok) for r in records] == [
        (None, day("2026-03-01"), D(1)),
        (day("2026-03-01"), None, D(3)),
    ]
    assert records[0].vendor == "acme" and records[0].source == "genai-prices"


def test_genai_prices_first_constrained_price_still_applies_before_its_start():
    # genai-prices falls back to the first entry when no constraint is active
    doc = genai_doc(
        {
            "id": "acme/model",
            "match": {"equals": "acme/model"},
            "prices": [{"constraint": {"start_date": "2026-03-01"}, "prices": {"input_mtok": 5}}],
        }
    )
    (record,) = parse_genai_prices_document(doc).records
    assert (record.effective_from, record.effective_until, record.input_per_mtok) == (None, None, D(5))
    assert record.output_per_mtok == 0  # no output price in genai-prices means output is free


def test_genai_prices_every_literal_slug_is_kept_the_first_matching_model_wins_and_bare_aliases_are_dropped():
    doc = genai_doc(
        {
            "id": "acme/a",
            "match": {"or": [{"equals": "acme/a"}, {"equals": "acme/b"}, {"equals": "a"}]},
            "prices": {"input_mtok": 1, "output_mtok": 1},
        },
        {"id": "acme/b", "match": {"equals": "acme/b"}, "prices": {"input_mtok": 9, "output_mtok": 9}},
        {"id": "acme/c", "match": {"starts_with": "acme/c"}, "prices": {}},
    )
    by_slug = {r.slug: r for r in parse_genai_prices_document(doc).records}
    assert set(by_slug) == {"acme/a", "acme/b", "acme/c"}
    assert by_slug["acme/b"].input_per_mtok == 1  # shadowed by the first model, as calc_price does
    assert by_slug["acme/c"].input_per_mtok == 0  # `prices: {}` is free


def test_genai_prices_tiers_of_all_fields_merge_into_resolved_tiers():
    doc = genai_doc(
        {
            "id": "acme/long",
            "match": {"equals": "acme/long"},
            "prices": {
                "input_mtok": {"base": 1, "tiers": [{"start": 200000, "price": 2}]},
                "output_mtok": {"base": 5, "tiers": [{"start": 128000, "price": 6}, {"start": 200000, "price": 7}]},
                "cache_read_mtok": 0.1,
                "requests_kcount": 2,
            },
        }
    )
    (record,) = parse_genai_prices_document(doc).records
    assert record.cache_read_per_mtok == D("0.1") and record.request_fee_usd == D("0.002")
    assert record.tiers == (
        PriceTier(128000, D(1), D(6), D("0.1")),
        PriceTier(200000, D(2), D(7), D("0.1")),
    )


def test_genai_prices_time_of_day_prices_are_skipped_with_a_reason():
    doc = genai_doc(
        {
            "id": "acme/offpeak",
            "match": {"equals": "acme/offpeak"},
            "prices": [
                {"prices": {"input_mtok": 1}},
                {"constraint": {"start_time": "16:30:00Z", "end_time": "00:30:00Z"}, "prices": {"input_mtok": 0.5}},
            ],
        }
    )
    result = parse_genai_prices_document(doc)
    assert result.records == ()
    assert result.skipped[0].slug == "acme/offpeak" and "time-of-day" in result.skipped[0].reason


def test_genai_prices_document_without_the_provider_is_rejected():
    with pytest.raises(SourceFormatError):
        parse_genai_prices_document([{"id": "openai", "models": []}])


def test_genai_prices_v2_data_json_parses():
    document = json.loads(shared_file("pricing/genai-prices/data.json").read_text(), parse_float=Decimal)
    result = parse_genai_prices_document(document)
    assert len(result.slugs) > 500
    assert all("/" in slug for slug in result.slugs)


# --- OpenRouter models ----------------------------------------------------------------------


def or_model(slug="acme/model", **pricing):
    return {"id": slug, "name": "Acme: Model", "pricing": {"prompt": "0.000003", "completion": "0.000015", **pricing}}


def test_openrouter_per_token_strings_become_exact_per_million_prices():
    (record,) = parse_openrouter_models(
        [or_model(input_cache_read="0.0000003", internal_reasoning="0.00000090000000000000005", request="0.001")]
    ).records
    assert record.input_per_mtok == D(3) and record.output_per_mtok == D(15)
    assert record.cache_read_per_mtok == D("0.3")
    assert record.reasoning_per_mtok == D("0.90000000000000005")
    assert record.request_fee_usd == D("0.001")
    assert record.cache_write_per_mtok is None
    assert record.display_name == "Acme: Model" and record.source == "openrouter"


def test_openrouter_accepts_the_data_envelope_and_reads_overrides_as_tiers():
    document = {"data": [or_model(overrides=[{"min_prompt_tokens": 200000, "prompt": "0.000006"}])]}
    (record,) = parse_openrouter_models(document).records
    assert record.tiers == (PriceTier(200000, D(6), D(15)),)  # completion not overridden: base price


def test_openrouter_variable_price_routers_are_skipped():
    result = parse_openrouter_models([or_model("openrouter/auto", prompt="-1", completion="-1"), or_model()])
    assert [r.slug for r in result.records] == ["acme/model"]
    assert result.skipped[0].slug == "openrouter/auto"


def test_openrouter_canonical_slug_is_an_alias_unless_two_models_share_it():
    result = parse_openrouter_models(
        [
            {**or_model("acme/one"), "canonical_slug": "acme/one-20260101"},
            {**or_model("acme/two"), "canonical_slug": "acme/two-20260101"},
            {**or_model("acme/two:thinking"), "canonical_slug": "acme/two-20260101"},
        ]
    )
    assert sorted(result.slugs) == ["acme/one", "acme/one-20260101", "acme/two", "acme/two:thinking"]


@pytest.mark.parametrize("document", [{"models": []}, "nope", {"data": {}}])
def test_openrouter_rejects_other_documents(document):
    with pytest.raises(SourceFormatError):
        parse_openrouter_models(document)


# --- OpenRouter history ---------------------------------------------------------------------


def history(*entries, **extra):
    return {"models": {"acme/model": {"name": "Acme", "history": list(entries), **extra}}}


def entry(first, last, prompt):
    return {"first_observed": first, "last_observed": last, "pricing": {"prompt": prompt, "completion": "0"}}


def test_history_periods_start_on_first_observed_and_the_ends_stay_open():
    result = parse_openrouter_history(
        history(entry("2026-02-27", "2026-03-05", "0.000001"), entry("2026-03-06", "2026-05-01", "0.000002"))
    )
    assert [(r.effective_from, r.effective_until, r.input_per_mtok) for r in result.records] == [
        (None, day("2026-03-06"), D(1)),
        (day("2026-03-06"), None, D(2)),
    ]


def test_history_entries_first_seen_the_same_day_keep_the_later_one_for_that_day():
    result = parse_openrouter_history(
        history(
            entry("2026-02-27", "2026-02-27", "0.000001"),
            entry("2026-02-27", "2026-03-05", "0.000002"),
            entry("2026-03-06", "2026-03-09", "0.000003"),
            entry("2026-03-06", "2026-05-01", "0.000004"),
        )
    )
    assert [(r.effective_from, r.input_per_mtok) for r in result.records] == [
        (None, D(1)),
        (day("2026-02-27"), D(2)),
        (day("2026-03-06"), D(4)),
    ]


def test_history_changes_to_prices_we_do_not_use_do_not_split_periods():
    first = entry("2026-02-27", "2026-03-05", "0.000001")
    second = {
        **entry("2026-03-06", "2026-05-01", "0.000001"),
        "pricing": {"prompt": "0.000001", "completion": "0", "image": "0.1"},
    }
    (record,) = parse_openrouter_history(history(first, second)).records
    assert (record.effective_from, record.effective_until) == (None, None)


def test_tiers_round_trip_through_json():
    tiers = (PriceTier(200000, D("6"), D("22.5"), D("0.6"), None, D("0.90000000000000005")),)
    assert tiers_from_json(json.loads(json.dumps(tiers_to_json(tiers)))) == tiers
