from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import invoicing, recompute, services
from tests.factories import CustomerFactory


def _metronome_event(customer_id: str, key: str) -> dict:
    return {
        "transaction_id": key,
        "customer_id": customer_id,
        "event_type": "langModel4",
        "timestamp": timezone.now().isoformat(),
        "properties": {"tokens": 1000, "user_id": "u1"},
    }


def _future_contract(organization, customer, seed_pricing):
    return services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0),  # not started yet
    )


def test_queue_draft_recompute_schedules_only_customers_with_a_contract(
    organization, customer, seed_pricing, monkeypatch
):
    _future_contract(organization, customer, seed_pricing)
    unbilled = CustomerFactory(organization=organization, external_id="no-contract")
    scheduled = []
    monkeypatch.setattr(recompute, "schedule_draft_recompute", scheduled.append)

    recompute.queue_draft_recompute(customer_ids=[unbilled.pk, customer.pk])

    assert scheduled == [customer.pk]
    # What was left out would have done nothing: a customer without a contract has no drafts.
    assert invoicing.customer_drafts_recompute(customer_id=unbilled.pk) == []


def test_queue_draft_recompute_without_customers_queries_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        recompute.queue_draft_recompute(customer_ids=[])


def test_ingest_queues_the_recompute_on_commit_for_the_customers_with_a_contract(
    organization, customer, seed_pricing, api_client, monkeypatch, django_capture_on_commit_callbacks
):
    _future_contract(organization, customer, seed_pricing)
    CustomerFactory(organization=organization, external_id="no-contract")
    scheduled = []
    monkeypatch.setattr(recompute, "schedule_draft_recompute", scheduled.append)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = api_client.post(
            "/api/v1/ingest",
            [_metronome_event(customer.external_id, "a"), _metronome_event("no-contract", "b")],
            format="json",
        )
        assert response.status_code == 200, response.content
    assert scheduled == []  # not before the commit
    for callback in callbacks:
        callback()

    assert scheduled == [customer.pk]


def test_ingest_of_an_organization_without_contracts_asks_nothing_after_commit(
    organization, api_client, seed_pricing, monkeypatch
):
    scheduled = []
    monkeypatch.setattr(recompute, "schedule_draft_recompute", scheduled.append)

    with CaptureQueriesContext(connection) as queries:
        response = api_client.post("/api/v1/ingest", [_metronome_event("someone", "a")], format="json")

    assert response.status_code == 200, response.content
    assert scheduled == []
    assert not [query for query in queries if "billing_contract" in query["sql"]]  # read in ingest's first round trip


def test_ingest_rolls_usage_up_with_the_billing_prelude_read_in_its_first_round_trip(
    organization, customer, seed_pricing, api_client
):
    from billing.models import UsageRollup

    response = api_client.post("/api/v1/ingest", [_metronome_event(customer.external_id, "a")], format="json")

    assert response.status_code == 200, response.content
    rollup = UsageRollup.objects.get(customer=customer)
    assert (rollup.total, rollup.event_count) == (1000, 1)


def test_creating_a_contract_waits_for_open_ingests_of_the_organization(organization, customer, seed_pricing):
    """An ingest that read "no contract" in its first round trip holds the organization's shared
    lock until it commits; contract creation takes it exclusively, so its recompute sees that usage."""
    from events.locks import LEDGER_LOCK_NAMESPACE as LOCK_NAMESPACE

    with CaptureQueriesContext(connection) as queries:
        _future_contract(organization, customer, seed_pricing)

    sqls = [query["sql"] for query in queries.captured_queries]
    lock = next(i for i, sql in enumerate(sqls) if "pg_advisory_xact_lock(" in sql)
    insert = next(i for i, sql in enumerate(sqls) if sql.startswith('INSERT INTO "billing_contract"'))
    assert lock < insert
    assert str(LOCK_NAMESPACE) in sqls[lock] and organization.pk.hex in sqls[lock]
