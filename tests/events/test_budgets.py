"""Budgets (API and admin-facing models), the SDK blocklist and its version, the debounced
evaluation after ingest."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from events import hooks
from events.models import BlocklistState, Budget, BudgetAlert
from events.services import blocklist_recompute, budget_create, budget_evaluation_schedule
from events.services.budgets import budget_evaluation_pending
from tests.events.conftest import md_event

pytestmark = pytest.mark.django_db
BUDGETS = "/api/v1/budgets"
BLOCKLIST = "/api/v1/budgets/blocklist"


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


def ingest(client, *events):
    return client.post("/api/v1/events", {"events": list(events)}, format="json")


def test_blocklist_of_a_new_organization(api_client):
    body = api_client.get(BLOCKLIST).json()

    assert body == {
        "version": 0,
        "ttl_seconds": 30,
        "changed": True,
        "recompute_in_progress": False,
        "blocked": {"organization": False, "event_types": [], "customer_ids": []},
    }
    assert api_client.get(f"{BLOCKLIST}?since_version=0").json() == {
        "version": 0,
        "ttl_seconds": 30,
        "changed": False,
        "recompute_in_progress": False,
    }


def test_since_version_must_be_an_integer(api_client):
    response = api_client.get(f"{BLOCKLIST}?since_version=abc")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "since_version"


def test_budget_crud_through_the_api(api_client):
    created = api_client.post(
        BUDGETS,
        {"name": "Chat cap", "scope": "event_type", "scope_value": "chat", "limit_microdollars": 5_000_000},
        format="json",
    )
    assert created.status_code == 201
    budget = created.json()["data"]
    assert (budget["period"], budget["action"], budget["enabled"]) == ("month", "block", True)

    patched = api_client.patch(f"{BUDGETS}/{budget['id']}", {"period": "day"}, format="json").json()["data"]
    assert patched["period"] == "day"
    assert [b["id"] for b in api_client.get(BUDGETS).json()["data"]] == [budget["id"]]
    assert api_client.delete(f"{BUDGETS}/{budget['id']}").status_code == 204
    assert not Budget.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scope": "planet", "limit_microdollars": 1}, "scope"),
        ({"scope": "customer", "limit_microdollars": -1}, "limit_microdollars"),
        ({"scope": "organization", "scope_value": "x", "limit_microdollars": 1}, "scope_value"),
        ({"scope": "customer", "limit_microdollars": 1, "period": "week"}, "period"),
        ({"scope": "customer", "limit_microdollars": 1, "action": "shout"}, "action"),
    ],
)
def test_budget_validation(api_client, body, field):
    response = api_client.post(BUDGETS, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field


def test_budget_writes_need_the_admin_role(member_client):
    client = member_client(role="member")
    assert client.get(BUDGETS).status_code == 200
    assert client.post(BUDGETS, {"scope": "customer", "limit_microdollars": 1}, format="json").status_code == 403


def test_another_tenants_budgets_are_invisible(api_client, other_client):
    foreign = budget_create(organization=other_client.organization, scope="organization", limit_microdollars=1)
    assert api_client.get(BUDGETS).json()["data"] == []
    assert api_client.get(f"{BUDGETS}/{foreign.id}").status_code == 404
    assert api_client.delete(f"{BUDGETS}/{foreign.id}").status_code == 404


def test_a_customer_over_budget_is_blocked_and_the_version_grows_only_on_change(
    api_client, price_catalog, organization, django_capture_on_commit_callbacks
):
    budget_create(organization=organization, scope="customer", scope_value="big", limit_microdollars=10_000)

    with django_capture_on_commit_callbacks(execute=True):
        first = ingest(api_client, md_event("big"), md_event("small")).json()  # 6,400 µ$ each
    assert first["budget_state_version"] == 0
    assert api_client.get(BLOCKLIST).json()["version"] == 0  # 6,400 < 10,000: nothing blocked yet

    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_client, md_event("big"))  # 12,800 >= 10,000
    body = api_client.get(f"{BLOCKLIST}?since_version=0").json()
    assert body["version"] == 1
    assert body["changed"] is True
    assert body["blocked"] == {"organization": False, "event_types": [], "customer_ids": ["big"]}

    with django_capture_on_commit_callbacks(execute=True):
        later = ingest(api_client, md_event("big"), md_event("small")).json()
    assert later["budget_state_version"] == 1  # ingest answers carry the current version
    assert BlocklistState.objects.get(organization=organization).version == 1  # same set: no new version
    assert api_client.get(f"{BLOCKLIST}?since_version=1").json()["changed"] is False


def test_each_customer_event_type_and_organization_scopes(price_catalog, api_client, organization):
    with_usage = [md_event("a"), md_event("a"), md_event("b", event_type="embed"), md_event("c")]
    ingest(api_client, *with_usage)  # a: 12,800; b: 6,400 (embed); c: 6,400; total 25,600
    budget_create(organization=organization, scope="customer", limit_microdollars=12_800)
    budget_create(organization=organization, scope="event_type", scope_value="embed", limit_microdollars=6_400)
    budget_create(organization=organization, scope="organization", limit_microdollars=30_000)

    state = blocklist_recompute(organization=organization)

    assert state.blocked == {"organization": False, "event_types": ["embed"], "customer_ids": ["a"]}
    budget_create(organization=organization, scope="organization", limit_microdollars=25_600, period="day")
    assert BlocklistState.objects.get(organization=organization).blocked["organization"] is True


def test_usage_outside_the_period_does_not_count(price_catalog, api_client, organization):
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    ingest(api_client, md_event("a", occurred_at=yesterday))
    budget_create(organization=organization, scope="customer", limit_microdollars=1, period="day")

    assert BlocklistState.objects.get(organization=organization).blocked["customer_ids"] == []


def test_disabling_a_budget_unblocks_with_a_new_version(price_catalog, api_client, organization):
    ingest(api_client, md_event("a"))
    budget = api_client.post(BUDGETS, {"scope": "customer", "limit_microdollars": 1}, format="json").json()["data"]
    assert api_client.get(BLOCKLIST).json()["blocked"]["customer_ids"] == ["a"]

    api_client.patch(f"{BUDGETS}/{budget['id']}", {"enabled": False}, format="json")

    body = api_client.get(f"{BLOCKLIST}?since_version=1").json()
    assert (body["version"], body["blocked"]["customer_ids"]) == (2, [])


def test_alert_budgets_record_one_alert_per_period_and_do_not_block(price_catalog, api_client, organization):
    ingest(api_client, md_event("a"), md_event("b"))
    budget = budget_create(organization=organization, scope="customer", limit_microdollars=100, action="alert")
    blocklist_recompute(organization=organization)

    alerts = BudgetAlert.objects.filter(budget=budget)
    assert sorted(alerts.values_list("subject", flat=True)) == ["a", "b"]  # once each, after two evaluations
    assert set(alerts.values_list("spent_microdollars", flat=True)) == {6400}
    fields = ("organization_id", "action", "limit_microdollars")
    assert set(alerts.values_list(*fields)) == {(organization.pk, "alert", 100)}
    (period_start,) = set(alerts.values_list("period_start", flat=True))  # the month's first instant, UTC
    assert period_start == period_start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert period_start.utcoffset() == timedelta(0)
    assert all(alert.created_at is not None for alert in alerts)
    assert BlocklistState.objects.get(organization=organization).version == 0


def test_block_sources_are_part_of_the_blocklist(api_client, organization, monkeypatch):
    monkeypatch.setattr(hooks, "_block_sources", [])
    over_limit = {"value": False}
    hooks.register_block_source(
        lambda *, organization: (
            hooks.BlockedSet(customer_ids=frozenset({"credits-out"})) if over_limit["value"] else hooks.BlockedSet()
        )
    )

    assert blocklist_recompute(organization=organization).version == 0
    over_limit["value"] = True
    assert blocklist_recompute(organization=organization).blocked["customer_ids"] == ["credits-out"]
    assert blocklist_recompute(organization=organization).version == 1
    assert api_client.get(BLOCKLIST).json()["blocked"]["customer_ids"] == ["credits-out"]


def test_a_burst_of_ingests_queues_one_evaluation_and_none_is_lost(organization, monkeypatch, settings):
    """Broker-less check of the debounce: the task is captured instead of run, as a broker would hold it."""
    from events import tasks

    queued = []
    monkeypatch.setattr(tasks.evaluate_budgets, "apply_async", lambda args, countdown: queued.append(args))

    scheduled = [budget_evaluation_schedule(organization_id=organization.pk) for _ in range(5)]
    assert scheduled == [True, False, False, False, False]
    assert len(queued) == 1
    assert budget_evaluation_pending(organization.pk) is True

    # An ingest lands while the evaluation runs: the task re-queues itself once at the end.
    from events.services import budgets as budget_services

    real_evaluate = budget_services.blocklist_evaluate_changes

    def evaluate_during_ingest(*, organization):
        budget_evaluation_schedule(organization_id=organization.pk)
        return real_evaluate(organization=organization)

    monkeypatch.setattr(budget_services, "blocklist_evaluate_changes", evaluate_during_ingest)
    tasks.evaluate_budgets(str(organization.pk))
    assert len(queued) == 2

    monkeypatch.setattr(budget_services, "blocklist_evaluate_changes", real_evaluate)
    tasks.evaluate_budgets(str(organization.pk))
    assert len(queued) == 2  # nothing new arrived: no further evaluation
    assert budget_evaluation_pending(organization.pk) is False


def test_refresh_schedules_organizations_with_budgets(organization, other_client, monkeypatch):
    from events import tasks

    queued = []
    monkeypatch.setattr(tasks.evaluate_budgets, "apply_async", lambda args, countdown: queued.append(args))
    budget_create(organization=organization, scope="organization", limit_microdollars=10)

    assert tasks.refresh_blocklists() == 1
    assert queued == [[str(organization.pk)]]


@pytest.fixture
def evaluations(monkeypatch):
    from events.services import ingest as ingest_service

    scheduled = []
    monkeypatch.setattr(ingest_service, "_schedule_budget_evaluation", scheduled.append)
    return scheduled


def test_after_ingest_the_blocklist_is_evaluated_only_where_something_could_block(
    api_client, organization, price_catalog, evaluations, django_capture_on_commit_callbacks
):
    from billing.credits.models import SpendingLimit
    from events.models import Customer

    with django_capture_on_commit_callbacks(execute=True):
        assert ingest(api_client, md_event("c-1", key="k1")).status_code == 200
    assert evaluations == []  # no budget, no spending limit: usage cannot block anything

    limit = SpendingLimit.objects.create(
        organization=organization,
        customer=Customer.objects.get(external_id="c-1"),
        amount_microdollars=10,
        duration="daily",
    )
    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_client, md_event("c-1", key="k2"))
    assert evaluations == [organization.pk]  # billing's source watches organizations with a limit

    SpendingLimit.objects.filter(pk=limit.pk).update(enabled=False)
    budget_create(organization=organization, scope="organization", limit_microdollars=10**9)
    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_client, md_event("c-1", key="k3"))
    assert evaluations == [organization.pk] * 2  # an enabled budget


def test_a_block_source_without_a_watch_condition_watches_every_organization(
    api_client, organization, price_catalog, evaluations, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(hooks, "_block_sources", [])
    hooks.register_block_source(lambda *, organization: hooks.BlockedSet())

    with django_capture_on_commit_callbacks(execute=True):
        ingest(api_client, md_event("c-1", key="k1"))

    assert evaluations == [organization.pk]


# --- Evaluation after ingest: only the changed customers, from rollups ----------------------------

from datetime import UTC, datetime  # noqa: E402

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from events.drafts import CustomerRef, EventDraft  # noqa: E402
from events.models import BudgetPendingCustomer, UsageEvent  # noqa: E402
from events.services import ingest_events  # noqa: E402
from events.services.budgets import blocklist_evaluate_changes  # noqa: E402

LAST_SECOND = datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC)  # the last second of a month


def spend(organization, customer: str, cost: int, key: str, at: datetime = LAST_SECOND):
    draft = EventDraft(
        customer=CustomerRef("id", customer, "customer_id"), event_type="chat", occurred_at=at,
        idempotency_key=key, cost_microdollars=cost,
    )
    ingest_events(organization=organization, source=UsageEvent.Source.INTERNAL, items=[draft], now=at)


def test_the_evaluation_after_ingest_decides_again_only_the_customers_it_touched(organization):
    budget_create(organization=organization, scope="customer", limit_microdollars=100)
    blocklist_recompute(organization=organization, now=LAST_SECOND)
    spend(organization, "b", 500, "b1")
    BudgetPendingCustomer.objects.all().delete()  # as if b's change had been evaluated elsewhere
    spend(organization, "a", 200, "a1")
    assert list(BudgetPendingCustomer.objects.values_list("customer__external_id", flat=True)) == ["a"]

    state = blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)

    assert state.blocked["customer_ids"] == ["a"]  # b was not touched by the evaluated ingest
    assert not BudgetPendingCustomer.objects.exists()  # taken by the evaluation
    assert blocklist_recompute(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == ["a", "b"]
    spend(organization, "c", 1, "c1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == ["a", "b"]


def test_organization_and_event_type_budgets_follow_every_ingest(organization):
    budget_create(organization=organization, scope="organization", limit_microdollars=300)
    budget_create(organization=organization, scope="event_type", scope_value="chat", limit_microdollars=250)
    spend(organization, "a", 200, "a1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked == {
        "organization": False, "event_types": [], "customer_ids": [],
    }
    spend(organization, "b", 60, "b1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["event_types"] == ["chat"]
    spend(organization, "c", 40, "c1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["organization"] is True


def test_a_new_utc_day_makes_the_evaluation_full_and_lifts_yesterdays_day_blocks(organization):
    budget_create(organization=organization, scope="customer", limit_microdollars=100, period="day")
    spend(organization, "a", 200, "a1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == ["a"]

    next_day = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
    assert blocklist_evaluate_changes(organization=organization, now=next_day).blocked["customer_ids"] == []


def test_the_evaluation_reads_no_ledger(organization):
    budget_create(organization=organization, scope="customer", limit_microdollars=100)
    budget_create(organization=organization, scope="organization", limit_microdollars=100)
    spend(organization, "a", 200, "a1")

    with CaptureQueriesContext(connection) as captured:
        blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)
        blocklist_recompute(organization=organization, now=LAST_SECOND)

    assert not [q["sql"] for q in captured.captured_queries if "events_usageevent" in q["sql"]]


def test_nothing_is_queued_for_evaluation_when_nothing_watches_usage(organization):
    spend(organization, "a", 200, "a1")
    assert not BudgetPendingCustomer.objects.exists()


def test_the_evaluation_asks_only_the_block_sources_watching_the_organization(organization, monkeypatch):
    monkeypatch.setattr(hooks, "_block_sources", [])
    monkeypatch.setattr(hooks, "_watch_sql", {})
    asked = []

    def idle(*, organization):
        asked.append("idle")
        return hooks.BlockedSet(customer_ids=frozenset({"never"}))

    def watching(*, organization):
        asked.append("watching")
        return hooks.BlockedSet(event_types=frozenset({"chat"}))

    hooks.register_block_source(idle, watches_sql="FALSE")
    hooks.register_block_source(watching, watches_sql="EXISTS (SELECT 1 WHERE %(organization)s IS NOT NULL)")

    state = blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)

    assert asked == ["watching"]
    assert state.blocked == {"organization": False, "event_types": ["chat"], "customer_ids": []}


def test_the_evaluation_of_an_organization_deleted_meanwhile_does_nothing(organization):
    from accounts.models import Organization
    from events.services.budgets import budget_evaluation_run

    organization_id = organization.pk
    Organization.objects.filter(pk=organization_id).delete()

    assert budget_evaluation_run(organization_id=str(organization_id)) is None
    assert not BlocklistState.objects.filter(organization_id=organization_id).exists()


# --- the evaluation is skipped while no decision can change ----------------------------------------


@pytest.fixture
def full_evaluations(monkeypatch):
    """The full evaluations that ran (skipped ones do not reach `_evaluate`)."""
    from events.services import budgets as budget_services

    ran = []
    real = budget_services._evaluate

    def counted(organization, now, *, incremental):
        ran.append(incremental)
        return real(organization, now, incremental=incremental)

    monkeypatch.setattr(budget_services, "_evaluate", counted)
    return ran


def test_an_evaluation_is_skipped_while_the_spend_since_is_below_the_headroom(organization, full_evaluations):
    budget_create(organization=organization, scope="customer", limit_microdollars=100)
    spend(organization, "a", 60, "a1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == []
    state = BlocklistState.objects.get(organization=organization)
    assert (state.headroom_microdollars, state.month_spend_microdollars) == (40, 60)  # a's margin to 100
    version = state.version

    spend(organization, "a", 39, "a2")
    skipped = blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)

    assert full_evaluations == [False, True]  # the budget's recompute, then the first evaluation only
    assert (skipped.version, skipped.blocked["customer_ids"]) == (version, [])
    assert list(BudgetPendingCustomer.objects.values_list("customer__external_id", flat=True)) == ["a"]

    spend(organization, "a", 1, "a3")  # 100 in all: exactly the headroom since the evaluation
    state = blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)

    assert full_evaluations == [False, True, True]
    assert state.blocked["customer_ids"] == ["a"]
    assert state.version == version + 1
    assert not BudgetPendingCustomer.objects.exists()


def test_the_headroom_keeps_the_margin_of_customers_an_incremental_evaluation_did_not_read(organization):
    """b's evaluation reads only b; a (90 of 100) was read before, and its margin of 10 must still
    bound the skip, or a's next 10 would go unblocked."""
    budget_create(organization=organization, scope="customer", limit_microdollars=100)
    spend(organization, "a", 90, "a1")
    blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)
    spend(organization, "b", 25, "b1")
    blocklist_evaluate_changes(organization=organization, now=LAST_SECOND)  # 25 >= 10: runs, reads b only
    assert BlocklistState.objects.get(organization=organization).headroom_microdollars == 10

    spend(organization, "a", 9, "a2")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == []
    spend(organization, "a", 1, "a3")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == ["a"]


def test_no_skip_on_a_new_utc_day_or_when_a_block_source_watches(organization, full_evaluations, monkeypatch):
    budget_create(organization=organization, scope="customer", limit_microdollars=100, period="day")
    spend(organization, "a", 100, "a1")
    assert blocklist_evaluate_changes(organization=organization, now=LAST_SECOND).blocked["customer_ids"] == ["a"]

    next_day = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)  # the day (and month) rolled over: unblocked
    assert blocklist_evaluate_changes(organization=organization, now=next_day).blocked["customer_ids"] == []
    assert full_evaluations == [False, True, True]

    monkeypatch.setattr(hooks, "_block_sources", [])
    monkeypatch.setattr(hooks, "_watch_sql", {})
    hooks.register_block_source(
        lambda *, organization: hooks.BlockedSet(), watches_sql="EXISTS (SELECT 1 WHERE %(organization)s IS NOT NULL)"
    )
    blocklist_recompute(organization=organization, now=next_day)  # as a new limit's source does
    assert BlocklistState.objects.get(organization=organization).headroom_microdollars is None
    blocklist_evaluate_changes(organization=organization, now=next_day)
    blocklist_evaluate_changes(organization=organization, now=next_day)
    assert full_evaluations == [False, True, True, False, True, True]


@pytest.mark.clock  # the month and day of `now` (CI reruns it at their edges)
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_each_below_the_headroom_still_reach_the_budget_together(organization):
    """Ten concurrent batches of 5 after a headroom of 40: none alone can reach the organization's
    100, together they do. Each check reads after its own commit, so the last one sees them all."""
    from tests.events.conftest import run_together

    budget_create(organization=organization, scope="organization", limit_microdollars=100)
    now = timezone.now()
    spend(organization, "x", 60, "x1", at=now)  # 60 < 100: its own evaluation was skipped
    blocklist_recompute(organization=organization)
    state = BlocklistState.objects.get(organization=organization)
    assert (state.headroom_microdollars, state.blocked["organization"]) == (40, False)

    errors = run_together(10, lambda number: spend(organization, f"c{number}", 5, f"c{number}", at=now))

    assert errors == []
    state = BlocklistState.objects.get(organization=organization)
    assert state.blocked["organization"] is True
    assert state.headroom_microdollars is None  # the one budget is reached: nothing left to bound
