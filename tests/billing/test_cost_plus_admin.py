"""COST_PLUS rates in admin: the Rates page takes the markup terms and refuses what the API refuses."""

from datetime import UTC, datetime

from django.urls import reverse

from billing import services
from billing.models import Rate
from tests.billing.test_admin import errors_of, management, when


def cost_plus_form(rate_card, product, **terms):
    data = {
        "rate_card": str(rate_card.pk),
        "product": str(product.pk),
        "entitled": "on",
        "rate_type": "COST_PLUS",
        "price": "",
        "quantity": "1",
        "markup": "0.3",
        "model_markups": "{}",
        "minimum_cents": "",
        "included_cents": "",
        "included_tokens": "",
        **when("", "starting_at", datetime(2026, 1, 1, tzinfo=UTC)),
        **when("", "ending_before", None),
        **management("tiers", 0),
    }
    data.update(terms)
    return data


def cost_product(organization):
    metric = services.billable_metric_create(
        organization=organization,
        name="call cost",
        aggregation_type="SUM",
        aggregation_key="cost_microdollars",
        group_keys=["model"],
    )
    return services.product_create(
        organization=organization, name="Model calls", billable_metric=metric, presentation_group_key=["model"]
    )


def test_a_cost_plus_rate_is_added_on_the_rates_page(admin_client, organization):
    card = services.rate_card_create(organization=organization, name="Cost plus")
    product = cost_product(organization)

    response = admin_client.post(
        reverse("admin:billing_rate_add"),
        cost_plus_form(card, product, model_markups='{"openai/gpt-4o": "0.5"}', included_tokens="100000"),
    )

    assert response.status_code == 302, errors_of(response)
    rate = Rate.objects.get()
    assert (rate.rate_type, rate.markup, rate.model_markups, rate.included_tokens) == (
        "COST_PLUS",
        rate.markup.__class__("0.3"),
        {"openai/gpt-4o": "0.5"},
        100000,
    )


def test_the_rates_page_refuses_bad_cost_plus_terms(admin_client, organization, seed_pricing):
    card = seed_pricing["rate_card"]

    wrong_product = admin_client.post(reverse("admin:billing_rate_add"), cost_plus_form(card, seed_pricing["product"]))
    no_markup = admin_client.post(
        reverse("admin:billing_rate_add"), cost_plus_form(card, cost_product(organization), markup="")
    )

    assert wrong_product.status_code == no_markup.status_code == 200
    assert "must SUM cost_microdollars" in errors_of(wrong_product)
    assert "needs a markup" in errors_of(no_markup)
    assert Rate.objects.count() == 1  # seed_pricing's own


def test_changing_a_product_in_admin_recomputes_the_drafts(
    admin_client, organization, customer, seed_pricing, monkeypatch, django_capture_on_commit_callbacks
):
    from billing import invoicing
    from tests.billing.test_admin import product_data

    scheduled = []
    monkeypatch.setattr(invoicing, "schedule_drafts_recompute", scheduled.extend)
    services.contract_create(  # opens this month's draft
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=datetime.now(UTC).replace(minute=0, second=0, microsecond=0),
    )
    product = seed_pricing["product"]

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:billing_product_change", args=[product.pk]),
            product_data(
                organization,
                name=product.name,
                billable_metric=str(seed_pricing["metric"].pk),
                presentation_group_key="user_id",
                conversion_factor="1000000",
                conversion_operation="DIVIDE",
            ),
        )

    assert response.status_code == 302, errors_of(response)
    assert customer.pk in scheduled
