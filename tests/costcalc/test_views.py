"""GET /api/v1/model-prices: the priced catalog with current prices, vendor filter, ETag, tenant scoping."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from costcalc.services import price_override_create, sync_model_prices
from costcalc.sources import PriceRecord, PriceTier, SourceResult

pytestmark = pytest.mark.django_db

D = Decimal
URL = "/api/v1/model-prices"


def rec(slug, source="openrouter", start=None, until=None, **prices):
    fields = {"input_per_mtok": D("3"), "output_per_mtok": D("15"), **prices}
    return PriceRecord(
        slug=slug,
        vendor=slug.split("/")[0],
        display_name=slug.title(),
        source=source,
        effective_from=start,
        effective_until=until,
        **fields,
    )


@pytest.fixture
def catalog(db):
    now = timezone.now()
    sync_model_prices(
        result=SourceResult(
            "openrouter",
            (
                rec("openai/gpt-4o", input_per_mtok=D("2.5"), output_per_mtok=D("10"), cache_read_per_mtok=D("1.25")),
                rec("anthropic/claude-opus-4", tiers=(PriceTier(200000, D("6"), D("22.5")),)),
                rec("anthropic/claude-3-haiku"),
                rec("acme/retired", until=now - timedelta(days=1)),
                rec("acme/upcoming", start=now + timedelta(days=30)),
            ),
        )
    )


def test_lists_every_priced_slug_with_vendor_and_current_prices_in_slug_order(api_client, catalog):
    response = api_client.get(URL)
    assert response.status_code == 200
    data = response.json()["data"]
    assert [item["slug"] for item in data] == ["anthropic/claude-3-haiku", "anthropic/claude-opus-4", "openai/gpt-4o"]
    gpt = data[2]
    assert gpt["vendor"] == "openai"
    assert (gpt["input_per_mtok"], gpt["output_per_mtok"], gpt["cache_read_per_mtok"]) == ("2.5", "10", "1.25")
    assert gpt["cache_write_per_mtok"] is None and gpt["reasoning_per_mtok"] is None
    assert gpt["source"] == "openrouter" and gpt["effective_from"] is None
    assert data[1]["tiers"][0]["above_input_tokens"] == 200000
    assert data[1]["tiers"][0]["input_per_mtok"] == "6"


def test_vendor_filter(api_client, catalog):
    data = api_client.get(URL, {"vendor": "Anthropic"}).json()["data"]
    assert {item["vendor"] for item in data} == {"anthropic"} and len(data) == 2
    assert api_client.get(URL, {"vendor": "nobody"}).json() == {"data": []}


def test_etag_lets_clients_poll_cheaply_and_changes_with_prices(api_client, catalog):
    first = api_client.get(URL)
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    unchanged = api_client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert unchanged.status_code == 304 and unchanged.content == b""
    assert unchanged["ETag"] == etag
    assert api_client.get(URL, HTTP_IF_NONE_MATCH='"stale"').status_code == 200
    assert api_client.get(URL, {"vendor": "openai"})["ETag"] != etag

    later = timezone.now() + timedelta(seconds=1)
    sync_model_prices(
        result=SourceResult("openrouter", (rec("openai/gpt-4o", input_per_mtok=D("2")),)),
        now=later,
    )
    changed = api_client.get(URL, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_an_organizations_overrides_are_shown_only_to_it(api_client, organization, catalog, member_client):
    from tests.factories import OrganizationFactory

    price_override_create(
        organization=organization,
        slug="openai/gpt-4o",
        input_per_mtok=D("1"),
        output_per_mtok=D("4"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    mine = {item["slug"]: item for item in api_client.get(URL).json()["data"]}
    assert (mine["openai/gpt-4o"]["input_per_mtok"], mine["openai/gpt-4o"]["source"]) == ("1", "override")

    other_client = member_client(org=OrganizationFactory(name="Other"))
    theirs = {item["slug"]: item for item in other_client.get(URL).json()["data"]}
    assert (theirs["openai/gpt-4o"]["input_per_mtok"], theirs["openai/gpt-4o"]["source"]) == ("2.5", "openrouter")


def test_needs_authentication(anonymous_client, catalog):
    response = anonymous_client.get(URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_required"


def test_a_revoked_or_bogus_key_is_refused(catalog):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer tl_live_not-a-key")
    assert client.get(URL).status_code == 401


# --- GET /api/v1/models: MarginDash's public shape (its SDK's cost calculator) -------------------

MARGINDASH_URL = "/api/v1/models"


def _margindash_prices(response) -> dict[str, dict]:
    assert response.status_code == 200
    assert set(response.json()) == {"models"}
    return {item["slug"]: item for item in response.json()["models"]}


def test_margindash_models_answer_the_global_catalog_without_a_key(anonymous_client, organization, catalog):
    price_override_create(
        organization=organization,
        slug="openai/gpt-4o",
        input_per_mtok=D("1"),
        output_per_mtok=D("4"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    response = anonymous_client.get(MARGINDASH_URL)
    models = _margindash_prices(response)
    assert list(models) == ["anthropic/claude-3-haiku", "anthropic/claude-opus-4", "openai/gpt-4o"]
    assert models["openai/gpt-4o"] == {
        "slug": "openai/gpt-4o",
        "vendor": "openai",
        "pricing": {"input_per_1m_usd": 2.5, "output_per_1m_usd": 10},
    }  # nobody's override leaks into the public list


def test_margindash_models_apply_the_callers_overrides_with_a_key(api_client, organization, catalog):
    price_override_create(
        organization=organization,
        slug="openai/gpt-4o",
        input_per_mtok=D("1.125"),
        output_per_mtok=D("4"),
        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
    )
    models = _margindash_prices(api_client.get(MARGINDASH_URL))
    assert models["openai/gpt-4o"]["pricing"] == {"input_per_1m_usd": 1.125, "output_per_1m_usd": 4}


def test_margindash_prices_are_exact_json_numbers_written_from_the_decimal(anonymous_client, db):
    # 0.00000000000000000001 has no exact float; the number text is the Decimal's own, never a float's repr.
    sync_model_prices(
        result=SourceResult(
            "openrouter",
            (rec("acme/tiny", input_per_mtok=D("0.00000000000000000001"), output_per_mtok=D("1234567.89012345")),),
        )
    )
    body = anonymous_client.get(MARGINDASH_URL).content
    assert b'"pricing":{"input_per_1m_usd":0.00000000000000000001,"output_per_1m_usd":1234567.89012345}' in body


def test_margindash_models_filter_by_vendor_and_answer_304_when_unchanged(anonymous_client, catalog):
    first = anonymous_client.get(MARGINDASH_URL, {"vendor": "anthropic"})
    assert set(_margindash_prices(first)) == {"anthropic/claude-3-haiku", "anthropic/claude-opus-4"}
    again = anonymous_client.get(MARGINDASH_URL, {"vendor": "anthropic"}, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304


def test_margindash_models_refuse_a_bogus_key_instead_of_answering_anonymously(catalog):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer tl_live_not-a-key")
    response = client.get(MARGINDASH_URL)
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_required"
