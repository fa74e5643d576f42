"""The pricing service API and the catalog loaders, on the real database."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction

from costcalc.models import ModelPrice, UnpricedModel
from costcalc.selectors import CATALOG_BEGINNING, catalog_snapshot, catalog_version
from costcalc.services import (
    InvalidUsageError,
    PriceNotInEffectError,
    UnknownModelError,
    UsageToPrice,
    price_override_create,
    price_usage,
    price_usages,
    sync_model_prices,
    unpriced_models_record,
)
from costcalc.sources import (
    SOURCE_GENAI_PRICES,
    SOURCE_OPENROUTER,
    PriceRecord,
    SourceResult,
    load_genai_prices_bundled,
    parse_openrouter_history,
)
from tests.factories import OrganizationFactory

from ._shared import PRICING_HISTORY, seed_slugs, shared_file

pytestmark = pytest.mark.django_db

D = Decimal
JAN = datetime(2026, 1, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
APR = datetime(2026, 4, 1, tzinfo=UTC)


def rec(slug="acme/model", source=SOURCE_OPENROUTER, start=None, until=None, **prices) -> PriceRecord:
    fields = {"input_per_mtok": D("3"), "output_per_mtok": D("15"), **prices}
    return PriceRecord(
        slug=slug,
        vendor=slug.split("/")[0],
        display_name=slug,
        source=source,
        effective_from=start,
        effective_until=until,
        **fields,
    )


def load(*records, source=SOURCE_OPENROUTER, now=APR):
    return sync_model_prices(result=SourceResult(source, tuple(records)), now=now)


def rows(slug="acme/model", source=SOURCE_OPENROUTER):
    return list(
        ModelPrice.objects.filter(slug=slug, source=source)
        .order_by("effective_from")
        .values_list("effective_from", "effective_until", "input_per_mtok")
    )


# --- pricing ----------------------------------------------------------------------------------


def test_price_usage_uses_the_price_in_force_at_occurred_at(organization):
    load(
        rec(start=None, until=MAR, input_per_mtok=D("1")),
        rec(start=MAR, until=None, input_per_mtok=D("2")),
        source="openrouter-history",
    )
    before = price_usage(
        organization=organization, model="acme/model", input_tokens=10**6, output_tokens=0, occurred_at=JAN
    )
    after = price_usage(
        organization=organization, model="acme/model", input_tokens=10**6, output_tokens=0, occurred_at=APR
    )
    assert (before.cost_microdollars, after.cost_microdollars) == (1_000_000, 2_000_000)
    assert before.price_id != after.price_id
    assert ModelPrice.objects.get(pk=after.price_id).effective_from == MAR
    assert after.override_id is None


def test_organization_override_wins_over_the_catalog_for_that_organization_only(organization):
    load(rec())
    other = OrganizationFactory()
    override = price_override_create(
        organization=organization, slug="acme/model", input_per_mtok=D("1"), output_per_mtok=D("1"), note="negotiated"
    )
    mine = price_usage(
        organization=organization, model="acme/model", input_tokens=10**6, output_tokens=10**6, occurred_at=APR
    )
    theirs = price_usage(
        organization=other, model="acme/model", input_tokens=10**6, output_tokens=10**6, occurred_at=APR
    )
    assert (mine.cost_microdollars, mine.override_id, mine.price_id) == (2_000_000, override.pk, None)
    assert theirs.cost_microdollars == 18_000_000 and theirs.override_id is None and theirs.price_id


def test_override_for_a_model_the_catalog_does_not_know(organization):
    price_override_create(
        organization=organization, slug="inhouse/finetune", input_per_mtok=D("2"), output_per_mtok=D("2")
    )
    priced = price_usage(
        organization=organization, model="inhouse/finetune", input_tokens=500_000, output_tokens=0, occurred_at=APR
    )
    assert priced.cost_microdollars == 1_000_000


def test_unknown_model_raises_with_suggestions(organization):
    load(rec("openai/gpt-4o"), rec("openai/gpt-4o-mini"), rec("anthropic/claude-opus-4"))
    with pytest.raises(UnknownModelError) as error:
        price_usage(organization=organization, model="openai/gpt-4-o", input_tokens=1, output_tokens=1, occurred_at=APR)
    assert error.value.suggestions[0] == "openai/gpt-4o"
    assert len(error.value.suggestions) <= 3


def test_batch_pricing_returns_errors_in_place_of_results(organization):
    load(rec(), rec("acme/dated", start=MAR))
    results = price_usages(
        organization=organization,
        usages=[
            UsageToPrice("acme/model", APR, 1000, 100),
            UsageToPrice("acme/modle", APR, 1, 1),
            UsageToPrice("acme/dated", JAN, 1, 1),
            UsageToPrice("acme/model", APR, 1, 1, cached_input_tokens=5),
            UsageToPrice("acme/model:free", APR, 1000, 1000),
        ],
    )
    assert results[0].cost_microdollars == 4500
    assert isinstance(results[1], UnknownModelError) and results[1].suggestions[0] == "acme/model"
    assert isinstance(results[2], PriceNotInEffectError)
    assert isinstance(results[3], InvalidUsageError)
    assert results[4].cost_microdollars == 0


def test_batch_pricing_prices_each_call_with_the_price_in_force_at_its_own_moment(organization):
    """A batch looks each (model, moment) up once; calls that share both share the price row, calls
    of the same model at other moments get the price in force then, and tokens are each call's own."""
    load(rec(until=MAR), rec(start=MAR, input_per_mtok=D("1"), output_per_mtok=D("1")))
    override = price_override_create(
        organization=organization,
        slug="acme/model",
        input_per_mtok=D("0.5"),
        output_per_mtok=D("0.5"),
        effective_from=APR + timedelta(days=1),
    )
    later = APR + timedelta(days=2)
    results = price_usages(
        organization=organization,
        usages=[
            UsageToPrice("acme/model", JAN, 1000, 100),
            UsageToPrice("acme/model", APR, 1000, 100),
            UsageToPrice("acme/model", JAN, 2000, 0),
            UsageToPrice("acme/model", APR, 1000, 100, cached_input_tokens=2000),  # invalid, in place
            UsageToPrice("acme/model", later, 1000, 100),
            UsageToPrice("acme/model", APR, 10, 10),
        ],
    )
    assert [getattr(result, "cost_microdollars", None) for result in results] == [4500, 1100, 6000, None, 550, 20]
    assert results[0].price_id == results[2].price_id != results[1].price_id == results[5].price_id
    assert isinstance(results[3], InvalidUsageError)
    assert (results[4].price_id, results[4].override_id) == (None, override.pk)


def test_unpriced_models_are_counted_with_first_and_last_seen(organization):
    unpriced_models_record(organization=organization, sightings=[("x/y", APR), ("x/y", JAN), ("x/z", MAR)])
    unpriced_models_record(organization=organization, sightings=[("x/y", APR + timedelta(days=1))])
    row = UnpricedModel.objects.get(organization=organization, slug="x/y")
    assert (row.event_count, row.first_seen_at, row.last_seen_at) == (3, JAN, APR + timedelta(days=1))
    assert UnpricedModel.objects.get(slug="x/z").event_count == 1


def test_snapshot_follows_catalog_changes(organization):
    load(rec())
    assert (
        price_usage(
            organization=organization, model="acme/model", input_tokens=10**6, output_tokens=0, occurred_at=APR
        ).cost_microdollars
        == 3_000_000
    )
    # an edit outside the loaders (admin, another process) is noticed through the catalog version
    ModelPrice.objects.filter(slug="acme/model").update(input_per_mtok=D("4"))
    assert (
        price_usage(
            organization=organization, model="acme/model", input_tokens=10**6, output_tokens=0, occurred_at=APR
        ).cost_microdollars
        == 4_000_000
    )


def test_every_write_to_the_price_tables_changes_the_catalog_version(organization):
    versions = [catalog_version()]
    load(rec())
    versions.append(catalog_version())
    with connection.cursor() as cursor:  # raw SQL too: the triggers see every writer
        cursor.execute("UPDATE costcalc_modelprice SET display_name = 'x'")
    versions.append(catalog_version())
    price_override_create(organization=organization, slug="acme/model", input_per_mtok=D("1"), output_per_mtok=D("1"))
    versions.append(catalog_version())
    ModelPrice.objects.all().delete()
    versions.append(catalog_version())

    assert len(set(versions)) == len(versions)


def test_a_rolled_back_change_does_not_make_a_stale_snapshot_current(organization):
    load(rec())
    before = catalog_version()
    try:
        with transaction.atomic():
            ModelPrice.objects.filter(slug="acme/model").update(input_per_mtok=D("9"))
            assert catalog_snapshot().price_as_of("acme/model", APR).input_per_mtok == 9  # built at the new version
            raise RuntimeError("roll back")
    except RuntimeError:
        pass

    assert catalog_version() == before
    assert catalog_snapshot().price_as_of("acme/model", APR).input_per_mtok == 3


def test_a_version_read_by_the_caller_saves_the_query(organization, django_assert_num_queries):
    load(rec())
    usages = [UsageToPrice("acme/model", APR, 10**6, 0)]
    version = catalog_version()
    price_usages(organization=organization, usages=usages, catalog_version=version)

    with django_assert_num_queries(0):
        assert price_usages(organization=organization, usages=usages, catalog_version=version)[0].cost_microdollars == (
            3_000_000
        )


def test_every_seed_slug_prices_an_event_on_2026_04_01_after_loading_the_history(organization):
    document = json.loads(shared_file(PRICING_HISTORY).read_text(), parse_float=Decimal)
    sync_model_prices(result=parse_openrouter_history(document))
    when = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
    results = price_usages(
        organization=organization, usages=[UsageToPrice(slug, when, 1000, 1000) for slug in seed_slugs()]
    )
    failures = [
        (slug, result) for slug, result in zip(seed_slugs(), results, strict=True) if isinstance(result, Exception)
    ]
    assert failures == []
    assert len(results) == 381


# --- loaders ------------------------------------------------------------------------------------


def test_loading_twice_changes_nothing():
    records = [rec(), rec("acme/other", input_per_mtok=D("1"))]
    first = load(*records)
    second = load(*records, now=APR + timedelta(days=1))
    assert (first.added, first.changed, first.unchanged) == (2, 0, 0)
    assert (second.added, second.changed, second.unchanged) == (0, 0, 2)
    assert ModelPrice.objects.count() == 2


def test_a_changed_current_price_closes_the_old_row_and_opens_a_new_one():
    load(rec())
    later = APR + timedelta(days=10)
    summary = load(rec(input_per_mtok=D("2.5")), now=later)
    assert (summary.changed, summary.rows_closed, summary.rows_created) == (1, 1, 1)
    assert rows() == [(CATALOG_BEGINNING, later, D("3")), (later, None, D("2.5"))]
    # history is kept: an event before the change still gets the old price
    snapshot = catalog_snapshot()
    assert snapshot.price_as_of("acme/model", APR).input_per_mtok == 3
    assert snapshot.price_as_of("acme/model", later).input_per_mtok == D("2.5")
    assert load(rec(input_per_mtok=D("2.5")), now=later + timedelta(days=1)).unchanged == 1


def test_a_new_dated_period_closes_the_stored_period_at_its_start():
    load(rec(source=SOURCE_GENAI_PRICES), source=SOURCE_GENAI_PRICES)
    summary = load(
        rec(source=SOURCE_GENAI_PRICES, until=MAR),
        rec(source=SOURCE_GENAI_PRICES, start=MAR, input_per_mtok=D("5")),
        source=SOURCE_GENAI_PRICES,
    )
    assert summary.changed == 1
    assert rows(source=SOURCE_GENAI_PRICES) == [(CATALOG_BEGINNING, MAR, D("3")), (MAR, None, D("5"))]


def test_a_source_that_revises_a_past_price_does_not_rewrite_history():
    load(rec(until=MAR), rec(start=MAR, input_per_mtok=D("5")))
    summary = load(rec(until=MAR, input_per_mtok=D("9")), rec(start=MAR, input_per_mtok=D("5")))
    assert summary.skipped == 1 and "kept the stored one" in summary.skipped_reasons[0][1]
    assert rows() == [(CATALOG_BEGINNING, MAR, D("3")), (MAR, None, D("5"))]


def test_parser_skips_are_reported():
    result = SourceResult(SOURCE_OPENROUTER, (rec(),), skipped=())
    assert sync_model_prices(result=result).skipped == 0
    from costcalc.sources import SkippedModel

    skipped = SourceResult(SOURCE_OPENROUTER, (rec(),), skipped=(SkippedModel("openrouter/auto", "variable"),))
    summary = sync_model_prices(result=skipped)
    assert summary.skipped == 1 and summary.skipped_reasons == [("openrouter/auto", "variable")]


def test_history_loading_is_idempotent_and_keeps_dated_periods():
    document = json.loads(shared_file(PRICING_HISTORY).read_text(), parse_float=Decimal)
    result = parse_openrouter_history(document)
    first = sync_model_prices(result=result)
    count = ModelPrice.objects.count()
    second = sync_model_prices(result=result)
    assert first.added == len(result.slugs) and count == len(result.records)
    assert (second.added, second.changed, second.unchanged) == (0, 0, len(result.slugs))
    assert ModelPrice.objects.count() == count
    # deepseek-r1-0528 changed price on 2026-04-13 in the history
    snapshot = catalog_snapshot()
    assert snapshot.price_as_of("deepseek/deepseek-r1-0528", APR).input_per_mtok == D("0.45")
    assert snapshot.price_as_of("deepseek/deepseek-r1-0528", datetime(2026, 4, 13, tzinfo=UTC)).input_per_mtok == D(
        "0.5"
    )


def test_genai_prices_catalog_loads_with_parity_to_the_package(organization):
    from decimal import ROUND_HALF_UP

    from genai_prices import Usage, calc_price

    result = load_genai_prices_bundled()
    summary = sync_model_prices(result=result)
    assert summary.added == len(result.slugs)
    for slug in sorted(result.slugs)[::25]:
        priced = price_usage(
            organization=organization,
            model=slug,
            input_tokens=250_000,
            output_tokens=3_000,
            cached_input_tokens=50_000,
            occurred_at=APR,
        )
        expected = calc_price(
            Usage(input_tokens=250_000, output_tokens=3_000, cache_read_tokens=50_000),
            slug,
            provider_id="openrouter",
            genai_request_timestamp=APR,
        ).total_price
        assert priced.cost_microdollars == int((expected * 1_000_000).to_integral_value(ROUND_HALF_UP)), slug
