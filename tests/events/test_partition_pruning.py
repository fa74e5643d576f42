"""Every ledger read that takes a time range touches only the partitions of that range: each query the
read sends is EXPLAINed and the ledger partitions in its plan are compared with the months asked."""

from datetime import UTC, datetime

import orjson
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events import selectors
from events.models import Customer
from events.services.partitions import ledger_month_ensure
from tests.events.conftest import md_event

FEB, MAR = "events_usageevent_p2024_02", "events_usageevent_p2024_03"


def _relations(plan) -> set[str]:
    found = set()
    if isinstance(plan, dict):
        name = plan.get("Relation Name", "")
        if name.startswith("events_usageevent_p") or name == "events_usageevent_default":
            found.add(name)
        for value in plan.values():
            found |= _relations(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= _relations(value)
    return found


def ledger_partitions_read(read) -> set[str]:
    """The ledger partitions in the plans of the queries ``read()`` sends that read the ledger."""
    with CaptureQueriesContext(connection) as captured:
        read()
    scanned = set()
    queries = [query["sql"] for query in captured.captured_queries if "events_usageevent" in query["sql"]]
    assert queries, "the read sent no query to the ledger"
    with connection.cursor() as cursor:
        for sql in queries:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
            plan = cursor.fetchone()[0]
            scanned |= _relations(orjson.loads(plan) if isinstance(plan, str) else plan)
    return scanned


@pytest.fixture
def ledger(api_client, price_catalog, organization):
    """Events in February and March 2024 (four months partitioned, and the DEFAULT partition)."""
    for month in (1, 2, 3, 4):
        ledger_month_ensure(month=datetime(2024, month, 1).date())
    for when, keys in ((datetime(2024, 2, 29, 20, tzinfo=UTC), "feb"), (datetime(2024, 3, 20, tzinfo=UTC), "mar")):
        with time_machine.travel(when, tick=False):
            body = {"events": [md_event(f"cust-{n}", key=f"{keys}-{n}", revenue_amount_in_cents=100) for n in (1, 2)]}
            assert api_client.post("/api/v1/events", body, format="json").status_code == 200
    return Customer.objects.get(organization=organization, external_id="cust-1")


def test_revenue_in_window_reads_only_the_edge_days_partitions(ledger, organization):
    def window(start, end):
        return lambda: selectors.revenue_in_window(
            organization_id=organization.pk, customer_ids=[ledger.pk], start=start, end=end
        )

    inside = window(datetime(2024, 2, 10, 6, tzinfo=UTC), datetime(2024, 2, 20, 18, tzinfo=UTC))
    assert ledger_partitions_read(inside) == {FEB}
    across = window(datetime(2024, 2, 29, 12, tzinfo=UTC), datetime(2024, 3, 1, 6, tzinfo=UTC))
    assert ledger_partitions_read(across) == {FEB, MAR}
    assert selectors.revenue_in_window(
        organization_id=organization.pk, customer_ids=[ledger.pk],
        start=datetime(2024, 2, 29, 12, tzinfo=UTC), end=datetime(2024, 3, 1, 6, tzinfo=UTC),
    ) == {ledger.pk: 1_000_000}


def test_the_events_list_with_a_time_range_reads_its_months_only(ledger, api_client):
    def page(query):
        def read():
            response = api_client.get(f"/api/v1/events?{query}")
            assert response.status_code == 200
            assert response.json()["data"]
        return read

    march = "occurred_after=2024-03-01T00:00:00Z&occurred_before=2024-04-01T00:00:00Z"
    assert ledger_partitions_read(page(march)) == {MAR}
    across = "occurred_after=2024-02-15T00:00:00Z&occurred_before=2024-03-15T00:00:00Z"
    assert ledger_partitions_read(page(across)) == {FEB, MAR}
    # A lookup by key reads the key's event time from the keys table, then only its partition.
    assert ledger_partitions_read(page("idempotency_key=mar-1")) == {MAR}


def test_late_events_customer_cost_and_usage_summary_read_their_range(ledger, organization):
    february = (datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 3, 1, tzinfo=UTC))
    # Windows that start and end inside a day: their whole days come from the rollups, the partial
    # edge days from the ledger.
    inside = (datetime(2024, 2, 10, 6, tzinfo=UTC), datetime(2024, 2, 29, 21, tzinfo=UTC))

    assert ledger_partitions_read(
        lambda: selectors.late_event_rows(
            customer_id=ledger.pk, occurred_from=february[0], occurred_before=february[1], received_from=february[0]
        )
    ) == {FEB}
    assert ledger_partitions_read(
        lambda: selectors.customer_cost(organization=organization, customer=ledger, start=inside[0], end=inside[1])
    ) == {FEB}
    assert ledger_partitions_read(
        lambda: selectors.usage_summary(organization=organization, start=inside[0], end=inside[1])
    ) == {FEB}
    across = (datetime(2024, 2, 29, 12, tzinfo=UTC), datetime(2024, 3, 20, 12, tzinfo=UTC))
    assert ledger_partitions_read(
        lambda: selectors.usage_summary(organization=organization, start=across[0], end=across[1])
    ) == {FEB, MAR}


def test_a_range_past_the_partitions_reads_the_default_partition_too(ledger, organization):
    """Back-dated rows a month without a partition would hold live in DEFAULT: a range that reaches
    past the partitioned months must read it (and still no other month)."""
    read = lambda: selectors.late_event_rows(  # noqa: E731
        customer_id=ledger.pk, occurred_from=datetime(2023, 12, 15, tzinfo=UTC),
        occurred_before=datetime(2024, 1, 15, tzinfo=UTC), received_from=datetime(2023, 12, 15, tzinfo=UTC),
    )
    assert ledger_partitions_read(read) == {"events_usageevent_p2024_01", "events_usageevent_default"}


def test_a_rebuild_chunk_of_a_small_organization_reads_none_of_a_big_ones_rows(api_client, price_catalog, organization):
    """Billing's rebuild pages the ledger by id (`metered_event_rows`). In a month where another
    organization has many events and this one none past the cursor, the chunk's scan of that month
    must not walk the other organization's rows (through the primary key it read them all, per chunk)."""
    from accounts.models import Organization
    from events.models import UsageEvent

    for month in (1, 2, 3):
        ledger_month_ensure(month=datetime(2024, month, 1).date())
    with time_machine.travel(datetime(2024, 1, 10, tzinfo=UTC), tick=False):
        body = {"events": [md_event("small-1", key=f"small-{n}") for n in range(3)]}
        assert api_client.post("/api/v1/events", body, format="json").status_code == 200
    big = Organization.objects.create(name="Big Co", plan=Organization.Plan.PRO)
    other = Customer.objects.create(organization=big, external_id="big-1")
    UsageEvent.objects.bulk_create(
        UsageEvent(
            organization=big, customer=other, event_type="chat", occurred_at=datetime(2024, month, 15, tzinfo=UTC),
            received_at=datetime(2024, 3, 20, tzinfo=UTC), idempotency_key=f"big-{month}-{n}", source="internal",
        )
        for month in (2, 3)
        for n in range(400)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_usageevent")
    first = selectors.metered_event_rows(organization=organization, limit=2)

    with CaptureQueriesContext(connection) as captured:
        rows = selectors.metered_event_rows(organization=organization, after_id=first[-1].id, limit=2)

    assert [row.id for row in rows] == [selectors.latest_event_id(organization=organization)]
    (sql,) = [query["sql"] for query in captured.captured_queries if "events_usageevent" in query["sql"]]
    with connection.cursor() as cursor:
        # The plan PostgreSQL takes on a large ledger (a few rows wanted, in id order): one id-ordered
        # index scan per partition, merged. On these small tables it could sort instead; forbid that.
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")
        plan = cursor.fetchone()[0]
    plan = orjson.loads(plan) if isinstance(plan, str) else plan
    assert _rows_removed(plan) == 0, "the chunk walked rows of another organization"


def _rows_removed(plan) -> int:
    """Rows the plan's scans of ledger partitions read and dropped (other tables' scans not counted)."""
    if isinstance(plan, dict):
        own = 0
        if plan.get("Relation Name", "").startswith("events_usageevent"):
            own = int(plan.get("Rows Removed by Filter", 0)) + int(plan.get("Rows Removed by Index Recheck", 0))
        return own + sum(_rows_removed(value) for value in plan.values())
    if isinstance(plan, list):
        return sum(_rows_removed(value) for value in plan)
    return 0
