from decimal import Decimal

import pytest
from django.utils import timezone

from costcalc.models import ModelPrice, OrganizationPriceOverride
from costcalc.selectors import catalog_snapshot
from costcalc.services import price_usage, unpriced_models_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def prices(db):
    now = timezone.now()
    for slug, source in [("openai/gpt-4o", "openrouter"), ("anthropic/claude-opus-4", "genai-prices")]:
        ModelPrice.objects.create(
            slug=slug, vendor=slug.split("/")[0], source=source, input_per_mtok=1, output_per_mtok=2, effective_from=now
        )


@pytest.mark.parametrize(
    "url",
    [
        "/admin/costcalc/modelprice/",
        "/admin/costcalc/modelprice/?q=gpt",
        "/admin/costcalc/modelprice/?vendor=openai",
        "/admin/costcalc/modelprice/?source__exact=genai-prices",
        "/admin/costcalc/modelprice/add/",
        "/admin/costcalc/organizationpriceoverride/",
        "/admin/costcalc/organizationpriceoverride/add/",
        "/admin/costcalc/unpricedmodel/",
    ],
)
def test_admin_pages_load(admin_client_logged_in, prices, url):
    assert admin_client_logged_in.get(url).status_code == 200


def test_price_search_and_filters_narrow_the_list(admin_client_logged_in, prices):
    by_search = admin_client_logged_in.get("/admin/costcalc/modelprice/?q=claude").content.decode()
    assert "anthropic/claude-opus-4" in by_search and "openai/gpt-4o" not in by_search
    by_source = admin_client_logged_in.get("/admin/costcalc/modelprice/?source__exact=openrouter").content.decode()
    assert "openai/gpt-4o" in by_source and "anthropic/claude-opus-4" not in by_source
    by_vendor = admin_client_logged_in.get("/admin/costcalc/modelprice/?vendor=anthropic").content.decode()
    assert "anthropic/claude-opus-4" in by_vendor and "openai/gpt-4o" not in by_vendor


def test_an_override_added_in_admin_prices_that_organizations_usage(admin_client_logged_in, organization, prices):
    catalog_snapshot()  # a snapshot exists before the edit
    response = admin_client_logged_in.post(
        "/admin/costcalc/organizationpriceoverride/add/",
        {
            "organization": organization.pk,
            "slug": "openai/gpt-4o",
            "note": "contract rate",
            "input_per_mtok": "0.5",
            "output_per_mtok": "0.5",
            "request_fee_usd": "0",
            "tiers": "[]",
            "effective_from_0": "2020-01-01",
            "effective_from_1": "00:00:00",
        },
        follow=True,
    )
    assert response.status_code == 200
    override = OrganizationPriceOverride.objects.get(organization=organization)
    priced = price_usage(
        organization=organization,
        model="openai/gpt-4o",
        input_tokens=1_000_000,
        output_tokens=0,
        occurred_at=timezone.now(),
    )
    assert (priced.override_id, priced.cost_microdollars) == (override.pk, 500_000)
    assert override.input_per_mtok == Decimal("0.5")


def test_unpriced_models_list_shows_slug_count_and_dates(admin_client_logged_in, organization):
    now = timezone.now()
    unpriced_models_record(organization=organization, sightings=[("mystery/model-x", now)] * 3)
    page = admin_client_logged_in.get("/admin/costcalc/unpricedmodel/").content.decode()
    assert "mystery/model-x" in page
    assert ">3<" in page
    assert admin_client_logged_in.get("/admin/costcalc/unpricedmodel/add/").status_code == 403
