# ruff: noqa: S608  (SQL built from table names only; values are parameters)
"""The ledger's monthly partitions (migration 0012): created ahead, listed, and detached when old.

`events_usageevent` is range-partitioned on `occurred_at`, one partition per UTC month
(`events_usageevent_pYYYY_MM`), plus `events_usageevent_default`, which takes any row no month
takes (an event back-dated past the oldest partition, or far in the future), so no event is ever
refused for its date.

Ensure. `ledger_partitions_ensure` (the daily beat task `events.tasks.ensure_ledger_partitions`,
`manage.py ledger_partitions --ensure`) creates the current month's partition and the next
`LEDGER_PARTITION_MONTHS_AHEAD` ones. PostgreSQL refuses a new partition while the DEFAULT
partition holds rows of its range, so `events_ledger_month_ensure` (SQL, migration 0012) moves those
rows in the same transaction: it locks the DEFAULT partition, creates the month's table, moves the
month's rows into it, and attaches it.

Detach. `ledger_month_detach` detaches (never drops) one month's partition: its rows leave the
ledger and stay in their table for the operator to archive or drop. It refuses:
- a month that is not attached as a partition, and the DEFAULT partition;
- the current and the previous UTC month (ingest, the spending limits' sliding windows, which read
  the partial edge days from the ledger, and the usage pages read them);
- any month a registered guard holds (`events.hooks.register_ledger_month_guard`): billing holds a
  month that overlaps a draft invoice's period (an open billing period, whose late events and
  correction invoices read the ledger) and any month while a metric rollup rebuild is queued or
  running (it reads the ledger by event id).
The usage rollups keep the month's sums, so margins, budgets and the usage summaries still show it.
A detached month is recorded (`LedgerMonth`), and the usage rollups' rebuild does not reach back past
the newest one (`ledger_horizon`): it keeps the rollup rows of the days before it as they are
instead of recomputing them from a ledger that no longer holds their events. What no rebuild can
see afterwards: billing's metric rollups rebuilt after a detach count only the attached months
(finalized invoices keep their lines; a contract back-dated into a detached month would be rated
without those events), and the event list and `late_event_rows` no longer return its events.

Attach. `ledger_month_attach` undoes a detach: the month's table (kept by the detach) goes back into
the ledger with the events of that month that arrived meanwhile (they waited in DEFAULT), and its
`LedgerMonth` row is deleted, so rebuilds reach the month again. Its rows need no rollup work: the
rollups kept the month's sums, and the events that arrived meanwhile were rolled up at ingest.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .. import hooks
from ..models import LedgerMonth, UsageEvent

LEDGER = UsageEvent._meta.db_table
DEFAULT_PARTITION = f"{LEDGER}_default"


class LedgerMonthRefused(Exception):
    """The month cannot be detached (or attached): `reasons` says why."""

    def __init__(self, month: date, reasons: list[str], *, state: str = "attached"):
        self.month = month
        self.reasons = reasons
        super().__init__(f"{month:%Y-%m} stays {state}: " + "; ".join(reasons))


def month_start(day: date) -> date:
    return date(day.year, day.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """[start, end) of the UTC month holding ``month``."""
    first = month_start(month)
    following = add_months(first, 1)
    return datetime(first.year, first.month, 1, tzinfo=UTC), datetime(following.year, following.month, 1, tzinfo=UTC)


def partition_name(month: date) -> str:
    return f"{LEDGER}_p{month.year:04d}_{month.month:02d}"


@dataclass(frozen=True, slots=True)
class LedgerPartition:
    name: str
    month: date | None  # None: the DEFAULT partition
    attached: bool
    rows: int  # exact for the DEFAULT partition and detached months, the planner's estimate otherwise


def ledger_month_ensure(*, month: date) -> int | None:
    """Create the partition of ``month`` (moving its rows out of the DEFAULT partition) unless a table
    of that name exists. Returns the rows moved, or None when it existed. One transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT events_ledger_month_ensure(%s)", [month_start(month)])
        return cursor.fetchone()[0]


def ledger_partitions_ensure(*, now: datetime | None = None, months_ahead: int | None = None) -> dict[date, int]:
    """The partitions of the current UTC month and the next ``months_ahead`` (default
    LEDGER_PARTITION_MONTHS_AHEAD), each created in its own short transaction. Returns {month: rows
    moved from the DEFAULT partition} for the partitions created."""
    now = now or timezone.now()
    ahead = settings.LEDGER_PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
    current = month_start(now.astimezone(UTC).date())
    created = {}
    for count in range(ahead + 1):
        month = add_months(current, count)
        moved = ledger_month_ensure(month=month)
        if moved is not None:
            created[month] = moved
    return created


_ATTACHED_SQL = f"""
SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.reltuples::bigint
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = '{LEDGER}'::regclass
ORDER BY c.relname
"""


def ledger_partitions() -> list[LedgerPartition]:
    """The attached partitions (months in order, then the DEFAULT partition) and the detached months."""
    with connection.cursor() as cursor:
        cursor.execute(_ATTACHED_SQL)
        attached = cursor.fetchall()
        cursor.execute(f"SELECT count(*) FROM {DEFAULT_PARTITION}")
        default_rows = cursor.fetchone()[0]
    result = []
    default = None
    for name, is_default, estimate in attached:
        if is_default:
            default = LedgerPartition(name, None, True, default_rows)
            continue
        year, month = name.rsplit("_p", 1)[1].split("_")
        result.append(LedgerPartition(name, date(int(year), int(month), 1), True, max(estimate, 0)))
    result.extend(
        LedgerPartition(row.table_name, row.month, False, row.event_count)
        for row in LedgerMonth.objects.all()
    )
    result.sort(key=lambda partition: partition.month)
    if default is not None:
        result.append(default)
    return result


def ledger_horizon() -> datetime | None:
    """The end of the newest detached month: the ledger is complete from there on (None: nothing was
    ever detached, the ledger holds everything)."""
    newest = LedgerMonth.objects.order_by("-month").values_list("month", flat=True).first()
    return None if newest is None else month_bounds(newest)[1]


def ledger_month_detach(*, month: date, now: datetime | None = None) -> LedgerMonth:
    """Detach the partition of ``month`` from the ledger (see the module docstring for what is
    refused and why); the table is kept. Raises LedgerMonthRefused."""
    month = month_start(month)
    now = now or timezone.now()
    start, end = month_bounds(month)
    name = partition_name(month)
    current = month_start(now.astimezone(UTC).date())
    reasons = []
    if month >= add_months(current, -1):
        reasons.append("the current and the previous month stay attached")
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_inherits WHERE inhparent = %s::regclass AND inhrelid = to_regclass(%s)",
                [LEDGER, name],
            )
            if cursor.fetchone() is None:
                reasons.append(f"no partition {name} is attached to the ledger")
        reasons.extend(hooks.ledger_month_holds(start=start, end=end))
        if reasons:
            raise LedgerMonthRefused(month, reasons)
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE {LEDGER} DETACH PARTITION "{name}"')
        record = LedgerMonth.objects.create(month=month, table_name=name, event_count=0, detached_at=now)
    # Counted once the detach has committed: DETACH holds the whole ledger ACCESS EXCLUSIVE (every
    # organization's ingest waits) until then, and a month's count is a scan of the whole table.
    # Nothing writes to the detached table, so the count is exact.
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{name}"')
        record.event_count = cursor.fetchone()[0]
    LedgerMonth.objects.filter(pk=record.pk).update(event_count=record.event_count)
    return record


def ledger_month_attach(*, month: date) -> int:
    """Attach a detached month's table to the ledger again (see the module docstring). Returns the
    events of the month moved in from the DEFAULT partition. Raises LedgerMonthRefused when the month
    is not a detached one or its table is gone (archived and dropped).

    The table's rows are checked against the month by a CHECK constraint added first (a scan of the
    detached table, which nothing else uses), so the ATTACH itself does not scan it: the ledger is
    held SHARE UPDATE EXCLUSIVE (ingest goes on) and DEFAULT exclusively for the short move."""
    month = month_start(month)
    start, end = month_bounds(month)
    record = LedgerMonth.objects.filter(month=month).first()
    if record is None:
        reason = f"it is not a detached month (no {partition_name(month)} recorded)"
        raise LedgerMonthRefused(month, [reason], state="detached")
    name = record.table_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        if cursor.fetchone()[0] is None:
            raise LedgerMonthRefused(month, [f"its table {name} no longer exists"], state="detached")
    check = f"{name}_month"
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT IF EXISTS "{check}"')  # a stopped attach's
        cursor.execute(
            f'ALTER TABLE "{name}" ADD CONSTRAINT "{check}" CHECK (occurred_at >= %s AND occurred_at < %s)',
            [start, end],
        )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {DEFAULT_PARTITION} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE occurred_at >= %s AND occurred_at < %s "
            f'RETURNING *) INSERT INTO "{name}" SELECT * FROM moved',
            [start, end],
        )
        moved = cursor.rowcount
        cursor.execute(f'ALTER TABLE {LEDGER} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)', [start, end])
        cursor.execute(f'ALTER TABLE "{name}" DROP CONSTRAINT "{check}"')
        record.delete()
    return moved
