from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing import invoicing, recompute, services
from tests.factories import CustomerFactory


def _metronome_event(customer_id: str, key: str, tokens: int = 1000) -> dict:
    return {
        "transaction_id": key,
        "customer_id": customer_id,
        "event_type": "langModel4",
        "timestamp": timezone.now().isoformat(),
        "properties": {"tokens": tokens, "user_id": "u1"},
    }


@pytest.fixture
def with_worker(monkeypatch):
    """A broker and a worker (production): usage queues the recompute task (without one, drafts are
    marked stale for their next read: tests/billing/test_stale_drafts.py)."""
    from celery import current_app

    monkeypatch.setitem(current_app.conf, "task_always_eager", False)


def _future_contract(organization, customer, seed_pricing):
    return services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=(timezone.now() + timedelta(days=3)).replace(minute=0, second=0, microsecond=0),  # not started yet
    )


def test_queue_draft_recompute_schedules_only_customers_with_a_contract(
    organization, customer, seed_pricing, monkeypatch, with_worker
):
    _future_contract(organization, customer, seed_pricing)
    unbilled = CustomerFactory(organization=organization, external_id="no-contract")
    scheduled = []
    monkeypatch.setattr(recompute, "schedule_drafts_recompute", scheduled.extend)

    recompute.queue_draft_recompute(customer_ids=[unbilled.pk, customer.pk])

    assert scheduled == [customer.pk]
    # What was left out would have done nothing: a customer without a contract has no drafts.
    assert invoicing.customer_drafts_recompute(customer_id=unbilled.pk) == []


def test_queue_draft_recompute_without_customers_queries_nothing(db, django_assert_num_queries):
    with django_assert_num_queries(0):
        recompute.queue_draft_recompute(customer_ids=[])


def test_ingest_queues_the_recompute_on_commit_for_the_customers_with_a_contract(
    organization, customer, seed_pricing, api_client, monkeypatch, django_capture_on_commit_callbacks, with_worker
):
    _future_contract(organization, customer, seed_pricing)
    CustomerFactory(organization=organization, external_id="no-contract")
    scheduled = []
    monkeypatch.setattr(recompute, "schedule_drafts_recompute", scheduled.extend)

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
    monkeypatch.setattr(recompute, "schedule_drafts_recompute", scheduled.extend)

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
    with CaptureQueriesContext(connection) as queries:
        _future_contract(organization, customer, seed_pricing)

    sqls = [query["sql"] for query in queries.captured_queries]
    lock = next(i for i, sql in enumerate(sqls) if "pg_advisory_xact_lock(" in sql)
    insert = next(i for i, sql in enumerate(sqls) if sql.startswith('INSERT INTO "billing_contract"'))
    assert lock < insert
    assert "events_ledger_lock_key" in sqls[lock] and organization.pk.hex in sqls[lock]


def test_a_batch_over_many_contracted_customers_queues_one_task_and_bursts_coalesce(
    organization, seed_pricing, api_client, monkeypatch, django_capture_on_commit_callbacks, with_worker
):
    from django.core.cache import cache

    from billing import tasks

    cache.clear()
    customers = [CustomerFactory(organization=organization, external_id=f"c{n}") for n in range(5)]
    for customer in customers:
        _future_contract(organization, customer, seed_pricing)
    queued = []
    monkeypatch.setattr(tasks.recompute_draft_invoices, "apply_async", lambda args, countdown: queued.append(args))

    def ingest(keys, names):
        with django_capture_on_commit_callbacks(execute=True):
            events = [_metronome_event(name, key) for key, name in zip(keys, names, strict=True)]
            assert api_client.post("/api/v1/ingest", events, format="json").status_code == 200

    ingest(["a0", "a1", "a2", "a3"], ["c0", "c1", "c2", "c3"])
    assert queued == [[sorted(c.pk for c in customers[:4])]]  # one task for the batch

    ingest(["b0", "b1"], ["c0", "c4"])  # within the debounce: only the new customer is queued
    assert queued[1:] == [[[customers[4].pk]]]

    tasks.recompute_draft_invoices(queued[0][0])  # the queued run clears its customers' keys first
    ingest(["d0"], ["c0"])
    assert queued[2:] == [[[customers[0].pk]]]
    cache.clear()


def test_the_task_recomputes_every_customers_drafts_in_one_run(organization, seed_pricing):
    from billing import tasks
    from billing.models import Invoice

    customers = [CustomerFactory(organization=organization, external_id=f"c{n}") for n in range(3)]
    for customer in customers:
        services.contract_create(
            organization=organization, customer=customer, rate_card=seed_pricing["rate_card"],
            starting_at=timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0),
        )
    Invoice.objects.filter(customer__in=customers).update(computed_at=None)

    assert tasks.recompute_draft_invoices([c.pk for c in customers]) == 3
    assert not Invoice.objects.filter(customer__in=customers, computed_at__isnull=True).exists()


def test_an_organization_wide_refresh_spreads_over_tasks_of_a_hundred_customers(db, monkeypatch):
    from django.core.cache import cache

    from billing import tasks

    cache.clear()
    queued = []
    monkeypatch.setattr(tasks.recompute_draft_invoices, "apply_async", lambda args, countdown: queued.append(args[0]))

    taken = recompute.schedule_drafts_recompute(list(range(1, 251)))

    assert taken == list(range(1, 251))
    assert [len(chunk) for chunk in queued] == [100, 100, 50]
    assert recompute.schedule_drafts_recompute([7, 300]) == [300]  # 7 is queued already
    cache.clear()
