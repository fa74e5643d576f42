"""POST /api/v1/usage-events, the Tanso dialect (seed 003)."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import ProtectedError

from costcalc.models import OrganizationPriceOverride
from events.models import Customer, Feature, UsageEvent, VendorResponse
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/usage-events"


def send(client, body: dict, **headers):
    return client.post(URL, body, format="json", **headers)


def event(**extra) -> dict:
    body = {"eventName": "chat", "customerReferenceId": "acct-9"}
    body.update(extra)
    return body


def test_event_is_created_with_201_and_the_stored_values(api_client, organization):
    response = send(api_client, event(eventIdempotencyKey="evt-1", costAmount=0.25, revenueAmount=1, usageUnits=2))

    assert response.status_code == 201
    body = response.json()
    stored = UsageEvent.objects.get()
    customer = Customer.objects.get()
    assert body["id"] == stored.id
    assert body["eventIdempotencyKey"] == "evt-1"
    assert body["customerId"] == str(customer.uuid)
    assert body["customerReferenceId"] == "acct-9"
    assert (body["costAmount"], body["revenueAmount"], body["usageUnits"]) == ("0.25", "1", "2")
    assert (stored.cost_microdollars, stored.revenue_microdollars) == (250_000, 1_000_000)
    assert stored.source == "tanso"


def test_a_repeated_key_is_a_409_with_the_original_id(api_client):
    first = send(api_client, event(eventIdempotencyKey="evt-1")).json()

    response = send(api_client, event(eventIdempotencyKey="evt-1", costAmount=5))

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict"
    assert error["details"] == {"id": first["id"], "eventIdempotencyKey": "evt-1"}
    assert UsageEvent.objects.count() == 1


def test_the_idempotency_key_header_wins(api_client):
    first = send(api_client, event(eventIdempotencyKey="body-key"), HTTP_IDEMPOTENCY_KEY="header-key").json()
    assert first["eventIdempotencyKey"] == "header-key"

    assert send(api_client, event(eventIdempotencyKey="header-key")).status_code == 409
    assert send(api_client, event(eventIdempotencyKey="body-key")).status_code == 201


def test_a_key_is_generated_when_absent(api_client):
    one = send(api_client, event()).json()
    two = send(api_client, event()).json()

    assert one["eventIdempotencyKey"] != two["eventIdempotencyKey"]
    assert UsageEvent.objects.count() == 2


def test_exactly_one_customer_identifier_or_400(api_client):
    response = send(api_client, {"eventName": "chat", "customerReferenceId": "a", "stripeCustomerId": "cus_1"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert not UsageEvent.objects.exists()
    assert send(api_client, {"eventName": "chat"}).status_code == 400


def test_stripe_customer_id_creates_a_linked_customer_once(api_client, organization):
    send(api_client, {"eventName": "chat", "stripeCustomerId": "cus_123"})
    send(api_client, {"eventName": "chat", "stripeCustomerId": "cus_123"})

    customer = Customer.objects.get(organization=organization)
    assert customer.stripe_customer_id == "cus_123"
    assert customer.usage_events.count() == 2


def test_stripe_customer_id_finds_an_existing_linked_customer(api_client, organization):
    customer = CustomerFactory(organization=organization, external_id="acme", stripe_customer_id="cus_9")
    send(api_client, {"eventName": "chat", "stripeCustomerId": "cus_9"})
    assert UsageEvent.objects.get().customer == customer


def test_customer_id_must_be_one_of_ours(api_client, other_client, organization):
    mine = CustomerFactory(organization=organization)
    foreign = CustomerFactory(organization=other_client.organization)

    assert send(api_client, {"eventName": "chat", "customerId": str(mine.uuid)}).status_code == 201
    response = send(api_client, {"eventName": "chat", "customerId": str(foreign.uuid)})

    assert response.status_code == 404
    assert response.json()["error"]["details"]["field"] == "customerId"
    assert UsageEvent.objects.count() == 1
    assert Customer.objects.filter(organization=organization).count() == 1


def test_cost_from_cost_input_through_the_global_catalog(api_client, price_catalog):
    body = send(
        api_client, event(costInput={"model": "gpt-4o", "provider": "openai", "inputTokens": 1000, "outputTokens": 100})
    ).json()

    assert body["costAmount"] == "0.0035"  # 1000 x 2.5 + 100 x 10 = 3500 µ$
    call = VendorResponse.objects.get()
    assert (call.model, call.price_id, call.price_override_id) == (
        "openai/gpt-4o",
        price_catalog["openai/gpt-4o"].id,
        None,
    )


def test_the_organizations_default_cost_config_wins_over_the_catalog(api_client, price_catalog, organization):
    override = OrganizationPriceOverride.objects.create(
        organization=organization,
        slug="openai/gpt-4o",
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
    )
    body = send(
        api_client, event(costInput={"model": "openai/gpt-4o", "inputTokens": 1000, "outputTokens": 100})
    ).json()

    assert body["costAmount"] == "0.0012"
    assert VendorResponse.objects.get().price_override_id == override.id


def test_cost_amount_wins_over_cost_input(api_client, price_catalog):
    body = send(api_client, event(costAmount=0.5, costInput={"model": "openai/gpt-4o", "inputTokens": 1000})).json()

    assert body["costAmount"] == "0.5"
    assert VendorResponse.objects.get().cost_microdollars == 2500  # still recorded per call


def test_unknown_cost_input_model_is_a_400_with_suggestions(api_client, price_catalog):
    response = send(api_client, event(costInput={"model": "openai/gpt-4-o", "inputTokens": 10}))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown_model"
    assert error["details"]["field"] == "costInput.model"
    assert "openai/gpt-4o" in error["details"]["suggestions"]
    assert not UsageEvent.objects.exists()
    assert not Customer.objects.exists()  # a 400 writes nothing, not even the customer it names


def test_unknown_model_with_an_explicit_cost_is_stored(api_client, price_catalog):
    response = send(api_client, event(costAmount=0.01, costInput={"model": "acme/x", "inputTokens": 10}))

    assert response.status_code == 201
    assert VendorResponse.objects.get().cost_microdollars is None
    assert UsageEvent.objects.get().unpriced is False


def test_feature_cost_and_price_per_unit_are_the_fallback(api_client, organization):
    Feature.objects.create(
        organization=organization, key="images", cost_per_unit_usd=Decimal("0.004"), price_per_unit_usd=Decimal("0.02")
    )
    body = send(api_client, event(featureKey="images", usageUnits=3)).json()

    assert (body["costAmount"], body["revenueAmount"]) == ("0.012", "0.06")
    stored = UsageEvent.objects.get()
    assert (stored.feature_key, stored.usage_units, stored.cost_microdollars) == ("images", Decimal(3), 12_000)


def test_feature_by_id_and_explicit_amounts_win(api_client, organization):
    feature = Feature.objects.create(
        organization=organization, key="images", cost_per_unit_usd=Decimal("1"), price_per_unit_usd=Decimal("2")
    )
    body = send(api_client, event(featureId=str(feature.uuid), usageUnits=1, revenueAmount=5)).json()
    assert (body["costAmount"], body["revenueAmount"]) == ("1", "5")

    missing = send(api_client, event(featureId=str(uuid.uuid4()), usageUnits=1, customerReferenceId="acct-new"))
    assert missing.status_code == 404
    assert missing.json()["error"]["details"]["field"] == "featureId"
    assert not Customer.objects.filter(external_id="acct-new").exists()


@pytest.mark.parametrize("feature_key", [None, "images", "video"])
def test_feature_id_supersedes_feature_key_which_becomes_the_resolved_features_key(
    api_client, organization, feature_key
):
    # Seed 003: featureId wins over featureKey; the event belongs to that feature, so its key is stored and
    # answered whatever featureKey said (absent, the same, or another feature's).
    images = Feature.objects.create(organization=organization, key="images", cost_per_unit_usd=Decimal("0.5"))
    Feature.objects.create(organization=organization, key="video", cost_per_unit_usd=Decimal("9"))
    sent = event(featureId=str(images.uuid), usageUnits=2)
    if feature_key:
        sent["featureKey"] = feature_key
    body = send(api_client, sent).json()

    assert (body["featureKey"], body["costAmount"]) == ("images", "1")
    assert UsageEvent.objects.get().feature_key == "images"


def test_another_tenants_feature_is_not_used(api_client, other_client):
    Feature.objects.create(organization=other_client.organization, key="images", cost_per_unit_usd=Decimal("1"))
    body = send(api_client, event(featureKey="images", usageUnits=3)).json()
    assert body["costAmount"] == "0"


def test_malformed_json_and_413(api_client, settings):
    assert api_client.post(URL, data=b"{", content_type="application/json").status_code == 400
    settings.API_MAX_BODY_BYTES = 1024
    body = orjson.dumps(event(meta={"blob": "x" * 2000}))
    assert api_client.post(URL, data=body, content_type="application/json").status_code == 413


def test_amounts_beyond_a_bigint_are_a_400_not_a_crash(api_client, organization):
    Feature.objects.create(organization=organization, key="huge", cost_per_unit_usd=Decimal("999999999999"))
    response = send(api_client, event(featureKey="huge", usageUnits=10**17))

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "usageUnits"
    assert not UsageEvent.objects.exists()


def test_an_override_that_priced_a_call_cannot_be_deleted(api_client, price_catalog, organization):
    override = OrganizationPriceOverride.objects.create(
        organization=organization,
        slug="openai/gpt-4o",
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("2"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
    )
    send(api_client, event(costInput={"model": "openai/gpt-4o", "inputTokens": 1000, "outputTokens": 100}))

    with pytest.raises(ProtectedError):  # Django's check, through the partial index
        override.delete()
    with pytest.raises(IntegrityError), transaction.atomic():  # and the database's own foreign key
        OrganizationPriceOverride.objects.filter(pk=override.pk)._raw_delete(OrganizationPriceOverride.objects.db)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_an_empty_cost_input_is_refused_for_its_missing_model(api_client, price_catalog):
    response = send(api_client, event(costInput={}))

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "costInput.model"
    assert not UsageEvent.objects.exists()
