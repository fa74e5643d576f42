"""POST /api/v1/events, the MarginDash dialect (seed 000)."""

from datetime import timedelta

import orjson
import pytest
from django.utils import timezone

from costcalc.models import UnpricedModel
from events.models import Customer, UsageEvent, VendorResponse
from tests.events.conftest import md_event
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/events"


def post(client, *events, **kwargs):
    return client.post(URL, {"events": list(events)}, format="json", **kwargs)


def test_seed_example_is_created_priced_and_answered_in_the_seed_shape(api_client, price_catalog, organization):
    response = post(api_client, md_event("12345", revenue_amount_in_cents=500))

    assert response.status_code == 200
    body = response.json()
    event = UsageEvent.objects.get()
    assert body == {"budget_state_version": 0, "results": [{"id": event.id, "status": "created"}]}
    assert event.organization == organization
    assert event.customer.external_id == "12345"  # auto-created
    assert event.event_type == "summarize"
    assert event.source == "margindash"
    assert event.cost_microdollars == 1200 * 2_500_000 // 1_000_000 + 340 * 10  # $2.50 and $10 per million
    assert event.revenue_microdollars == 5_000_000
    (call,) = VendorResponse.objects.all()
    assert (call.model, call.input_tokens, call.output_tokens, call.cost_microdollars) == (
        "openai/gpt-4o",
        1200,
        340,
        6400,
    )
    assert call.price_id == price_catalog["openai/gpt-4o"].id


def test_several_vendor_responses_are_summed_with_cache_reads_priced(api_client, price_catalog):
    responses = [
        {"model": "openai/gpt-4o", "input_tokens": 1000, "output_tokens": 0, "cached_input_tokens": 400},
        {"model": "anthropic/claude-3.5-sonnet", "input_tokens": 100, "output_tokens": 100},
    ]
    post(api_client, md_event(vendor_responses=responses))

    # gpt-4o: 600 x 2.5 + 400 x 1.25 = 2000; claude: 100 x 3 + 100 x 15 = 1800
    assert UsageEvent.objects.get().cost_microdollars == 3800
    assert sorted(VendorResponse.objects.values_list("cost_microdollars", flat=True)) == [1800, 2000]


def test_retry_with_the_same_keys_answers_duplicate_with_the_original_ids(api_client, price_catalog):
    first = post(api_client, md_event(key="k1"), md_event(key="k2")).json()["results"]
    again = post(api_client, md_event(key="k2"), md_event(key="k1"), md_event(key="k3")).json()["results"]

    assert [r["status"] for r in first] == ["created", "created"]
    assert again[0] == {"id": first[1]["id"], "status": "duplicate"}
    assert again[1] == {"id": first[0]["id"], "status": "duplicate"}
    assert again[2]["status"] == "created"
    assert UsageEvent.objects.count() == 3
    assert VendorResponse.objects.count() == 3


def test_a_key_repeated_inside_one_batch_is_stored_once(api_client, price_catalog):
    results = post(api_client, md_event(key="same"), md_event(key="same")).json()["results"]

    assert results[0]["status"] == "created"
    assert results[1] == {"id": results[0]["id"], "status": "duplicate"}
    assert UsageEvent.objects.count() == 1


def test_events_without_keys_are_never_deduplicated(api_client, price_catalog):
    post(api_client, md_event(), md_event())
    post(api_client, md_event())
    assert UsageEvent.objects.count() == 3


def test_mixed_batch_stores_the_valid_events_and_reports_each_error(api_client, price_catalog):
    results = post(
        api_client,
        md_event(key="ok-1"),
        md_event(vendor_responses=[]),
        md_event(vendor_responses=[{"model": "openai/gpt-4o", "input_tokens": 100_000_001, "output_tokens": 1}]),
        md_event(occurred_at=(timezone.now() - timedelta(days=91)).isoformat()),
        md_event(key="ok-2"),
    ).json()["results"]

    assert [r["status"] for r in results] == ["created", "error", "error", "error", "created"]
    assert results[1]["error"] == {
        "code": "validation_error",
        "message": "must contain at least one vendor response",
        "field": "events[1].vendor_responses",
    }
    assert results[2]["error"]["field"] == "events[2].vendor_responses[0].input_tokens"
    assert results[3]["error"]["field"] == "events[3].occurred_at"
    assert UsageEvent.objects.count() == 2


def test_unknown_model_is_a_per_event_error_with_suggestions(api_client, price_catalog):
    bad = md_event(key="bad", vendor_responses=[{"model": "openai/gpt4o", "input_tokens": 5, "output_tokens": 5}])
    results = post(api_client, md_event(key="good"), bad).json()["results"]

    assert results[0]["status"] == "created"
    assert results[1] == {
        "status": "error",
        "error": {
            "code": "unknown_model",
            "message": "The price catalog does not know the model 'openai/gpt4o'. Did you mean openai/gpt-4o?",
            "field": "events[1].vendor_responses[0].model",
            "suggestions": ["openai/gpt-4o"],
        },
    }
    assert UsageEvent.objects.count() == 1
    assert not UnpricedModel.objects.exists()


def test_a_rejected_event_does_not_create_its_customer(api_client, price_catalog):
    unknown_model = [{"model": "openai/gpt4o", "input_tokens": 5, "output_tokens": 5}]
    results = post(api_client, md_event("new-good"), md_event("new-rejected", vendor_responses=unknown_model))

    assert [r["status"] for r in results.json()["results"]] == ["created", "error"]
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["new-good"]


def test_organizations_that_accept_unpriced_models_store_them_unpriced(
    api_client, price_catalog, accept_unpriced, organization
):
    mystery = {"model": "acme/secret-model", "input_tokens": 10, "output_tokens": 10}
    known = {"model": "openai/gpt-4o", "input_tokens": 1200, "output_tokens": 340}
    post(api_client, md_event(key="a", vendor_responses=[mystery, known]))
    post(api_client, md_event(key="b", vendor_responses=[mystery]), md_event(key="a", vendor_responses=[mystery]))

    first = UsageEvent.objects.get(idempotency_key="md:a")
    assert first.unpriced is True
    assert first.cost_microdollars == 6400  # what could be priced
    costs = dict(first.vendor_responses.values_list("model", "cost_microdollars"))
    assert costs == {"acme/secret-model": None, "openai/gpt-4o": 6400}
    unpriced = UnpricedModel.objects.get(organization=organization)
    assert (unpriced.slug, unpriced.event_count) == ("acme/secret-model", 2)  # the duplicate is not counted
    assert unpriced.first_seen_at <= unpriced.last_seen_at


def test_sdk_token_extensions_are_stored(api_client, price_catalog):
    post(
        api_client,
        md_event(
            key="x",
            occurred_at=timezone.now().replace(microsecond=0).isoformat(),
            vendor_responses=[
                {
                    "model": "openai/gpt-4o",
                    "input_tokens": 100,
                    "output_tokens": 50,
                    "cached_input_tokens": 10,
                    "cache_creation_input_tokens": 5,
                    "reasoning_tokens": 20,
                }
            ],
        ),
    )
    call = VendorResponse.objects.get()
    assert (call.cached_input_tokens, call.cache_write_tokens, call.reasoning_tokens) == (10, 5, 20)


def test_customer_is_resolved_by_external_id_alias_or_uuid(api_client, price_catalog, organization):
    customer = CustomerFactory(organization=organization, external_id="acme", ingest_aliases=["billing@acme.test"])
    post(api_client, md_event("acme"), md_event("billing@acme.test"), md_event(str(customer.uuid)))

    assert set(UsageEvent.objects.values_list("customer_id", flat=True)) == {customer.id}
    assert Customer.objects.count() == 1


def test_another_tenants_customer_ids_do_not_resolve(api_client, price_catalog, other_client, organization):
    foreign = CustomerFactory(organization=other_client.organization, external_id="shared", ingest_aliases=["alias-x"])
    post(api_client, md_event("shared"), md_event("alias-x"), md_event(str(foreign.uuid)))

    mine = Customer.objects.filter(organization=organization)
    assert sorted(mine.values_list("external_id", flat=True)) == sorted(["shared", "alias-x", str(foreign.uuid)])
    assert not UsageEvent.objects.filter(customer=foreign).exists()


def test_the_same_key_in_two_organizations_is_two_events(api_client, other_client, price_catalog):
    a = post(api_client, md_event(key="k")).json()["results"][0]
    b = post(other_client, md_event(key="k")).json()["results"][0]

    assert a["status"] == b["status"] == "created"
    assert a["id"] != b["id"]


def test_malformed_json_is_a_400(api_client):
    response = api_client.post(URL, data=b'{"events": [', content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["details"] == {"field": "body"}


def test_more_than_100_events_is_a_400_and_stores_nothing(api_client, price_catalog):
    response = post(api_client, *[md_event() for _ in range(101)])

    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"field": "events", "max_events": 100}
    assert not UsageEvent.objects.exists()


def test_body_over_the_limit_is_a_413(api_client, settings):
    settings.API_MAX_BODY_BYTES = 2048
    body = orjson.dumps({"events": [md_event(event_type="x" * 3000)]})

    response = api_client.post(URL, data=body, content_type="application/json")

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_ingest_needs_an_api_key(anonymous_client):
    response = anonymous_client.post(URL, {"events": [md_event()]}, format="json")
    assert response.status_code == 401


def test_hooks_get_only_the_new_events(api_client, price_catalog, recorded_hook_calls, organization):
    post(api_client, md_event(key="a", revenue_amount_in_cents=100))
    post(api_client, md_event(key="a"), md_event(key="b"), md_event(customer_id=None))

    assert [len(events) for _, events in recorded_hook_calls] == [1, 1]
    organization_seen, (event_b,) = recorded_hook_calls[1]
    assert organization_seen == organization
    stored = UsageEvent.objects.get(idempotency_key="md:b")
    assert (event_b.id, event_b.customer_id, event_b.event_type) == (stored.id, stored.customer_id, "summarize")
    assert event_b.cost_microdollars == 6400
    first_event = recorded_hook_calls[0][1][0]
    assert first_event.revenue_microdollars == 1_000_000


def test_a_failing_hook_rolls_the_events_back(api_client, price_catalog, monkeypatch):
    from events import hooks

    def broken(*, organization, events):
        raise RuntimeError("billing is down")

    monkeypatch.setattr(hooks, "_ingest_hooks", [broken])
    api_client.raise_request_exception = False

    response = post(api_client, md_event(key="a"))

    assert response.status_code == 500
    assert not UsageEvent.objects.exists()


def test_usage_recorded_is_sent_on_commit_only(api_client, price_catalog, django_capture_on_commit_callbacks):
    from events.signals import usage_recorded

    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    usage_recorded.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            post(api_client, md_event("c1", key="a"), md_event("c2", key="b"))
        assert received == []  # not before the commit
        for callback in callbacks:
            callback()
        with django_capture_on_commit_callbacks(execute=True):
            post(api_client, md_event("c1", key="a"))  # nothing new: no signal
    finally:
        usage_recorded.disconnect(receiver)

    customers = dict(Customer.objects.values_list("external_id", "id"))
    assert len(received) == 1
    assert received[0]["organization_id"] == UsageEvent.objects.first().organization_id
    assert received[0]["customer_ids"] == sorted([customers["c1"], customers["c2"]])


def test_nothing_is_sent_when_the_transaction_rolls_back(
    price_catalog, organization, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from events.dialects import margindash
    from events.services import ingest_events

    drafts = margindash.parse_batch({"events": [md_event(key="a")]}, now=timezone.now())
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        ingest_events(organization=organization, source="margindash", items=drafts)
        raise RuntimeError("caller fails after ingest")
    assert callbacks == []
    assert not UsageEvent.objects.exists()


def test_vendor_responses_are_stored_in_their_order_with_their_defaults(api_client, price_catalog):
    responses = [
        {"model": "openai/gpt-4o", "input_tokens": 30, "output_tokens": 1},
        {"model": "openai/gpt-4o", "input_tokens": 20, "output_tokens": 2, "cached_input_tokens": 5},
        {"model": "openai/gpt-4o", "input_tokens": 10, "output_tokens": 3, "reasoning_tokens": 3},
    ]
    post(api_client, md_event(key="ordered", vendor_responses=responses), md_event(key="plain"))

    event = UsageEvent.objects.get(idempotency_key="md:ordered")
    stored = list(
        event.vendor_responses.order_by("id").values_list(
            "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens", "reasoning_tokens"
        )
    )
    assert stored == [(30, 1, 0, 0, 0), (20, 2, 5, 0, 0), (10, 3, 0, 0, 3)]
    assert all(price_id for price_id in event.vendor_responses.values_list("price_id", flat=True))
    assert not any(event.vendor_responses.values_list("price_override_id", flat=True))
    plain = UsageEvent.objects.get(idempotency_key="md:plain")
    assert (plain.properties, plain.meta, plain.flow_id, plain.feature_key, plain.usage_units, plain.unpriced) == (
        {}, {}, "", "", None, False
    )


def test_an_anthropic_api_model_id_is_priced_as_its_catalog_slug(api_client, price_catalog):
    """What Anthropic's API answers in `model` (versions with dashes, a snapshot date) is what an
    integration without our SDK sends."""
    calls = [{"model": "claude-3-5-sonnet-20241022", "input_tokens": 1000, "output_tokens": 100}]
    results = post(api_client, md_event(key="anthropic", vendor_responses=calls)).json()["results"]

    assert results[0]["status"] == "created"
    response = VendorResponse.objects.get()
    assert response.model == "claude-3-5-sonnet-20241022"  # stored as sent
    assert response.price_id == price_catalog["anthropic/claude-3.5-sonnet"].pk
    assert response.cost_microdollars == 4500  # 1,000 x $3 + 100 x $15 per million


def test_unique_request_token_is_the_idempotency_key_under_the_sdks_name(api_client, price_catalog, organization):
    first = post(api_client, md_event(unique_request_token="a1b2c3")).json()["results"][0]
    assert first["status"] == "created"
    # the same key again, under either name, is the same event
    again = post(api_client, md_event(unique_request_token="a1b2c3"), md_event(key="a1b2c3")).json()["results"]
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert {r["id"] for r in again} == {first["id"]}
    event = UsageEvent.objects.get(organization=organization)
    assert event.idempotency_key == "md:a1b2c3" and event.meta == {}


def test_unique_request_token_and_a_different_idempotency_key_is_a_per_event_error(api_client, price_catalog):
    results = post(api_client, md_event(key="k-1", unique_request_token="k-2"), md_event(key="k-3")).json()["results"]
    assert results[0]["status"] == "error"
    assert results[0]["error"]["field"] == "events[0].unique_request_token"
    assert results[1]["status"] == "created"
    assert not UsageEvent.objects.filter(idempotency_key__in=["md:k-1", "md:k-2"]).exists()
