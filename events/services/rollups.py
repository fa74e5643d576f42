# ruff: noqa: S608  (SQL built from table names only; values are parameters)
"""Usage rollups (events.models.UsageDay, ModelUsageDay, OrganizationUsageDay): kept by ingest,
rebuilt from the ledger here.

Ingest. The rollups are upserted by the same statement that inserts the events (data-modifying CTEs
over the rows it just inserted, `ROLLUP_CTES` below, appended to ingest's write statement): no extra
round trip, and they commit or roll back with the events. Each upsert is one `INSERT … SELECT …
GROUP BY … ORDER BY <key> ON CONFLICT DO UPDATE`: grouped, so no row is hit twice by one statement,
and in key order, so two batches touching the same rows lock them in the same order and cannot
deadlock (every ingest runs the CTEs in the same order too).

Days are UTC dates of `occurred_at`. Reads that need a window starting inside a day combine whole
days from the rollups with the partial edge days read from the ledger (events.selectors).

Rebuild. `usage_rollups_rebuild` recomputes an organization's rollups from the ledger in slices of
at most `REBUILD_SLICE_EVENTS` events (whole customers together, or one big customer's range of
days), each slice in its own transaction under the organization's exclusive ledger lock (so no
ingest adds to those customers meanwhile, and ingest waits for one slice at a time, never for the
whole rebuild); the organization-level rows are then summed from the customer rows, in one more
short slice. Once a month of the ledger was detached (events.services.partitions), a rebuild
recomputes only the days from the ledger's horizon on and keeps the rows before it: their events
are no longer in the ledger, and the rollups are what still holds their sums.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

from django.db import connection, transaction

from ..locks import ledger_lock_exclusive
from ..models import BudgetPendingCustomer, Customer, ModelUsageDay, OrganizationUsageDay, UsageDay
from .partitions import ledger_horizon

USAGE_DAY = UsageDay._meta.db_table
MODEL_USAGE_DAY = ModelUsageDay._meta.db_table
ORGANIZATION_USAGE_DAY = OrganizationUsageDay._meta.db_table
BUDGET_PENDING = BudgetPendingCustomer._meta.db_table

# What ingest's write statement RETURNs from its `new_events` and `new_calls` CTEs for these.
NEW_EVENT_COLUMNS = "id, idempotency_key, customer_id, event_type, occurred_at, cost_microdollars, revenue_microdollars"
NEW_CALL_COLUMNS = "event_id, model, cost_microdollars, input_tokens, output_tokens, cached_input_tokens"

# An organization day's upsert adds to the shard's row (ingest's sums, a deleted customer's negated ones).
_ADD_TO_ORGANIZATION_DAY = """ON CONFLICT (organization_id, day, event_type, shard) DO UPDATE SET
        event_count = r.event_count + EXCLUDED.event_count,
        cost_microdollars = r.cost_microdollars + EXCLUDED.cost_microdollars,
        revenue_microdollars = r.revenue_microdollars + EXCLUDED.revenue_microdollars"""

# Appended to ingest's WITH clause, after `new_events` and `new_calls`. `%(watched)s`: whether the
# organization has an enabled budget or a block source (ingest's first round trip says so); only
# then are the customers queued for the next budget evaluation.
ROLLUP_CTES = f"""
, usage_days AS (
    INSERT INTO {USAGE_DAY} AS r (organization_id, customer_id, day, event_type, event_count, cost_microdollars,
        revenue_microdollars)
    SELECT %(organization)s, customer_id, (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*),
        sum(cost_microdollars), sum(revenue_microdollars)
    FROM new_events GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (organization_id, customer_id, day, event_type) DO UPDATE SET
        event_count = r.event_count + EXCLUDED.event_count,
        cost_microdollars = r.cost_microdollars + EXCLUDED.cost_microdollars,
        revenue_microdollars = r.revenue_microdollars + EXCLUDED.revenue_microdollars
), model_days AS (
    INSERT INTO {MODEL_USAGE_DAY} AS r (organization_id, customer_id, day, model, request_count, cost_microdollars,
        input_tokens, output_tokens, cached_input_tokens)
    SELECT %(organization)s, e.customer_id, (e.occurred_at AT TIME ZONE 'UTC')::date, c.model, count(*),
        coalesce(sum(c.cost_microdollars), 0), sum(c.input_tokens), sum(c.output_tokens), sum(c.cached_input_tokens)
    FROM new_calls c JOIN new_events e ON e.id = c.event_id GROUP BY 2, 3, 4 ORDER BY 2, 3, 4
    ON CONFLICT (organization_id, customer_id, day, model) DO UPDATE SET
        request_count = r.request_count + EXCLUDED.request_count,
        cost_microdollars = r.cost_microdollars + EXCLUDED.cost_microdollars,
        input_tokens = r.input_tokens + EXCLUDED.input_tokens,
        output_tokens = r.output_tokens + EXCLUDED.output_tokens,
        cached_input_tokens = r.cached_input_tokens + EXCLUDED.cached_input_tokens
), organization_days AS (
    INSERT INTO {ORGANIZATION_USAGE_DAY} AS r (organization_id, day, event_type, shard, event_count,
        cost_microdollars, revenue_microdollars)
    SELECT %(organization)s, (occurred_at AT TIME ZONE 'UTC')::date, event_type,
        pg_backend_pid() %% {OrganizationUsageDay.ORGANIZATION_SHARDS}, count(*), sum(cost_microdollars),
        sum(revenue_microdollars)
    FROM new_events GROUP BY 2, 3 ORDER BY 2, 3
    {_ADD_TO_ORGANIZATION_DAY}
), budget_pending AS (
    INSERT INTO {BUDGET_PENDING} (organization_id, customer_id)
    SELECT DISTINCT %(organization)s::uuid, customer_id FROM new_events WHERE %(watched)s ORDER BY 2
    ON CONFLICT (organization_id, customer_id) DO NOTHING
)
"""


# --- Rebuild -------------------------------------------------------------------------------------

# Two statements: deleting and inserting the same keys in one statement is not allowed. `{days}` /
# `{events}`: the slice's day range (nothing for a slice of whole customers), bounded below by the
# ledger's horizon (the end of the newest detached month, events.services.partitions): rollup days
# before it are kept, not recomputed.
_DELETE_CUSTOMERS_SQL = f"""
WITH gone_days AS (
    DELETE FROM {USAGE_DAY} WHERE organization_id = %(organization)s AND customer_id = ANY(%(customers)s){{days}}
)
DELETE FROM {MODEL_USAGE_DAY} WHERE organization_id = %(organization)s AND customer_id = ANY(%(customers)s){{days}}
"""
_INSERT_CUSTOMERS_SQL = f"""
WITH days AS (
    INSERT INTO {USAGE_DAY} (organization_id, customer_id, day, event_type, event_count, cost_microdollars,
        revenue_microdollars)
    SELECT organization_id, customer_id, (occurred_at AT TIME ZONE 'UTC')::date, event_type, count(*),
        sum(cost_microdollars), sum(revenue_microdollars)
    FROM events_usageevent WHERE organization_id = %(organization)s AND customer_id = ANY(%(customers)s){{events}}
    GROUP BY 1, 2, 3, 4
)
INSERT INTO {MODEL_USAGE_DAY} (organization_id, customer_id, day, model, request_count, cost_microdollars,
    input_tokens, output_tokens, cached_input_tokens)
SELECT e.organization_id, e.customer_id, (e.occurred_at AT TIME ZONE 'UTC')::date, c.model, count(*),
    coalesce(sum(c.cost_microdollars), 0), sum(c.input_tokens), sum(c.output_tokens), sum(c.cached_input_tokens)
FROM events_usageevent e JOIN events_vendorresponse c ON c.event_id = e.id
WHERE e.organization_id = %(organization)s AND e.customer_id = ANY(%(customers)s){{events_e}}
GROUP BY 1, 2, 3, 4
"""

_REBUILD_ORGANIZATION_SQL = f"DELETE FROM {ORGANIZATION_USAGE_DAY} WHERE organization_id = %(organization)s"
_SUM_ORGANIZATION_SQL = f"""
INSERT INTO {ORGANIZATION_USAGE_DAY} (organization_id, day, event_type, shard, event_count, cost_microdollars,
    revenue_microdollars)
SELECT organization_id, day, event_type, 0, sum(event_count), sum(cost_microdollars), sum(revenue_microdollars)
FROM {USAGE_DAY} WHERE organization_id = %(organization)s GROUP BY 1, 2, 3
"""

# The plan's reads, without any lock (a count is only a slice's weight; every slice reads the
# ledger again under the lock). `{since}`: the horizon bound, or nothing.
_EVENTS_PER_CUSTOMER_SQL = (
    "SELECT customer_id, count(*) FROM events_usageevent WHERE organization_id = %(organization)s{since} "
    "GROUP BY 1"
)
_EVENTS_PER_DAY_SQL = (
    "SELECT (occurred_at AT TIME ZONE 'UTC')::date, count(*) FROM events_usageevent "
    "WHERE organization_id = %(organization)s AND customer_id = %(customer)s{since} GROUP BY 1 ORDER BY 1"
)

REBUILD_SLICE_CUSTOMERS = 500
REBUILD_SLICE_EVENTS = 100_000


@dataclass(frozen=True, slots=True)
class RebuildSlice:
    """Customers whose rollup rows on the days [day_from, day_to) are recomputed in one transaction
    (None: no bound on that side). A slice of several customers takes all their days."""

    customers: tuple[int, ...]
    day_from: date | None = None
    day_to: date | None = None


def rebuild_slices(
    customer_ids: Sequence[int],
    events_per_customer: Mapping[int, int],
    events_per_day: Callable[[int], Sequence[tuple[date, int]]],
    *,
    max_events: int = REBUILD_SLICE_EVENTS,
    max_customers: int = REBUILD_SLICE_CUSTOMERS,
) -> list[RebuildSlice]:
    """The rebuild's slices, in customer order: whole customers together while their events stay
    within ``max_events`` (and at most ``max_customers`` of them); a customer with more events
    alone, in ranges of days of at most ``max_events`` each (one day is never split: its rollup row
    is one). A customer's ranges tile every day, the first one open below and the last one open
    above, so a rollup row on a day without events is deleted as a whole customer's would be.
    ``events_per_day(customer)``: that customer's (day, events), by day, asked only for the big ones."""
    slices: list[RebuildSlice] = []
    batch: list[int] = []
    weight = 0
    for customer in customer_ids:
        events = events_per_customer.get(customer, 0)
        if events > max_events:
            if batch:
                slices.append(RebuildSlice(tuple(batch)))
                batch, weight = [], 0
            slices.extend(_day_ranges(customer, events_per_day(customer), max_events))
            continue
        if batch and (weight + events > max_events or len(batch) >= max_customers):
            slices.append(RebuildSlice(tuple(batch)))
            batch, weight = [], 0
        batch.append(customer)
        weight += events
    if batch:
        slices.append(RebuildSlice(tuple(batch)))
    return slices


def _day_ranges(customer: int, days: Sequence[tuple[date, int]], max_events: int) -> list[RebuildSlice]:
    starts: list[date | None] = [None]
    weight = 0
    for day, events in days:
        if weight and weight + events > max_events:
            starts.append(day)
            weight = 0
        weight += events
    ends = [*starts[1:], None]
    return [RebuildSlice((customer,), start, end) for start, end in zip(starts, ends, strict=True)]


def usage_rollups_rebuild(
    *,
    organization_id,
    max_events: int = REBUILD_SLICE_EVENTS,
    max_customers: int = REBUILD_SLICE_CUSTOMERS,
    after_slice: Callable[[RebuildSlice], None] | None = None,
    analyze: bool = True,
) -> int:
    """Recompute the organization's usage rollups from the ledger. Returns the number of customers.

    Idempotent. Each slice (`rebuild_slices`: at most ``max_events`` events of the ledger, except a
    single customer's day with more) and the final organization-level sum are one transaction each,
    holding the organization's ledger lock exclusively: ingest of the organization waits for one
    slice at a time, however large the organization or one of its customers. A slice is exact for
    its customers and days (no ingest runs while it reads the ledger, and every later ingest adds
    to what it wrote); the organization rows are summed last, from the customer rows, under the
    lock again. ``after_slice(slice)``: called after each committed slice (tests interleave ingest).
    ``analyze``: refresh the rollup tables' statistics at the end (`usage_rollups_analyze`; a caller
    rebuilding many organizations does it once after the last)."""
    customer_ids = list(Customer.objects.filter(organization_id=organization_id).order_by("pk").values_list(
        "pk", flat=True
    ))
    horizon = ledger_horizon()
    since = "" if horizon is None else " AND occurred_at >= %(horizon)s"
    plan_params = {"organization": organization_id, "horizon": horizon}
    with connection.cursor() as cursor:
        cursor.execute(_EVENTS_PER_CUSTOMER_SQL.format(since=since), plan_params)
        events_per_customer = dict(cursor.fetchall())

    def events_per_day(customer: int) -> list[tuple[date, int]]:
        with connection.cursor() as cursor:
            cursor.execute(_EVENTS_PER_DAY_SQL.format(since=since), {**plan_params, "customer": customer})
            return cursor.fetchall()

    for part in rebuild_slices(
        customer_ids, events_per_customer, events_per_day, max_events=max_events, max_customers=max_customers
    ):
        _rebuild_slice(organization_id, part, horizon)
        if after_slice is not None:
            after_slice(part)
    with transaction.atomic():
        ledger_lock_exclusive(organization_id)
        with connection.cursor() as cursor:
            cursor.execute(_REBUILD_ORGANIZATION_SQL, {"organization": organization_id})
            cursor.execute(_SUM_ORGANIZATION_SQL, {"organization": organization_id})
    if analyze:
        usage_rollups_analyze()
    return len(customer_ids)


_ANALYZE_SQL = f"ANALYZE {USAGE_DAY}, {MODEL_USAGE_DAY}, {ORGANIZATION_USAGE_DAY}"


def usage_rollups_analyze() -> None:
    """Refresh the planner's statistics of the rollup tables. A rebuild rewrites them wholesale, long
    before autovacuum samples them again: without statistics, the prepared generic plan of the
    budget evaluation's per-customer read chose the (organization, day) index and scanned the whole
    month once per customer (6.6x a batch after a fresh load, instead of 2.3x)."""
    with connection.cursor() as cursor:
        cursor.execute(_ANALYZE_SQL)


def _rebuild_slice(organization_id, part: RebuildSlice, horizon: datetime | None) -> None:
    """One slice's transaction: delete its rollup rows on its days (from the horizon on), insert
    them again from the ledger."""
    day_from = part.day_from
    if horizon is not None and (day_from is None or day_from < horizon.date()):
        day_from = horizon.date()  # a month boundary: the days before it are kept
    days, events, events_e = [], [], []
    params = {"organization": organization_id, "customers": list(part.customers)}
    for bound, operator, value in (("from", ">=", day_from), ("to", "<", part.day_to)):
        if value is None:
            continue
        params[f"day_{bound}"] = value
        params[f"at_{bound}"] = datetime.combine(value, time.min, tzinfo=UTC)
        days.append(f" AND day {operator} %(day_{bound})s")
        events.append(f" AND occurred_at {operator} %(at_{bound})s")
        events_e.append(f" AND e.occurred_at {operator} %(at_{bound})s")
    with transaction.atomic():
        ledger_lock_exclusive(organization_id)
        with connection.cursor() as cursor:
            cursor.execute(_DELETE_CUSTOMERS_SQL.format(days="".join(days)), params)
            cursor.execute(_INSERT_CUSTOMERS_SQL.format(events="".join(events), events_e="".join(events_e)), params)


_FORGET_CUSTOMER_SQL = f"""
INSERT INTO {ORGANIZATION_USAGE_DAY} AS r (organization_id, day, event_type, shard, event_count,
    cost_microdollars, revenue_microdollars)
SELECT %(organization)s, day, event_type, 0, -sum(event_count), -sum(cost_microdollars), -sum(revenue_microdollars)
FROM {USAGE_DAY} WHERE organization_id = %(organization)s AND customer_id = %(customer)s
GROUP BY 2, 3 ORDER BY 2, 3
{_ADD_TO_ORGANIZATION_DAY}
"""


def customer_usage_forget(*, organization_id, customer_id: int) -> None:
    """Take a customer's usage out of the organization-level rollups (its own rows and events are
    deleted with it, by Django's cascade). The caller holds the organization's ledger lock
    exclusively (the customer's pre_delete receiver), so no ingest changes these rows meanwhile."""
    with connection.cursor() as cursor:
        cursor.execute(_FORGET_CUSTOMER_SQL, {"organization": organization_id, "customer": customer_id})
