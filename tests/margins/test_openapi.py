"""The OpenAPI schema documents every margins answer with the fields the endpoint really returns."""

import pytest
from django.utils import timezone

from margins import services
from margins.models import CustomerMapping
from tests.factories import CustomerFactory
from tests.margins.conftest import STRIPE_TEST_KEY, record_usage

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from drf_spectacular.generators import SchemaGenerator

    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def resolve(schema, node):
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def assert_documents(schema, node, value, where="body"):
    """``value`` (a real answer) has exactly the documented properties, recursively (lists: every item)."""
    node = resolve(schema, node)
    if "oneOf" in node:
        errors = []
        for option in node["oneOf"]:
            try:
                assert_documents(schema, option, value, where)
                return
            except AssertionError as exc:
                errors.append(str(exc))
        raise AssertionError(f"{where} matches no documented shape: {errors}")
    if node.get("type") == "array":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            assert_documents(schema, node["items"], item, f"{where}[{index}]")
        return
    if node.get("type") == "object" and "properties" not in node:
        # Only maps with typed values (currency → count, id → name) and the error's free-form details.
        assert node.get("additionalProperties") or where.endswith(".details"), f"{where} is undocumented: {node}"
        assert isinstance(value, dict), where
        return
    if node.get("type") == "object":
        assert isinstance(value, dict), where
        documented = set(node["properties"])
        required = set(node.get("required", []))
        assert required <= set(value) <= documented, (where, sorted(value), sorted(documented))
        for key, item in value.items():
            if item is not None:
                assert_documents(schema, node["properties"][key], item, f"{where}.{key}")


def response_schema(schema, path, method, status, media="application/json"):
    return schema["paths"][path][method]["responses"][str(status)]["content"][media]["schema"]


def test_connect_disconnect_and_sync_shapes(schema, member_client, organization, localstripe, stripe_account):
    admin = member_client(role="admin")
    connected = admin.post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")
    synced = admin.post("/api/stripe/revenue-sync")
    conflict = admin.post("/api/stripe/connect", {"stripeKey": STRIPE_TEST_KEY}, format="json")
    disconnected = admin.delete("/api/stripe/disconnect")

    assert_documents(schema, response_schema(schema, "/api/stripe/connect", "post", 201), connected.json())
    assert_documents(schema, response_schema(schema, "/api/stripe/revenue-sync", "post", 200), synced.json())
    assert_documents(schema, response_schema(schema, "/api/stripe/connect", "post", 409), conflict.json())
    assert_documents(
        schema, response_schema(schema, "/api/stripe/disconnect", "delete", 200), disconnected.json()
    )
    assert set(schema["paths"]["/api/stripe/revenue-sync"]["post"]["responses"]) >= {"200", "401", "403", "502"}


def test_cron_sync_shape(schema, anonymous_client, settings):
    settings.CRON_SECRET = "cron-secret-value"

    response = anonymous_client.get("/api/stripe/revenue-sync", HTTP_AUTHORIZATION="Bearer cron-secret-value")

    assert_documents(schema, response_schema(schema, "/api/stripe/revenue-sync", "get", 200), response.json())
    enveloped = resolve(schema, response_schema(schema, "/api/stripe/revenue-sync", "post", 200))
    options = resolve(schema, enveloped["properties"]["data"])["oneOf"]
    assert {frozenset(resolve(schema, option)["properties"]) for option in options} == {
        frozenset({"synced", "errors"}),
        frozenset({"orgId", "customersProcessed", "periodsUpdated", "autoMatchesCreated", "invoicesFetched",
                   "invoicesSkipped", "skippedCurrencies", "durationMs"}),
    }


def test_margins_mappings_unmatched_and_settings_shapes(schema, member_client, organization):
    acme = CustomerFactory(organization=organization, external_id="acme")
    CustomerFactory(organization=organization, external_id="lonely")
    record_usage(acme, when=timezone.now(), cost=3_000_000, revenue=10_000_000, models=[("gpt-4o", 3_000_000)])
    record_usage(
        CustomerFactory(organization=organization, external_id="costly"), when=timezone.now(), cost=1_000_000
    )
    mapping, _ = services.customer_mapping_upsert(
        organization=organization, stripe_customer_id="cus_a", tag_value="acme"
    )
    CustomerMapping.objects.create(
        organization=organization, stripe_customer_id="cus_p", tag_value="lonely", match_type="auto",
        status="pending", reason="similarity", confidence="0.7",
    )
    client = member_client()
    admin = member_client(role="admin")
    answers = {
        ("/api/margins", "get", 200): client.get("/api/margins"),
        ("/api/margins/{customer}", "get", 200): client.get("/api/margins/acme"),
        ("/api/margins/{customer}", "get", 404): client.get("/api/margins/nobody"),
        ("/api/margins/unmatched", "get", 200): client.get("/api/margins/unmatched"),
        ("/api/customer-mappings", "get", 200): client.get("/api/customer-mappings"),
        ("/api/customer-mappings", "post", 201): client.post(
            "/api/customer-mappings", {"stripeCustomerId": "cus_b", "tagValue": "b"}, format="json"
        ),
        ("/api/customer-mappings", "post", 400): client.post("/api/customer-mappings", {}, format="json"),
        ("/api/customer-mappings/{id}/approve", "post", 200): client.post(
            f"/api/customer-mappings/{CustomerMapping.objects.get(stripe_customer_id='cus_p').pk}/approve"
        ),
        ("/api/customer-mappings", "delete", 200): client.delete(f"/api/customer-mappings?id={mapping.pk}"),
        ("/api/margin-settings", "get", 200): client.get("/api/margin-settings"),
        ("/api/margin-settings", "put", 200): admin.put("/api/margin-settings", {"targetMarginPercent": 40},
                                                        format="json"),
        ("/api/webhook-endpoints", "post", 201): admin.post(
            "/api/webhook-endpoints", {"url": "https://hooks.example.com/x"}, format="json"
        ),
        ("/api/webhook-endpoints", "get", 200): admin.get("/api/webhook-endpoints"),
        ("/api/webhook-endpoints", "get", 403): client.get("/api/webhook-endpoints"),
    }

    for (path, method, status), response in answers.items():
        assert response.status_code == status, (path, method, response.content)
        body = response.json()
        assert_documents(schema, response_schema(schema, path, method, status), body, f"{method} {path} {status}")
    table = answers[("/api/margins", "get", 200)].json()["data"]
    assert table["customers"][0]["sparkline"][-1]["projected"] is True
    csv_media = schema["paths"]["/api/margins"]["get"]["responses"]["200"]["content"]
    assert set(csv_media) == {"application/json", "text/csv"}
