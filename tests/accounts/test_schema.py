"""The OpenAPI schema says what the endpoints really answer: real responses validate against it.

Objects are checked strictly (no undocumented fields), so a missing `{"data": ...}` envelope or a
renamed field in the schema fails here.
"""

import jsonschema
import pytest
from django.core.management import call_command
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from tests.events.conftest import md_event
from tests.events.conftest import price_catalog as price_catalog

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _json_schema(node, components: dict):
    """OpenAPI 3.0 schema → plain JSON Schema: inline $refs, `nullable` as a null type, closed objects."""
    if isinstance(node, list):
        return [_json_schema(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _json_schema(components[node["$ref"].rsplit("/", 1)[-1]], components)
    schema = {key: _json_schema(value, components) for key, value in node.items() if key != "nullable"}
    if node.get("nullable"):
        schema = {"anyOf": [schema, {"type": "null"}]}
    elif schema.get("type") == "object" and "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def assert_matches_schema(openapi: dict, response, path: str, method: str) -> None:
    operation = openapi["paths"][path][method]
    documented = operation["responses"][str(response.status_code)]
    schema = _json_schema(documented["content"]["application/json"]["schema"], openapi["components"]["schemas"])
    jsonschema.validate(response.json(), schema)


def test_customer_and_budget_endpoints_match_the_schema(openapi, api_client):
    created = api_client.post("/api/v1/customers", {"name": "Acme", "external_id": "a-1"}, format="json")
    assert_matches_schema(openapi, created, "/api/v1/customers", "post")
    customer_id = created.json()["data"]["id"]
    assert_matches_schema(openapi, api_client.get(f"/api/v1/customers/{customer_id}"), "/api/v1/customers/{id}", "get")
    assert_matches_schema(openapi, api_client.get("/api/v1/customers"), "/api/v1/customers", "get")

    budget = api_client.post(
        "/api/v1/budgets", {"scope": "customer", "scope_value": "a-1", "limit_microdollars": 5}, format="json"
    )
    assert_matches_schema(openapi, budget, "/api/v1/budgets", "post")
    url = f"/api/v1/budgets/{budget.json()['data']['id']}"
    assert_matches_schema(openapi, api_client.get(url), "/api/v1/budgets/{id}", "get")
    patched = api_client.patch(url, {"limit_microdollars": 7}, format="json")
    assert_matches_schema(openapi, patched, "/api/v1/budgets/{id}", "patch")
    assert_matches_schema(openapi, api_client.get("/api/v1/budgets"), "/api/v1/budgets", "get")


def test_blocklist_both_shapes_match_the_schema(openapi, api_client):
    full = api_client.get("/api/v1/budgets/blocklist")
    unchanged = api_client.get(f"/api/v1/budgets/blocklist?since_version={full.json()['version']}")

    assert "blocked" in full.json() and "blocked" not in unchanged.json()
    assert_matches_schema(openapi, full, "/api/v1/budgets/blocklist", "get")
    assert_matches_schema(openapi, unchanged, "/api/v1/budgets/blocklist", "get")


def test_ingest_and_event_list_match_the_schema(openapi, api_client, price_catalog):
    ingested = api_client.post("/api/v1/events", {"events": [md_event(), {"customer_id": "x"}]}, format="json")
    assert_matches_schema(openapi, ingested, "/api/v1/events", "post")
    assert_matches_schema(openapi, api_client.get("/api/v1/events"), "/api/v1/events", "get")

    usage = [{"transaction_id": "t", "customer_id": "c", "event_type": "e", "timestamp": timezone.now().isoformat()}]
    assert_matches_schema(openapi, api_client.post("/api/v1/ingest", usage, format="json"), "/api/v1/ingest", "post")


def test_model_list_and_organization_match_the_schema(openapi, api_client, price_catalog):
    assert_matches_schema(openapi, api_client.get("/api/v1/model-prices"), "/api/v1/model-prices", "get")
    assert_matches_schema(openapi, api_client.get("/api/v1/models"), "/api/v1/models", "get")
    assert_matches_schema(openapi, api_client.get("/api/v1/organization"), "/api/v1/organization", "get")


def test_the_envelope_is_documented_for_json_only(openapi):
    csv = openapi["paths"]["/api/margins"]["get"]["responses"]["200"]["content"]["text/csv"]["schema"]
    assert "data" not in (csv.get("properties") or {})


def test_schema_generation_has_no_warnings_or_errors():
    # drf-spectacular's own validation of the whole document, failing on any warning.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
