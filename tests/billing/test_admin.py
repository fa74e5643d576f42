"""Django admin: operators' validation (overlaps, tiers, composites, group keys) and invoice actions."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from billing import services
from billing.models import BillableMetric, Contract, Invoice, Product, Rate, RateCard, RateTier
from tests.billing.conftest import utc
from tests.factories import CustomerFactory


def management(prefix, total, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def when(prefix, name, value):
    if value is None:
        return {f"{prefix}{name}_0": "", f"{prefix}{name}_1": ""}
    return {f"{prefix}{name}_0": value.strftime("%Y-%m-%d"), f"{prefix}{name}_1": value.strftime("%H:%M:%S")}


def rate_row(index, product, start, end=None, price="50", rate_id=None):
    prefix = f"rates-{index}-"
    return {
        f"{prefix}product": str(product.pk),
        f"{prefix}entitled": "on",
        f"{prefix}rate_type": "FLAT",
        f"{prefix}price": price,
        f"{prefix}quantity": "1",
        **when(prefix, "starting_at", start),
        **when(prefix, "ending_before", end),
        **({f"{prefix}id": str(rate_id)} if rate_id else {}),
        f"{prefix}rate_card": "",
    }


def errors_of(response):
    forms = [response.context["adminform"].form] + [
        f for fs in response.context["inline_admin_formsets"] for f in fs.formset.forms
    ]
    text = str([form.errors for form in forms]) + str(
        [fs.formset.non_form_errors() for fs in response.context["inline_admin_formsets"]]
    )
    return text


def test_a_rate_card_with_overlapping_rates_for_one_product_is_rejected(admin_client, organization, seed_pricing):
    product = seed_pricing["product"]
    data = {
        "organization": str(organization.pk),
        "name": "Overlapping",
        "description": "",
        **management("rates", 2),
        **rate_row(0, product, utc(2026, 1, 1), utc(2026, 3, 1)),
        **rate_row(1, product, utc(2026, 2, 1), None),
    }

    response = admin_client.post(reverse("admin:billing_ratecard_add"), data)

    assert response.status_code == 200
    assert "Overlaps another row" in errors_of(response)
    assert not RateCard.objects.filter(name="Overlapping").exists()


def test_consecutive_rates_save_and_a_rate_can_be_shortened_while_its_successor_is_added(
    admin_client, organization, seed_pricing
):
    product = seed_pricing["product"]
    data = {
        "organization": str(organization.pk),
        "name": "Consecutive",
        "description": "",
        **management("rates", 1),
        **rate_row(0, product, utc(2026, 1, 1), None),
    }
    response = admin_client.post(reverse("admin:billing_ratecard_add"), data)
    assert response.status_code == 302, errors_of(response)
    card = RateCard.objects.get(name="Consecutive")
    existing = card.rates.get()

    data = {
        "organization": str(organization.pk),
        "name": "Consecutive",
        "description": "",
        **management("rates", 2, initial=1),
        **rate_row(0, product, utc(2026, 1, 1), utc(2026, 6, 1), rate_id=existing.pk),
        **rate_row(1, product, utc(2026, 6, 1), None, price="40"),
    }
    response = admin_client.post(reverse("admin:billing_ratecard_change", args=[card.pk]), data)

    assert response.status_code == 302, errors_of(response)
    assert list(card.rates.order_by("starting_at").values_list("price", "ending_before")) == [
        (Decimal(50), utc(2026, 6, 1)),
        (Decimal(40), None),
    ]


def test_a_rate_starting_off_the_hour_is_rejected(admin_client, organization, seed_pricing):
    data = {
        "organization": str(organization.pk),
        "name": "Odd",
        "description": "",
        **management("rates", 1),
        **rate_row(0, seed_pricing["product"], utc(2026, 1, 1, 10, 30)),
    }

    response = admin_client.post(reverse("admin:billing_ratecard_add"), data)

    assert "whole hour" in errors_of(response)


def tier_data(rate, tiers, rate_type="TIERED"):
    data = {
        "rate_card": str(rate.rate_card_id),
        "product": str(rate.product_id),
        "entitled": "on",
        "rate_type": rate_type,
        "price": "",
        "quantity": "1",
        **when("", "starting_at", rate.starting_at),
        **when("", "ending_before", None),
        **management("tiers", len(tiers)),
    }
    for index, (position, size, price) in enumerate(tiers):
        data.update(
            {
                f"tiers-{index}-position": str(position),
                f"tiers-{index}-size": size,
                f"tiers-{index}-price": price,
                f"tiers-{index}-rate": str(rate.pk),
            }
        )
    return data


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ([(1, "", "5"), (2, "", "3")], "positive size"),
        ([(1, "1000", "5"), (2, "5000", "3")], "must not have a size"),
        ([], "at least one tier"),
        ([(1, "1000", "5"), (1, "", "3")], "duplicate data for position"),
    ],
)
def test_tiers_must_be_ordered_with_only_the_last_unbounded(admin_client, seed_pricing, tiers, message):
    rate = seed_pricing["rate"]

    response = admin_client.post(reverse("admin:billing_rate_change", args=[rate.pk]), tier_data(rate, tiers))

    assert response.status_code == 200
    assert message in errors_of(response)
    assert Rate.objects.get(pk=rate.pk).rate_type == "FLAT"


def test_valid_tiers_turn_a_rate_tiered(admin_client, seed_pricing):
    rate = seed_pricing["rate"]

    response = admin_client.post(
        reverse("admin:billing_rate_change", args=[rate.pk]), tier_data(rate, [(2, "", "3"), (1, "1000", "5")])
    )

    assert response.status_code == 302, errors_of(response)
    assert list(RateTier.objects.filter(rate=rate).values_list("position", "size", "price")) == [
        (1, Decimal(1000), Decimal(5)),
        (2, None, Decimal(3)),
    ]


def test_the_rate_card_page_refuses_a_tiered_rate_without_tiers(admin_client, organization, seed_pricing):
    rate, card = seed_pricing["rate"], seed_pricing["rate_card"]
    url = reverse("admin:billing_ratecard_change", args=[card.pk])

    def card_data(row):
        row = {**row, "rates-0-rate_type": "TIERED", "rates-0-price": "", "rates-0-rate_card": str(card.pk)}
        return {"organization": str(organization.pk), "name": card.name, "description": "", **row}

    switched = admin_client.post(
        url, {**management("rates", 1, 1), **card_data(rate_row(0, rate.product, rate.starting_at, rate_id=rate.pk))}
    )
    rate.refresh_from_db()
    assert switched.status_code == 200 and "needs its tiers" in errors_of(switched)
    assert rate.rate_type == "FLAT"  # a TIERED rate without tiers would make every draft on the card fail to rate

    other = services.product_create(organization=organization, name="Other", billable_metric=seed_pricing["metric"])
    added = admin_client.post(
        url,
        {
            "organization": str(organization.pk), "name": card.name, "description": "",
            **management("rates", 2, 1),
            **rate_row(0, rate.product, rate.starting_at, rate_id=rate.pk),
            "rates-0-rate_card": str(card.pk),
            **{k.replace("rates-0-", "rates-1-"): v for k, v in card_data(rate_row(0, other, utc(2026, 1, 1))).items()
               if k.startswith("rates-0-")},
        },
    )
    assert added.status_code == 200 and "needs its tiers" in errors_of(added)
    assert not Rate.objects.filter(product=other).exists()

    tiered = admin_client.post(
        reverse("admin:billing_rate_change", args=[rate.pk]), tier_data(rate, [(1, "1000", "5"), (2, "", "3")])
    )
    assert tiered.status_code == 302
    kept = admin_client.post(
        url, {**management("rates", 1, 1), **card_data(rate_row(0, rate.product, rate.starting_at, rate_id=rate.pk))}
    )
    assert kept.status_code == 302, errors_of(kept)  # a TIERED rate that has its tiers saves from the card page


def product_data(organization, **fields):
    return {
        "organization": str(organization.pk),
        "name": "P",
        "type": "usage",
        "billable_metric": "",
        "presentation_group_key": "",
        "conversion_factor": "",
        "conversion_operation": "",
        "conversion_name": "",
        "external_id": "",
        "stripe_product_id": "",
        **fields,
    }


def test_product_validation_in_admin(admin_client, organization, seed_pricing):
    metric = seed_pricing["metric"]
    url = reverse("admin:billing_product_add")

    unknown_key = admin_client.post(
        url, product_data(organization, billable_metric=str(metric.pk), presentation_group_key="region")
    )
    no_metric = admin_client.post(url, product_data(organization))
    half_conversion = admin_client.post(
        url, product_data(organization, billable_metric=str(metric.pk), conversion_factor="1000")
    )
    composite = services.product_create(
        organization=organization, name="Support", type="composite", composite_products=[seed_pricing["product"]]
    )
    composite_of_composite = admin_client.post(
        url, product_data(organization, type="composite", composite_products=[str(composite.pk)])
    )

    assert "region is not a group key" in errors_of(unknown_key)
    assert "needs a billable metric" in errors_of(no_metric)
    assert "both a factor and an operation" in errors_of(half_conversion)
    assert "composites reference usage products" in errors_of(composite_of_composite)
    assert Product.objects.filter(organization=organization).count() == 2


def contract_data(organization, customer, card, start, overrides=()):
    data = {
        "organization": str(organization.pk),
        "customer": str(customer.pk),
        "rate_card": str(card.pk),
        "name": "",
        "usage_statement_day": "FIRST_OF_MONTH",
        **when("", "starting_at", start),
        **when("", "ending_before", None),
        **management("overrides", len(overrides)),
    }
    for index, (product, o_start, o_end) in enumerate(overrides):
        prefix = f"overrides-{index}-"
        data.update(
            {
                f"{prefix}product": str(product.pk),
                **when(prefix, "starting_at", o_start),
                **when(prefix, "ending_before", o_end),
                f"{prefix}entitled": "unknown",
                f"{prefix}type": "OVERWRITE",
                f"{prefix}price": "10",
                f"{prefix}multiplier": "",
            }
        )
    return data


def test_contract_overrides_must_not_overlap_and_contracts_must_not_overlap(
    admin_client, organization, customer, seed_pricing
):
    card, product = seed_pricing["rate_card"], seed_pricing["product"]
    url = reverse("admin:billing_contract_add")

    overlapping_overrides = admin_client.post(
        url,
        contract_data(
            organization,
            customer,
            card,
            utc(2026, 1, 1),
            [(product, utc(2026, 1, 1), utc(2026, 2, 1)), (product, utc(2026, 1, 15), None)],
        ),
    )
    assert "Overlaps another row" in errors_of(overlapping_overrides)

    ok = admin_client.post(
        url, contract_data(organization, customer, card, utc(2026, 1, 1), [(product, utc(2026, 1, 1), None)])
    )
    assert ok.status_code == 302, errors_of(ok)
    contract = Contract.objects.get(customer=customer)
    assert contract.overrides.get().price == Decimal(10)
    assert Invoice.objects.filter(contract=contract, status="draft").exists()  # drafts opened on save

    second = admin_client.post(url, contract_data(organization, customer, card, utc(2026, 5, 1)))
    assert "already has a contract" in errors_of(second)


def test_a_contract_cannot_use_another_organizations_rate_card(admin_client, organization, customer):
    other = CustomerFactory()
    foreign_card = services.rate_card_create(organization=other.organization, name="Theirs")

    response = admin_client.post(
        reverse("admin:billing_contract_add"), contract_data(organization, customer, foreign_card, utc(2026, 1, 1))
    )

    assert "rate card belongs to another organization" in errors_of(response)


def test_invoice_actions_create_links_and_refuse_early_finalization(admin_client, organization, customer, seed_pricing):
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    services.contract_create(
        organization=organization, customer=customer, rate_card=seed_pricing["rate_card"], starting_at=start
    )
    invoice = Invoice.objects.get(customer=customer)
    url = reverse("admin:billing_invoice_changelist")

    linked = admin_client.post(
        url, {"action": "create_customer_link", "_selected_action": [str(invoice.pk)]}, follow=True
    )
    early = admin_client.post(url, {"action": "finalize", "_selected_action": [str(invoice.pk)]}, follow=True)

    assert "/invoices/view/" in linked.content.decode()
    assert "has not ended" in early.content.decode()
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"


@pytest.mark.parametrize("model", ["billablemetric", "product", "ratecard", "rate", "contract", "invoice"])
def test_changelists_with_search_and_filters_render(admin_client, seed_pricing, customer, organization, model):
    services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1),
    )
    url = reverse(f"admin:billing_{model}_changelist")

    assert admin_client.get(url).status_code == 200
    assert admin_client.get(url, {"q": "lang"}).status_code == 200


def test_change_pages_with_their_inlines_render(admin_client, organization, customer, seed_pricing):
    contract = services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0),
    )
    services.contract_override_create(
        contract=contract, product=seed_pricing["product"], multiplier=Decimal("0.9"), type="MULTIPLIER"
    )
    invoice = Invoice.objects.get(contract=contract)
    from billing import invoicing

    invoicing.invoice_recompute(invoice=invoice)
    pages = [
        ("billablemetric", seed_pricing["metric"].pk),
        ("product", seed_pricing["product"].pk),
        ("ratecard", seed_pricing["rate_card"].pk),
        ("rate", seed_pricing["rate"].pk),
        ("contract", contract.pk),
        ("invoice", invoice.pk),
    ]
    for model, pk in pages:
        response = admin_client.get(reverse(f"admin:billing_{model}_change", args=[pk]))
        assert response.status_code == 200, model
    assert (
        "Language Model 4 Tokens"
        in admin_client.get(reverse("admin:billing_invoice_change", args=[invoice.pk])).content.decode()
    )


def test_a_metric_whose_filters_hold_nul_characters_is_a_form_error(admin_client, organization):
    data = {
        "organization": str(organization.pk),
        "name": "nul",
        "aggregation_type": "COUNT",
        "aggregation_key": "",
        "event_type_filter": '{"in_values": ["chat\\u0000"]}',
        "property_filters": '[{"name": "region", "in_values": ["eu\\u0000"]}]',
        "group_keys": "",
    }

    response = admin_client.post(reverse("admin:billing_billablemetric_add"), data)

    assert response.status_code == 200
    assert "NUL" in str(response.context["adminform"].form.errors)
    assert not BillableMetric.objects.filter(name="nul").exists()


def test_the_add_form_refuses_a_backdated_contract_but_old_contracts_stay_editable(
    admin_client, organization, customer, seed_pricing, settings
):
    card = seed_pricing["rate_card"]
    settings.BILLING_MAX_BACKDATE_MONTHS = 24
    ancient = {
        **contract_data(organization, customer, card, utc(2026, 1, 1)),
        "starting_at_0": "0001-01-01",
        "starting_at_1": "00:00:00",
    }

    refused = admin_client.post(reverse("admin:billing_contract_add"), ancient)

    assert refused.status_code == 200
    assert "at most 24 months before now" in errors_of(refused)
    assert not Contract.objects.exists() and not Invoice.objects.exists()

    settings.BILLING_MAX_BACKDATE_MONTHS = 1200  # created back when the limit allowed it
    contract = services.contract_create(
        organization=organization, customer=customer, rate_card=card,
        starting_at=utc(2022, 1, 1), ending_before=utc(2022, 3, 1),
    )
    settings.BILLING_MAX_BACKDATE_MONTHS = 24
    change_url = reverse("admin:billing_contract_change", args=[contract.pk])
    edit = {
        **contract_data(organization, customer, card, utc(2022, 1, 1)),
        "name": "Legacy",
        **when("", "ending_before", utc(2022, 4, 1)),
    }

    edited = admin_client.post(change_url, edit)
    moved_later = admin_client.post(change_url, {**edit, **when("", "starting_at", utc(2022, 2, 1))})
    moved_earlier = admin_client.post(change_url, {**edit, **when("", "starting_at", utc(2021, 1, 1))})

    assert edited.status_code == 302, errors_of(edited)
    assert moved_later.status_code == 302, errors_of(moved_later)
    assert "at most 24 months before now" in errors_of(moved_earlier)  # would open the same old drafts
    contract.refresh_from_db()
    assert (contract.name, contract.starting_at, contract.ending_before) == ("Legacy", utc(2022, 2, 1), utc(2022, 4, 1))
