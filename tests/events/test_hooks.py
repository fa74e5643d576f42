from datetime import UTC, datetime

import pytest

from events import hooks


@pytest.fixture
def only_test_hooks(monkeypatch):
    """Ingest hooks as the test registers them (billing's is not among them)."""
    monkeypatch.setattr(hooks, "_ingest_hooks", [])
    monkeypatch.setattr(hooks, "_preludes", {})


def _md_body(pairs) -> dict:
    """A MarginDash batch, one gpt-4o call per event, from (customer id, idempotency key) pairs."""
    return {"events": [{"customer_id": customer, "idempotency_key": key, "vendor_responses": [
        {"model": "openai/gpt-4o", "input_tokens": 10, "output_tokens": 5}]} for customer, key in pairs]}


def test_ingest_hooks_get_the_new_events_and_block_sources_union(monkeypatch, only_test_hooks):
    monkeypatch.setattr(hooks, "_block_sources", [])
    seen = []
    hooks.register_ingest_hook(lambda *, organization, events: seen.append((organization, list(events))))
    hooks.register_block_source(lambda *, organization: hooks.BlockedSet(customer_ids=frozenset({"a"})))
    hooks.register_block_source(
        lambda *, organization: hooks.BlockedSet(organization=True, event_types=frozenset({"x"}))
    )
    event = hooks.RecordedEvent(1, "org", 2, "chat", datetime(2026, 1, 1, tzinfo=UTC), {}, 10, 0)

    hooks.run_ingest_hooks(organization="org", events=[event])
    hooks.run_ingest_hooks(organization="org", events=[])
    blocked = hooks.blocked_by_sources(organization="org")

    assert seen == [("org", [event])]
    assert blocked == hooks.BlockedSet(organization=True, event_types=frozenset({"x"}), customer_ids=frozenset({"a"}))


def test_a_hook_prelude_runs_in_ingests_first_round_trip_and_reaches_the_hook(
    api_client, price_catalog, monkeypatch, only_test_hooks
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts import sql

    seen = []

    def hook(*, organization, events, prelude):
        seen.append(prelude)

    hooks.register_ingest_hook(
        hook, prelude=["SELECT %(organization)s::text", "SELECT count(*) FROM events_usageevent"]
    )
    pipelined = []
    real = sql.fetch_pipelined
    monkeypatch.setattr(
        "events.services.ingest.fetch_pipelined", lambda statements: pipelined.append(statements) or real(statements)
    )
    body = _md_body([("c1", "k")])

    with CaptureQueriesContext(connection) as queries:
        response = api_client.post("/api/v1/events", body, format="json")

    assert response.status_code == 200, response.content
    organization_id = response.wsgi_request.auth.organization_id
    assert seen == [[[(str(organization_id),)], [(0,)]]]  # the ledger was read before this batch's write
    assert [statement[0] for statement in pipelined[0][-2:]] == hooks.ingest_prelude_statements()
    assert not [query for query in queries if "count(*) FROM events_usageevent" in query["sql"]]

    # Outside an ingest, a hook with a prelude is told to read for itself.
    event = hooks.RecordedEvent(1, "org", 2, "chat", datetime(2026, 1, 1, tzinfo=UTC), {}, 10, 0)
    hooks.run_ingest_hooks(organization="org", events=[event])
    assert seen[-1] is None


def test_hooks_get_the_customers_external_id_whatever_identifier_the_event_named(
    api_client, price_catalog, organization, only_test_hooks
):
    from tests.factories import CustomerFactory

    customer = CustomerFactory(organization=organization, external_id="acme", ingest_aliases=["billing@acme.test"])
    seen = []
    hooks.register_ingest_hook(lambda *, organization, events: seen.extend(events))
    names = ["acme", "billing@acme.test", str(customer.uuid), "first-sight"]

    response = api_client.post("/api/v1/events", _md_body((name, f"k{n}") for n, name in enumerate(names)),
                               format="json")

    assert response.status_code == 200, response.content
    by_key = {event.id: event.customer_external_id for event in seen}
    ids = [result["id"] for result in response.json()["results"]]
    assert [by_key[int(id_)] for id_ in ids] == ["acme", "acme", "acme", "first-sight"]


def test_the_events_are_built_for_hooks_only_when_a_hook_reads_them(
    api_client, price_catalog, monkeypatch, only_test_hooks
):
    built = []
    real = hooks.RecordedEvent
    monkeypatch.setattr(hooks, "RecordedEvent", lambda *args, **kwargs: built.append(1) or real(*args, **kwargs))
    counts, seen = [], []
    hooks.register_ingest_hook(lambda *, organization, events: counts.append(len(events)))

    def post(key):
        body = _md_body(("c1", f"{key}{n}") for n in range(3))
        assert api_client.post("/api/v1/events", body, format="json").status_code == 200

    post("a")
    assert counts == [3] and built == []  # the hook asked how many, nothing more

    hooks.register_ingest_hook(lambda *, organization, events: seen.append([event.id for event in events]))
    post("b")
    assert len(built) == 3 and len(seen[0]) == 3
