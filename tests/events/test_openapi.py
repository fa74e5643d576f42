"""The OpenAPI schema of the three ingest dialects says what the parsers take and the views answer.

- Shapes: the MarginDash batch, the Metronome array and the Tanso event are documented with their
  fields, required fields and limits (the dialects' own constants), plus every error status.
- Names: every documented property is one the parser reads (a wrong value for it is an error that
  names it), and every required one is one the parser requires; a body using every documented
  property is accepted.
- Answers: real answers, errors included, validate against the documented responses with objects
  closed (no undocumented field), via tests/accounts/test_schema.py's converter.
"""

import uuid
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from accounts.api.errors import ApiError
from events.dialects import margindash, metronome, tanso
from events.dialects.fields import MAX_TOKENS
from events.drafts import EventDraft, EventError
from tests.accounts.test_schema import _json_schema, assert_matches_schema
from tests.events.conftest import md_event

MARGINDASH, METRONOME, TANSO = "/api/v1/events", "/api/v1/ingest", "/api/v1/usage-events"
NOW = datetime(2025, 6, 15, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def openapi(django_db_blocker) -> dict:
    with django_db_blocker.unblock():
        return SchemaGenerator().get_schema(request=None, public=True)


def resolve(openapi: dict, node: dict) -> dict:
    while "$ref" in node:
        node = openapi["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    if "allOf" in node:  # a nullable reference: {"allOf": [{"$ref": …}], "nullable": true}
        return resolve(openapi, node["allOf"][0])
    return node


def request_schema(openapi: dict, path: str) -> dict:
    return resolve(openapi, openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])


def margindash_event_schema(openapi) -> dict:
    return resolve(openapi, request_schema(openapi, MARGINDASH)["properties"]["events"]["items"])


def vendor_response_schema(openapi) -> dict:
    return resolve(openapi, margindash_event_schema(openapi)["properties"]["vendor_responses"]["items"])


def metronome_event_schema(openapi) -> dict:
    return resolve(openapi, request_schema(openapi, METRONOME)["items"])


def tanso_event_schema(openapi) -> dict:
    return request_schema(openapi, TANSO)


def cost_input_schema(openapi) -> dict:
    return resolve(openapi, tanso_event_schema(openapi)["properties"]["costInput"])


def assert_valid_request(openapi: dict, path: str, body) -> None:
    """``body`` uses only documented properties, with documented types and limits."""
    schema = openapi["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.validate(body, _json_schema(schema, openapi["components"]["schemas"]))


# --- shapes ----------------------------------------------------------------------------------------


def test_margindash_request_documents_the_event_and_its_vendor_responses(openapi):
    batch = request_schema(openapi, MARGINDASH)
    assert batch["required"] == ["events"]
    events = batch["properties"]["events"]
    assert (events["type"], events["minItems"], events["maxItems"]) == ("array", 1, margindash.MAX_EVENTS)

    event = margindash_event_schema(openapi)
    assert set(event["properties"]) == {
        "customer_id", "event_type", "vendor_responses", "revenue_amount_in_cents", "occurred_at", "idempotency_key",
        "unique_request_token",
    }  # fmt: skip
    assert set(event["required"]) == {"customer_id", "vendor_responses"}
    assert event["properties"]["event_type"]["default"] == margindash.DEFAULT_EVENT_TYPE
    assert event["properties"]["event_type"]["maxLength"] == 255
    assert event["properties"]["idempotency_key"]["maxLength"] == margindash.MAX_KEY_LENGTH
    assert event["properties"]["occurred_at"]["format"] == "date-time"
    revenue = event["properties"]["revenue_amount_in_cents"]
    assert (revenue["type"], revenue["minimum"], revenue["maximum"]) == ("number", 0, margindash.MAX_REVENUE_CENTS)
    responses = event["properties"]["vendor_responses"]
    assert (responses["minItems"], responses["maxItems"]) == (1, margindash.MAX_VENDOR_RESPONSES)

    call = vendor_response_schema(openapi)
    assert set(call["required"]) == {"model", "input_tokens", "output_tokens"}
    assert set(call["properties"]) == {
        "model", "input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens",
        "reasoning_tokens",
    }  # fmt: skip
    for name in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens"):
        tokens = call["properties"][name]
        assert (tokens["type"], tokens["minimum"], tokens["maximum"]) == ("integer", 0, MAX_TOKENS)


def test_margindash_results_are_created_duplicate_or_error(openapi):
    result = resolve(
        openapi, openapi["paths"][MARGINDASH]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    )
    assert set(result["required"]) == {"budget_state_version", "results"}
    options = [
        resolve(openapi, option) for option in resolve(openapi, result["properties"]["results"]["items"])["oneOf"]
    ]
    statuses = {
        frozenset(option["properties"]): resolve(openapi, option["properties"]["status"])["enum"] for option in options
    }
    assert statuses == {
        frozenset({"id", "status"}): ["created", "duplicate"],
        frozenset({"status", "error"}): ["error"],
    }
    error = resolve(openapi, next(o for o in options if "error" in o["properties"])["properties"]["error"])
    assert set(error["properties"]) == {"code", "message", "field", "suggestions"}
    assert set(error["required"]) == {"code", "message", "field"}


def test_metronome_request_is_a_bounded_array_of_usage_events(openapi):
    body = openapi["paths"][METRONOME]["post"]["requestBody"]
    batch = request_schema(openapi, METRONOME)
    assert (batch["type"], batch["minItems"], batch["maxItems"]) == ("array", 1, metronome.MAX_EVENTS)

    event = metronome_event_schema(openapi)
    assert set(event["properties"]) == {"transaction_id", "customer_id", "event_type", "timestamp", "properties"}
    assert set(event["required"]) == {"transaction_id", "customer_id", "event_type", "timestamp"}
    assert event["properties"]["transaction_id"]["maxLength"] == metronome.MAX_TRANSACTION_ID_LENGTH
    assert event["properties"]["timestamp"]["format"] == "date-time"
    assert event["properties"]["properties"]["type"] == "object"
    assert "application/json" in body["content"]


def test_tanso_documents_the_event_the_idempotency_header_and_the_stored_answer(openapi):
    operation = openapi["paths"][TANSO]["post"]
    header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header"
    assert header["schema"]["maxLength"] == tanso.MAX_KEY_LENGTH
    assert not header.get("required", False)

    event = tanso_event_schema(openapi)
    assert event["required"] == ["eventName"]
    assert set(tanso.CUSTOMER_FIELDS) <= set(event["properties"])
    assert event["properties"]["customerId"]["format"] == "uuid"
    assert event["properties"]["eventIdempotencyKey"]["maxLength"] == tanso.MAX_KEY_LENGTH
    assert cost_input_schema(openapi)["required"] == ["model"]

    stored = resolve(openapi, operation["responses"]["201"]["content"]["application/json"]["schema"])
    assert {"id", "eventIdempotencyKey", "customerId", "customerReferenceId", "costAmount", "revenueAmount",
            "budgetStateVersion"} <= set(stored["required"])  # fmt: skip
    assert stored["properties"]["costAmount"]["type"] == "string"  # money is a decimal string


@pytest.mark.parametrize(
    ("path", "statuses"),
    [
        (MARGINDASH, {"200", "400", "401", "403", "413", "415", "429"}),
        (METRONOME, {"200", "400", "401", "403", "413", "415", "429"}),
        (TANSO, {"201", "400", "401", "403", "404", "409", "413", "415", "429"}),
    ],
)
def test_every_error_is_documented_with_the_envelope(openapi, path, statuses):
    responses = openapi["paths"][path]["post"]["responses"]
    assert set(responses) == statuses
    for status in statuses - {"200", "201"}:
        assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert responses[status]["description"], status
    assert "payload_too_large" in responses["413"]["description"]


def test_the_error_envelope_and_the_tanso_conflict(openapi):
    envelope = openapi["components"]["schemas"]["Error"]
    assert envelope["required"] == ["error"]
    body = resolve(openapi, envelope["properties"]["error"])
    assert set(body["required"]) == {"code", "message", "details"}
    conflict = openapi["paths"][TANSO]["post"]["responses"]["409"]["description"]
    assert "conflict" in conflict
    assert "eventIdempotencyKey" in conflict


# --- names: what is documented is what the parsers read ----------------------------------------------

WRONG = True  # a JSON boolean: wrong for every documented property (strings, numbers, objects, arrays)


def margindash_error(event) -> str | None:
    outcome = margindash.parse_event(event, 0, now=NOW)
    assert isinstance(outcome, EventDraft | EventError)
    return outcome.field if isinstance(outcome, EventError) else None


def metronome_error(event) -> str | None:
    try:
        metronome.parse_batch([event], now=NOW)
    except ApiError as error:
        return error.details["field"]
    return None


def tanso_error(body) -> str | None:
    try:
        tanso.parse_event(body, header_key=None, now=NOW)
    except ApiError as error:
        return error.details["field"]
    return None


CALL = {"model": "openai/gpt-4o", "input_tokens": 10, "output_tokens": 5}
MD_EVENT = {"customer_id": "c", "vendor_responses": [CALL]}
MT_EVENT = {"transaction_id": "t", "customer_id": "c", "event_type": "e", "timestamp": NOW.isoformat()}
TS_EVENT = {"eventName": "chat", "customerReferenceId": "c"}


def test_every_documented_property_is_read_by_its_parser(openapi):
    for name in margindash_event_schema(openapi)["properties"]:
        assert margindash_error({**MD_EVENT, name: WRONG}) == f"events[0].{name}", name
    for name in vendor_response_schema(openapi)["properties"]:
        event = {**MD_EVENT, "vendor_responses": [{**CALL, name: WRONG}]}
        assert margindash_error(event) == f"events[0].vendor_responses[0].{name}", name
    for name in metronome_event_schema(openapi)["properties"]:
        assert metronome_error({**MT_EVENT, name: WRONG}) == f"usage[0].{name}", name
    for name in tanso_event_schema(openapi)["properties"]:
        body = {"eventName": "chat", name: WRONG} if name in tanso.CUSTOMER_FIELDS else {**TS_EVENT, name: WRONG}
        assert tanso_error(body) == name, name
    for name in cost_input_schema(openapi)["properties"]:
        assert tanso_error({**TS_EVENT, "costInput": {"model": "openai/gpt-4o", name: WRONG}}) == f"costInput.{name}"


def test_the_documented_required_properties_are_the_ones_the_parsers_require(openapi):
    for name in margindash_event_schema(openapi)["required"]:
        assert margindash_error({key: value for key, value in MD_EVENT.items() if key != name}) == f"events[0].{name}"
    for name in vendor_response_schema(openapi)["required"]:
        call = {key: value for key, value in CALL.items() if key != name}
        assert margindash_error({**MD_EVENT, "vendor_responses": [call]}) == f"events[0].vendor_responses[0].{name}"
    for name in metronome_event_schema(openapi)["required"]:
        assert metronome_error({key: value for key, value in MT_EVENT.items() if key != name}) == f"usage[0].{name}"
    assert tanso_error({"customerReferenceId": "c"}) == "eventName"
    # Everything else is optional: the minimal bodies are accepted and are valid documented requests.
    assert margindash_error(MD_EVENT) is None
    assert metronome_error(MT_EVENT) is None
    assert tanso_error(TS_EVENT) is None
    assert_valid_request(openapi, MARGINDASH, {"events": [MD_EVENT]})
    assert_valid_request(openapi, METRONOME, [MT_EVENT])
    assert_valid_request(openapi, TANSO, TS_EVENT)


def test_the_documented_limits_are_the_parsers(openapi):
    events = [MD_EVENT] * margindash.MAX_EVENTS
    assert_valid_request(openapi, MARGINDASH, {"events": events})
    usage = [MT_EVENT] * metronome.MAX_EVENTS
    assert_valid_request(openapi, METRONOME, usage)
    too_many_tokens = [{**CALL, "input_tokens": MAX_TOKENS + 1}]
    refused = [
        (MARGINDASH, {"events": [*events, MD_EVENT]}, lambda body: margindash.parse_batch(body, now=NOW)),
        (MARGINDASH, {"events": []}, lambda body: margindash.parse_batch(body, now=NOW)),
        (METRONOME, [*usage, MT_EVENT], lambda body: metronome.parse_batch(body, now=NOW)),
        (METRONOME, [], lambda body: metronome.parse_batch(body, now=NOW)),
        (MARGINDASH, {"events": [{**MD_EVENT, "vendor_responses": too_many_tokens}]}, None),
        (TANSO, {**TS_EVENT, "eventIdempotencyKey": "k" * (tanso.MAX_KEY_LENGTH + 1)}, tanso_error),
    ]
    for path, body, parse in refused:
        with pytest.raises(jsonschema.ValidationError):
            assert_valid_request(openapi, path, body)
        if parse is tanso_error:
            assert parse(body) == "eventIdempotencyKey"
        elif parse is not None:
            with pytest.raises(ApiError):
                parse(body)
    assert margindash_error({**MD_EVENT, "vendor_responses": too_many_tokens}) == (
        "events[0].vendor_responses[0].input_tokens"
    )


# --- answers: real responses match the documented ones ---------------------------------------------


@pytest.mark.django_db
def test_margindash_answers_match_the_schema(openapi, api_client, price_catalog):
    full = md_event(
        key="k-1",
        revenue_amount_in_cents=12.5,
        occurred_at=(timezone.now() - timedelta(hours=1)).isoformat(),
        vendor_responses=[
            {**CALL, "cached_input_tokens": 4, "cache_creation_input_tokens": 0, "reasoning_tokens": 1},
        ],
    )
    unknown = md_event(vendor_responses=[{**CALL, "model": "openai/gpt4o"}])
    body = {"events": [full, full, unknown, {"customer_id": "x"}]}
    assert_valid_request(openapi, MARGINDASH, {"events": [full, unknown]})

    response = api_client.post(MARGINDASH, body, format="json")

    results = response.json()["results"]
    assert [result["status"] for result in results] == ["created", "duplicate", "error", "error"]
    assert results[2]["error"]["suggestions"]
    assert_matches_schema(openapi, response, MARGINDASH, "post")
    assert_matches_schema(openapi, api_client.post(MARGINDASH, {"events": []}, format="json"), MARGINDASH, "post")


@pytest.mark.django_db
def test_metronome_answers_match_the_schema(openapi, api_client):
    event = {**MT_EVENT, "timestamp": timezone.now().isoformat(), "properties": {"tokens": 3}}
    assert_valid_request(openapi, METRONOME, [event])

    ok = api_client.post(METRONOME, [event, event], format="json")
    invalid = api_client.post(METRONOME, [event, {**event, "timestamp": "yesterday"}], format="json")

    assert (ok.status_code, invalid.status_code) == (200, 400)
    assert invalid.json()["error"]["details"]["errors"][0]["index"] == 1
    assert_matches_schema(openapi, ok, METRONOME, "post")
    assert_matches_schema(openapi, invalid, METRONOME, "post")


@pytest.mark.django_db
def test_tanso_answers_match_the_schema(openapi, api_client, price_catalog):
    full = {
        **TS_EVENT,
        "eventIdempotencyKey": "evt-1",
        "occurredAt": timezone.now().isoformat(),
        "flowId": "flow-1",
        "featureKey": "chat",
        "revenueAmount": 0.5,
        "usageUnits": 2.25,
        "costInput": {
            "model": "gpt-4o", "provider": "openai", "inputTokens": 100, "outputTokens": 20,
            "cachedInputTokens": 10, "cacheWriteTokens": 0, "reasoningTokens": 5,
        },
        "meta": {"team": "a"},
        "subscriptionId": str(uuid.uuid4()),
        "entitlementId": str(uuid.uuid4()),
        "invoiceId": str(uuid.uuid4()),
    }  # fmt: skip
    assert_valid_request(openapi, TANSO, full)
    assert_valid_request(openapi, TANSO, {"eventName": "chat", "customerId": str(uuid.uuid4()), "costAmount": 1})

    answers = {
        201: api_client.post(TANSO, full, format="json"),
        409: api_client.post(TANSO, full, format="json"),
        404: api_client.post(TANSO, {"eventName": "chat", "customerId": str(uuid.uuid4())}, format="json"),
        400: api_client.post(TANSO, {"eventName": "chat"}, format="json"),
    }
    with_header = api_client.post(TANSO, TS_EVENT, format="json", HTTP_IDEMPOTENCY_KEY="h-1")

    for status, response in answers.items():
        assert response.status_code == status, response.json()
        assert_matches_schema(openapi, response, TANSO, "post")
    assert answers[201].json()["costAmount"] != "0"  # costInput was read and priced
    assert with_header.json()["eventIdempotencyKey"] == "h-1"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "body"),
    [(MARGINDASH, {"events": [MD_EVENT]}), (METRONOME, [MT_EVENT]), (TANSO, TS_EVENT)],
)
def test_auth_role_and_size_errors_match_the_schema(
    openapi, path, body, anonymous_client, member_client, api_client, settings
):
    unauthenticated = anonymous_client.post(path, body, format="json")
    viewer = member_client(role="viewer").post(path, body, format="json")
    settings.API_MAX_BODY_BYTES = 16
    too_large = api_client.post(path, body, format="json")

    for response, status in ((unauthenticated, 401), (viewer, 403), (too_large, 413)):
        assert response.status_code == status
        assert_matches_schema(openapi, response, path, "post")
