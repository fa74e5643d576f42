"""The ledger partitioned by month (migration 0012, events.services.partitions): partitions created
ahead and out of the DEFAULT partition, dedupe through the keys table, detaching old months."""

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from events import hooks
from events.drafts import CREATED, DUPLICATE
from events.models import LedgerMonth, UsageDay, UsageEvent, UsageEventKey
from events.services import ingest as ingest_module
from events.services.partitions import (
    LedgerMonthRefused,
    add_months,
    ledger_horizon,
    ledger_month_attach,
    ledger_month_detach,
    ledger_month_ensure,
    ledger_partitions,
    ledger_partitions_ensure,
    month_start,
)
from events.services.rollups import usage_rollups_rebuild
from tests.events.conftest import md_event

# Far from any month the test database's migration created partitions for (it runs at the real time).
OLD = date(2024, 3, 1)
END_OF_OLD = datetime(2024, 3, 31, 22, tzinfo=UTC)


def _partition_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text FROM events_usageevent WHERE id = %s", [event_id])
        return cursor.fetchone()[0]


def _post(api_client, *events, at: datetime | None = None):
    """POST a MarginDash batch, at ``at`` (the dialect takes events of the last 90 days only)."""
    if at is None:
        response = api_client.post("/api/v1/events", {"events": list(events)}, format="json")
    else:
        with time_machine.travel(at, tick=False):
            response = api_client.post("/api/v1/events", {"events": list(events)}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _at(day: date, hour: int = 12) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).isoformat()


def test_an_event_of_a_month_without_partition_lands_in_default_and_moves_when_the_month_is_created(
    api_client, price_catalog, organization
):
    first, second = _post(
        api_client,
        md_event(key="old-1", occurred_at=_at(OLD.replace(day=5))),
        md_event(key="old-2", occurred_at=_at(OLD.replace(day=28), 23)),
        at=END_OF_OLD,
    )
    assert _partition_of(first["id"]) == "events_usageevent_default"

    moved = ledger_month_ensure(month=OLD.replace(day=17))

    assert moved == 2
    assert {_partition_of(first["id"]), _partition_of(second["id"])} == {"events_usageevent_p2024_03"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM events_usageevent_default")
        assert cursor.fetchone()[0] == 0
    assert ledger_month_ensure(month=OLD) is None  # exists: nothing done
    # The keys still answer a resend with the original id, and the next event of the month goes there.
    again, third = _post(
        api_client, md_event(key="old-1", occurred_at=_at(OLD)), md_event(key="old-3", occurred_at=_at(OLD)),
        at=END_OF_OLD,
    )
    assert (again["status"], again["id"]) == ("duplicate", first["id"])
    assert _partition_of(third["id"]) == "events_usageevent_p2024_03"


def test_ensure_creates_this_month_and_the_months_ahead_once(db, settings):
    settings.LEDGER_PARTITION_MONTHS_AHEAD = 2
    now = datetime(2031, 11, 20, tzinfo=UTC)

    created = ledger_partitions_ensure(now=now)

    assert created == {date(2031, 11, 1): 0, date(2031, 12, 1): 0, date(2032, 1, 1): 0}
    assert ledger_partitions_ensure(now=now) == {}
    months = [partition.month for partition in ledger_partitions() if partition.attached]
    assert months[-1] is None  # the DEFAULT partition, listed last
    assert {date(2031, 11, 1), date(2031, 12, 1), date(2032, 1, 1)} <= set(months)


def test_the_beat_task_is_scheduled_daily_on_the_ingest_queue(db):
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="events.tasks.ensure_ledger_partitions")
    assert (task.queue, task.crontab.hour, task.crontab.minute) == ("ingest", "3", "17")


def test_the_beat_task_creates_the_partitions_ahead(db, settings):
    from events.tasks import ensure_ledger_partitions

    settings.LEDGER_PARTITION_MONTHS_AHEAD = 8
    ensure_ledger_partitions()
    eighth = add_months(month_start(datetime.now(UTC).date()), 8)
    assert any(partition.month == eighth and partition.attached for partition in ledger_partitions())


def test_the_race_retry_reads_the_key_taken_by_a_concurrent_request(
    api_client, price_catalog, organization, monkeypatch
):
    """A key stored after this request's first read: the plain insert fails on the keys table's
    primary key, the transaction runs again with ON CONFLICT DO NOTHING and answers the stored id."""
    (original,) = _post(api_client, md_event(key="raced"))
    real = ingest_module.fetch_pipelined
    attempts = []

    def first_read_misses_the_key(statements):
        results = real(statements)
        attempts.append(results[2])
        results[2] = []  # as if the other request had not committed yet when this one read
        return results

    monkeypatch.setattr(ingest_module, "fetch_pipelined", first_read_misses_the_key)
    (raced, fresh) = _post(api_client, md_event(key="raced"), md_event(key="fresh"))

    assert len(attempts) == 2  # the first attempt failed on the constraint and ran again
    assert (raced["status"], raced["id"]) == ("duplicate", original["id"])
    assert fresh["status"] == "created"
    assert UsageEvent.objects.filter(organization=organization, idempotency_key="md:raced").count() == 1
    key = UsageEventKey.objects.get(organization_id=organization.pk, idempotency_key="md:fresh")
    event = UsageEvent.objects.get(pk=fresh["id"])
    assert (key.event_id, key.occurred_at) == (event.pk, event.occurred_at)


def test_another_unique_violation_is_not_taken_for_a_race(organization, monkeypatch):
    from events.drafts import CustomerRef, EventDraft

    error = psycopg.errors.UniqueViolation("some other constraint")
    monkeypatch.setattr(ingest_module, "_ingest", lambda *args: (_ for _ in ()).throw(error))
    draft = EventDraft(
        customer=CustomerRef("external_id", "c", "customer_id"), event_type="x", occurred_at=datetime.now(UTC),
        idempotency_key="md:k",
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        ingest_module.ingest_events(organization=organization, source="margindash", items=[draft])


def test_deleting_a_customer_frees_its_keys(api_client, price_catalog, organization):
    from events.models import Customer

    (first,) = _post(api_client, md_event("gone", key="k-1"))
    (kept,) = _post(api_client, md_event("stays", key="k-2"))
    Customer.objects.get(organization=organization, external_id="gone").delete()

    assert not UsageEventKey.objects.filter(organization_id=organization.pk, idempotency_key="md:k-1").exists()
    assert UsageEventKey.objects.filter(organization_id=organization.pk, idempotency_key="md:k-2").exists()
    (again,) = _post(api_client, md_event("gone", key="k-1"))
    assert again["status"] == "created" and again["id"] != first["id"]
    assert kept["status"] == "created"


def _month_with_usage(api_client, month: date) -> list[dict]:
    ledger_month_ensure(month=month)
    return _post(
        api_client,
        md_event("cust-1", key=f"m-{month:%Y%m}-1", occurred_at=_at(month.replace(day=3))),
        md_event("cust-1", key=f"m-{month:%Y%m}-2", occurred_at=_at(month.replace(day=9))),
        at=datetime(month.year, month.month, 20, tzinfo=UTC),
    )


def test_detaching_a_month_keeps_its_table_its_rollups_and_its_keys(api_client, price_catalog, organization):
    old, later = date(2024, 6, 1), date(2024, 7, 1)
    now = datetime(2025, 1, 10, tzinfo=UTC)
    events = _month_with_usage(api_client, old)
    _month_with_usage(api_client, later)
    cost_before = {row.day: row.cost_microdollars for row in UsageDay.objects.filter(organization=organization)}

    row = ledger_month_detach(month=old.replace(day=20), now=now)

    assert (row.month, row.event_count, row.table_name) == (old, 2, "events_usageevent_p2024_06")
    assert not UsageEvent.objects.filter(pk__in=[event["id"] for event in events]).exists()
    with connection.cursor() as cursor:  # kept, out of the ledger, for the operator to archive
        cursor.execute(f"SELECT count(*) FROM {row.table_name}")
        assert cursor.fetchone()[0] == 2
    assert ledger_horizon() == datetime(2024, 7, 1, tzinfo=UTC)
    # The rollups keep the month; a rebuild recomputes only from the horizon on and keeps the rest.
    usage_rollups_rebuild(organization_id=organization.pk)
    cost_after = {row.day: row.cost_microdollars for row in UsageDay.objects.filter(organization=organization)}
    assert cost_after == cost_before
    assert {date(2024, 6, 3), date(2024, 6, 9), date(2024, 7, 3), date(2024, 7, 9)} <= set(cost_after)
    # A resend of a detached event is still a duplicate of it.
    (again,) = _post(
        api_client, md_event("cust-1", key="m-202406-1", occurred_at=_at(old.replace(day=3))),
        at=datetime(2024, 6, 20, tzinfo=UTC),
    )
    assert (again["status"], again["id"]) == ("duplicate", events[0]["id"])
    assert any(p.month == old and not p.attached and p.rows == 2 for p in ledger_partitions())


def test_detach_refuses_recent_months_missing_partitions_and_what_a_guard_holds(db, monkeypatch):
    now = datetime(2032, 6, 15, tzinfo=UTC)
    for month in (date(2032, 6, 1), date(2032, 5, 1), date(2032, 1, 1)):
        ledger_month_ensure(month=month)

    for recent in (date(2032, 6, 1), date(2032, 5, 1)):
        with pytest.raises(LedgerMonthRefused, match="current and the previous month"):
            ledger_month_detach(month=recent, now=now)
    with pytest.raises(LedgerMonthRefused, match="no partition events_usageevent_p2031_12"):
        ledger_month_detach(month=date(2031, 12, 1), now=now)

    seen = []

    def guard(*, start, end):
        seen.append((start, end))
        return ["an open billing period"]

    monkeypatch.setattr(hooks, "_ledger_month_guards", [guard])
    with pytest.raises(LedgerMonthRefused, match="an open billing period"):
        ledger_month_detach(month=date(2032, 1, 1), now=now)
    assert seen == [(datetime(2032, 1, 1, tzinfo=UTC), datetime(2032, 2, 1, tzinfo=UTC))]
    assert not LedgerMonth.objects.exists()
    monkeypatch.setattr(hooks, "_ledger_month_guards", [])
    assert ledger_month_detach(month=date(2032, 1, 1), now=now).event_count == 0


def test_the_command_lists_ensures_and_detaches(db, capsys):
    call_command("ledger_partitions", "--ensure", "2018-02")
    call_command("ledger_partitions", "--detach", "2018-02")
    call_command("ledger_partitions", "--list")
    out = capsys.readouterr().out
    assert "created 2018-02" in out
    assert "detached 2018-02: 0 events in table events_usageevent_p2018_02" in out
    assert "2018-02  detached" in out and "DEFAULT  attached" in out
    with pytest.raises(CommandError, match="current and the previous month"):
        call_command("ledger_partitions", "--detach", f"{datetime.now(UTC):%Y-%m}")
    with pytest.raises(CommandError, match="not a month"):
        call_command("ledger_partitions", "--detach", "last-year")


def test_created_and_duplicate_outcomes_are_unchanged(api_client, price_catalog):
    """The outcome statuses the dialects answer are the same constants as before the keys table."""
    (first,) = _post(api_client, md_event(key="same"))
    earlier = datetime.now(UTC) - timedelta(days=40)
    (second,) = _post(api_client, md_event(key="same", occurred_at=earlier.isoformat()))
    assert (first["status"], second["status"]) == (CREATED, DUPLICATE)
    assert first["id"] == second["id"]  # a resend with another occurred_at is still the same event


@pytest.mark.django_db(transaction=True)
def test_two_ensures_of_one_month_at_once_create_it_once():
    import threading

    from django.db import connections

    barrier = threading.Barrier(2)
    results, errors = [], []

    def ensure():
        try:
            barrier.wait(timeout=30)
            results.append(ledger_month_ensure(month=date(2033, 4, 1)))
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ensure) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert not errors, errors
        assert sorted(results, key=str) == [0, None]
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS events_usageevent_p2033_04")


def test_a_detached_month_is_counted_after_the_detach_commits(api_client, price_catalog, organization):
    """DETACH holds the whole ledger ACCESS EXCLUSIVE until its transaction ends: the month's count (a
    scan of the whole table) runs after that, not while every organization's ingest waits."""
    from django.test.utils import CaptureQueriesContext

    old = date(2024, 6, 1)
    _month_with_usage(api_client, old)

    with CaptureQueriesContext(connection) as captured:
        row = ledger_month_detach(month=old, now=datetime(2025, 1, 10, tzinfo=UTC))

    statements = [query["sql"] for query in captured.captured_queries]
    detach = next(i for i, sql in enumerate(statements) if "DETACH PARTITION" in sql)
    count = next(i for i, sql in enumerate(statements) if sql.startswith("SELECT count(*)"))
    ends = ("COMMIT", "RELEASE SAVEPOINT")
    ended = next(i for i, sql in enumerate(statements) if i > detach and sql.startswith(ends))
    assert detach < ended < count
    assert row.event_count == 2
    assert LedgerMonth.objects.get(month=old).event_count == 2


def test_a_detached_month_attached_again_takes_back_what_arrived_meanwhile(api_client, price_catalog, organization):
    old = date(2024, 6, 1)
    now = datetime(2025, 1, 10, tzinfo=UTC)
    _month_with_usage(api_client, old)
    cost_before = {row.day: row.cost_microdollars for row in UsageDay.objects.filter(organization=organization)}
    ledger_month_detach(month=old, now=now)
    # A late event of the detached month waits in DEFAULT (its partition is out of the ledger).
    (late,) = _post(api_client, md_event("cust-1", key="m-202406-late", occurred_at=_at(old.replace(day=12))),
                    at=datetime(2024, 6, 20, tzinfo=UTC))
    assert late["status"] == "created"

    moved = ledger_month_attach(month=old)

    assert moved == 1
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT idempotency_key, tableoid::regclass::text FROM events_usageevent WHERE occurred_at >= %s "
            "AND occurred_at < %s ORDER BY 1",
            [datetime(2024, 6, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)],
        )
        placed = cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'events_usageevent_p2024_06'::regclass "
            "AND contype = 'c' AND conname LIKE '%%_month'"
        )
        assert cursor.fetchone()[0] == 0  # the check used to skip ATTACH's scan is dropped
    assert [partition for _, partition in placed] == ["events_usageevent_p2024_06"] * 3
    assert not LedgerMonth.objects.exists()
    assert ledger_horizon() is None
    # The rollups needed nothing: a full rebuild from the ledger gives what they hold.
    expected = {row.day: row.cost_microdollars for row in UsageDay.objects.filter(organization=organization)}
    usage_rollups_rebuild(organization_id=organization.pk)
    assert {row.day: row.cost_microdollars for row in UsageDay.objects.filter(organization=organization)} == expected
    assert set(cost_before) < set(expected)
    # Resends of its events are duplicates of the same ids.
    (again,) = _post(api_client, md_event("cust-1", key="m-202406-late", occurred_at=_at(old.replace(day=12))),
                     at=datetime(2024, 6, 21, tzinfo=UTC))
    assert (again["status"], again["id"]) == ("duplicate", late["id"])


def test_attach_refuses_a_month_that_is_not_detached_or_whose_table_is_gone(db, capsys):
    with pytest.raises(LedgerMonthRefused, match="not a detached month"):
        ledger_month_attach(month=date(2019, 3, 1))
    call_command("ledger_partitions", "--ensure", "2019-03")
    call_command("ledger_partitions", "--detach", "2019-03")
    call_command("ledger_partitions", "--attach", "2019-03")
    assert "attached 2019-03 again" in capsys.readouterr().out
    call_command("ledger_partitions", "--detach", "2019-03")
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE events_usageevent_p2019_03")  # archived and dropped by the operator
    with pytest.raises(CommandError, match="no longer exists"):
        call_command("ledger_partitions", "--attach", "2019-03")
