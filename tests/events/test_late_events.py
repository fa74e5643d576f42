"""`late_event_rows` (correction invoices): the customer's events of a window that arrived late,
read as an index range on the organization and `occurred_at` (not every event of the customer, nor
an index scan across every organization)."""

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from events.drafts import CustomerRef, EventDraft
from events.models import UsageEvent
from events.selectors import late_event_rows
from events.services import ingest_events
from events.services.partitions import ledger_month_ensure
from tests.factories import CustomerFactory, OrganizationFactory

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 1, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
FINALIZED = datetime(2026, 4, 2, tzinfo=UTC)


def ingest(organization, customer, key, occurred_at, received_at):
    with time_machine.travel(received_at, tick=False):
        ingest_events(
            organization=organization, source=UsageEvent.Source.INTERNAL,
            items=[EventDraft(CustomerRef("id", customer, "customer_id"), "chat", occurred_at, key,
                              cost_microdollars=1)],
        )


@pytest.mark.clock
def test_only_the_late_events_of_the_window_and_the_customer_and_by_an_index_range(organization):
    acme = CustomerFactory(organization=organization, external_id="acme")
    other = OrganizationFactory(name="Other")
    CustomerFactory(organization=other, external_id="acme")
    ingest(organization, "acme", "on-time", START + timedelta(days=3), START + timedelta(days=3))
    ingest(organization, "acme", "late", START + timedelta(days=4), FINALIZED + timedelta(days=1))
    ingest(organization, "acme", "after-window", END + timedelta(days=1), FINALIZED + timedelta(days=1))
    ingest(organization, "globex", "other-customer", START + timedelta(days=4), FINALIZED + timedelta(days=1))
    ingest(other, "acme", "other-organization", START + timedelta(days=4), FINALIZED + timedelta(days=1))

    with connection.cursor() as cursor:  # a customer with a long history, and statistics that say so
        cursor.execute(
            "INSERT INTO events_usageevent (organization_id, customer_id, event_type, occurred_at, received_at, "
            "idempotency_key, source, properties, flow_id, feature_key, cost_microdollars, revenue_microdollars, "
            "unpriced, meta) SELECT %s, %s, 'chat', %s - g * interval '10 minutes', %s - g * interval '10 minutes', "
            "'history-' || g, 'internal', '{}', '', '', 1, 0, false, '{}' FROM generate_series(1, 20000) g",
            [organization.pk, acme.pk, START, START],
        )
        cursor.execute("ANALYZE events_usageevent")

    with CaptureQueriesContext(connection) as captured:
        rows = late_event_rows(customer_id=acme.pk, occurred_from=START, occurred_before=END, received_from=FINALIZED)

    assert [row.id for row in rows] == list(
        UsageEvent.objects.filter(idempotency_key__endswith="late", customer=acme).values_list("id", flat=True)
    )
    assert len(rows) == 1
    (query,) = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(line for (line,) in cursor.fetchall())
    # The ledger is partitioned by month: the scan is of the window's partition (DEFAULT here, as
    # the test database has no partition for March 2026).
    ledger_scan = next(line for line in plan.splitlines() if re.search(r"on events_usageevent\w* e(_\d+)? ", line))
    condition = plan.splitlines()[plan.splitlines().index(ledger_scan) + 1]
    assert "Index Cond" in condition and "organization_id" in condition and "occurred_at" in condition, plan


def _ledger_rows_walked(plan) -> int:
    """Rows the plan's scans of ledger partitions read (returned or dropped by a filter)."""
    if isinstance(plan, dict):
        own = 0
        if plan.get("Relation Name", "").startswith("events_usageevent"):
            loops = int(plan.get("Actual Loops", 1))
            own = (int(plan.get("Actual Rows", 0)) + int(plan.get("Rows Removed by Filter", 0))) * loops
        return own + sum(_ledger_rows_walked(value) for value in plan.values())
    if isinstance(plan, list):
        return sum(_ledger_rows_walked(value) for value in plan)
    return 0


@pytest.mark.clock
def test_from_a_watermark_only_the_late_events_are_read(organization):
    """With the organization's newest event id at finalization, the read is the (customer, id) index
    from that id in the window's partitions: the late events, not the window's history (20,000 rows
    here) nor the customer's events after the window."""
    for month in (START, END):  # the months' partitions, as the beat task creates them ahead
        ledger_month_ensure(month=month.date())
    acme = CustomerFactory(organization=organization, external_id="acme")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_usageevent (organization_id, customer_id, event_type, occurred_at, received_at, "
            "idempotency_key, source, properties, flow_id, feature_key, cost_microdollars, revenue_microdollars, "
            "unpriced, meta) SELECT %s, %s, 'chat', %s + g * interval '2 minutes', %s + g * interval '2 minutes', "
            "'history-' || g, 'internal', '{}', '', '', 1, 0, false, '{}' FROM generate_series(0, 19999) g",
            [organization.pk, acme.pk, START, START],
        )
    watermark = UsageEvent.objects.order_by("-id").values_list("id", flat=True).first()
    # Arrived after the watermark: one late event (its clock says before the finalization: the id
    # decides), and the customer's next month.
    ingest(organization, "acme", "late", START + timedelta(days=4), FINALIZED - timedelta(hours=1))
    for n in range(30):
        ingest(organization, "acme", f"next-{n}", END + timedelta(days=1, minutes=n), END + timedelta(days=2))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_usageevent")

    with CaptureQueriesContext(connection) as captured:
        rows = late_event_rows(
            customer_id=acme.pk, occurred_from=START, occurred_before=END, received_from=FINALIZED,
            after_event_id=watermark,
        )

    late = UsageEvent.objects.get(idempotency_key__endswith="late", customer=acme)
    assert [row.id for row in rows] == [late.id]
    (query,) = captured.captured_queries
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
        plan = cursor.fetchone()[0]
    plan = orjson.loads(plan) if isinstance(plan, str) else plan
    assert _ledger_rows_walked(plan) <= 2, plan
