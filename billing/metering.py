"""Usage pre-aggregation: the ingest hook, the per-organization metric cache and the rollup backfill.

Inside the ingest transaction (events calls `aggregate_usage` for the newly stored events), every
event is measured against every billable metric of its organization and the contributions are
upserted, set-based, into hourly rollups (`UsageRollup`: sum, count, max, latest; and
`UniqueValueRollup` for UNIQUE metrics). Rollups commit or roll back with the events, so an
invoice computed from rollups never misses or double-counts an event.

Billing hour. An event is rolled up in the hour it occurred, unless that hour lies in a period the
customer has already been invoiced for (an invoice that is no longer a draft); then it is rolled
up in the hour it arrived, so it lands on the current draft instead of changing a closed invoice.

Locks. Each ingest transaction holds the organization's ledger lock (events.locks) shared, taken
before the metric list and the customers' closed periods are read; finalizing an invoice, starting
a rebuild of a metric's rollups and creating a contract take it exclusively. So a finalization sees
every event whose ingest started before it, and an ingest that starts after it sees the closed
period.

Rebuilds (`RollupRebuild`, after a metric is created or changed) hold the exclusive lock only to
start: clear the metric's rollups and note the watermark (the newest event id). Events after it are
rolled up by ingest with the new definition (it reads the metric list after its shared lock);
events up to it by the rebuild, in chunks of one transaction each under the shared lock, each
recording how far it got. Rollup upserts add up in any order, so ingest and a rebuild write the
same rows side by side: nothing is lost or counted twice. While a rebuild runs, drafts keep their
lines and are not finalized; they are recomputed when it is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

import orjson
from django.db import connection, transaction
from django.utils import timezone

from accounts.tasking import enqueue_on_commit
from events import selectors as event_selectors
from events.hooks import RecordedEvent
from events.locks import ledger_lock_exclusive, ledger_lock_shared

from . import meterable, rating
from .definitions import metric_definition
from .models import BillableMetric, Contract, Invoice, RollupRebuild, UniqueValueRollup, UsageRollup
from .recompute import queue_draft_recompute, schedule_drafts_recompute


def hour_floor(instant: datetime) -> datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


# --- Locks ---------------------------------------------------------------------------------------


def lock_organization_exclusive(organization_id) -> None:
    """The ledger lock (events.locks), exclusively: running ingests of the organization commit first."""
    ledger_lock_exclusive(organization_id)


# --- Metric cache --------------------------------------------------------------------------------


FINGERPRINT_SQL = "SELECT count(*), max(updated_at) FROM billing_billablemetric WHERE organization_id = %s"


class MetricCache:
    """The compiled billable metrics of each organization, reloaded when they change.

    Validity is checked with one cheap query per ingest batch: the count of the organization's
    metrics and their latest `updated_at` (every create, edit and delete changes one of them).
    """

    def __init__(self):
        self._entries: dict[str, tuple[tuple, list[rating.MetricDefinition]]] = {}
        self._lock = threading.Lock()

    def for_organization(self, organization_id, *, fingerprint: tuple | None = None) -> list[rating.MetricDefinition]:
        """`fingerprint`: the row of `FINGERPRINT_SQL` when the caller already read it."""
        if fingerprint is None:
            with connection.cursor() as cursor:
                cursor.execute(FINGERPRINT_SQL, [organization_id])
                fingerprint = tuple(cursor.fetchone())
        key = str(organization_id)
        cached = self._entries.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        rows = BillableMetric.objects.filter(organization_id=organization_id)
        metrics = [metric_definition(metric) for metric in rows]
        with self._lock:
            self._entries[key] = (fingerprint, metrics)
        return metrics

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


metric_cache = MetricCache()


# --- Accumulation (pure over the measured events) ------------------------------------------------

RollupKey = tuple[int, object, datetime, rating.Group]  # customer id, metric id, billing hour, group


@dataclass
class Accumulated:
    partials: dict[RollupKey, rating.Partial] = field(default_factory=dict)
    distinct: set[tuple[RollupKey, str]] = field(default_factory=set)
    matched: int = 0


def accumulate(
    metrics: Sequence[rating.MetricDefinition], events: Iterable[RecordedEvent], billing_hour
) -> Accumulated:
    """Measure ``events`` against ``metrics`` and merge the contributions per rollup key.

    Each metric reads the metering fields (billing.meterable): once per event, or once per model
    call when it names a model-call field. ``billing_hour(customer_id, occurred_at, received_at)``
    gives the hour each event is billed in.
    """
    result = Accumulated()
    for event in events:
        hour = None
        base = calls = None
        for metric in metrics:
            if metric.event_types_in is not None and event.event_type not in metric.event_types_in:
                continue
            if base is None:
                base = meterable.event_record(event)
            if metric.per_call:
                if calls is None:
                    calls = meterable.call_records(event, base)
                records = calls
            else:
                records = (base,)
            for record in records:
                measurement = rating.measure(metric, event_type=event.event_type, properties=record)
                if measurement is None:
                    continue
                if hour is None:
                    hour = billing_hour(event.customer_id, event.occurred_at, event.received_at)
                key = (event.customer_id, metric.id, hour, measurement.group)
                # Tokens of the model call measured (a property of the same name on an event without calls is not one)
                tokens = record["input_tokens"] + record["output_tokens"] if metric.per_call and event.calls else 0
                contribution = rating.Partial.of(measurement.value, at=event.occurred_at, seq=event.id, tokens=tokens)
                current = result.partials.get(key)
                result.partials[key] = contribution if current is None else current.merge(contribution)
                if measurement.distinct is not None:
                    result.distinct.add((key, measurement.distinct))
                result.matched += 1
    return result


def _group_json(group: rating.Group) -> str:
    return orjson.dumps(dict(group)).decode()


_UPSERT_ROLLUPS = """
INSERT INTO billing_usagerollup AS r (
    organization_id, customer_id, metric_id, group_values, hour,
    total, event_count, maximum, latest_value, latest_at, latest_event_id, tokens
)
SELECT %s, c, m, g::jsonb, h, t, n, mx, lv, la, le, tk
FROM unnest(%s::bigint[], %s::uuid[], %s::text[], %s::timestamptz[], %s::numeric[], %s::bigint[],
            %s::numeric[], %s::numeric[], %s::timestamptz[], %s::bigint[], %s::bigint[])
     AS u(c, m, g, h, t, n, mx, lv, la, le, tk)
ON CONFLICT ON CONSTRAINT usage_rollup_key DO UPDATE SET
    total = r.total + EXCLUDED.total,
    tokens = r.tokens + EXCLUDED.tokens,
    event_count = r.event_count + EXCLUDED.event_count,
    maximum = GREATEST(r.maximum, EXCLUDED.maximum),
    latest_value = CASE WHEN (EXCLUDED.latest_at, EXCLUDED.latest_event_id) >= (r.latest_at, r.latest_event_id)
                        THEN EXCLUDED.latest_value ELSE r.latest_value END,
    latest_event_id = CASE WHEN (EXCLUDED.latest_at, EXCLUDED.latest_event_id) >= (r.latest_at, r.latest_event_id)
                           THEN EXCLUDED.latest_event_id ELSE r.latest_event_id END,
    latest_at = GREATEST(r.latest_at, EXCLUDED.latest_at)
"""

_INSERT_DISTINCT = """
INSERT INTO billing_uniquevaluerollup (organization_id, customer_id, metric_id, group_values, hour, value)
SELECT %s, c, m, g::jsonb, h, v
FROM unnest(%s::bigint[], %s::uuid[], %s::text[], %s::timestamptz[], %s::text[]) AS u(c, m, g, h, v)
ON CONFLICT ON CONSTRAINT unique_value_rollup_key DO NOTHING
"""


def store(organization_id, accumulated: Accumulated) -> None:
    """Upsert accumulated partials in key order (a fixed lock order, so concurrent batches cannot deadlock)."""
    if accumulated.partials:
        columns: list[list] = [[] for _ in range(11)]
        rows = sorted(
            (
                ((customer_id, str(metric_id), hour, _group_json(group)), metric_id, partial)
                for (customer_id, metric_id, hour, group), partial in accumulated.partials.items()
            ),
            key=lambda row: row[0],
        )
        for (customer_id, _, hour, group_text), metric_id, partial in rows:
            values = (
                customer_id,
                metric_id,
                group_text,
                hour,
                partial.total,
                partial.count,
                partial.maximum,
                partial.latest_value,
                partial.latest_at,
                partial.latest_seq,
                partial.tokens,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT_ROLLUPS, [organization_id, *columns])
    if accumulated.distinct:
        columns = [[] for _ in range(5)]
        items = sorted(
            (
                ((customer_id, str(metric_id), hour, _group_json(group)), value, metric_id)
                for (customer_id, metric_id, hour, group), value in accumulated.distinct
            ),
            key=lambda item: item[:2],
        )
        for (customer_id, _, hour, group_text), value, metric_id in items:
            for column, item in zip(columns, (customer_id, metric_id, group_text, hour, value), strict=True):
                column.append(item)
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_DISTINCT, [organization_id, *columns])


# --- Closed periods ------------------------------------------------------------------------------


def closed_through(customer_ids: Iterable[int]) -> dict[int, datetime]:
    """Per customer, the end of the latest period invoiced with a non-draft invoice."""
    ids = sorted(set(customer_ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT customer_id, max(period_end) FROM billing_invoice "
            "WHERE customer_id = ANY(%s) AND status <> %s AND kind = %s GROUP BY customer_id",
            [ids, Invoice.Status.DRAFT, Invoice.Kind.REGULAR],
        )
        return dict(cursor.fetchall())


def billing_hour_rule(closed_at):
    """The billing-hour rule: the event's hour, or its arrival hour when its hour was already invoiced.

    ``closed_at(customer_id, received_at)`` is the end of the customer's invoiced periods at arrival.
    """

    def billing_hour(customer_id: int, occurred_at: datetime, received_at: datetime | None) -> datetime:
        hour = hour_floor(occurred_at)
        boundary = closed_at(customer_id, received_at)
        if boundary is not None and hour < boundary:
            return max(hour_floor(received_at or timezone.now()), boundary)
        return hour

    return billing_hour


# --- The ingest hook -----------------------------------------------------------------------------


# Run by ingest in its first round trip (events.hooks prelude), after it took the ledger lock
# shared: the metric cache's fingerprint and whether the organization has any contract (so a batch
# of an organization without contracts has no drafts to recompute and asks nothing more).
INGEST_PRELUDE = (
    f"SELECT f.*, EXISTS (SELECT 1 FROM {Contract._meta.db_table} WHERE organization_id = %(organization)s) "  # noqa: S608
    f"FROM ({FINGERPRINT_SQL.replace('%s', '%(organization)s')}) AS f",
)


def aggregate_usage(*, organization, events: Sequence[RecordedEvent], prelude=None) -> None:
    """Ingest hook: roll up ``events`` (newly stored, inside the ingest transaction) and, once that
    transaction commits, queue the recompute of the drafts of those customers that have a contract.

    ``prelude``: the rows of INGEST_PRELUDE, which ingest ran in this transaction (None: read here)."""
    if not events:
        return
    if prelude is None:
        prelude = _run_prelude(organization.pk)
    ((*fingerprint, has_contracts),) = prelude[0]
    if has_contracts:
        customer_ids = sorted({event.customer_id for event in events})
        transaction.on_commit(partial(queue_draft_recompute, customer_ids=customer_ids), robust=True)
    metrics = metric_cache.for_organization(organization.pk, fingerprint=tuple(fingerprint))
    if not metrics:
        return
    closed = closed_through(event.customer_id for event in events)
    rule = billing_hour_rule(lambda customer_id, received_at: closed.get(customer_id))
    store(organization.pk, accumulate(metrics, events, rule))


def _run_prelude(organization_id) -> list[list[tuple]]:
    """INGEST_PRELUDE's rows, statement by statement (each with its own snapshot, as ingest runs them),
    after the ledger lock, as ingest takes it."""
    ledger_lock_shared(organization_id)
    rows = []
    with connection.cursor() as cursor:
        for statement in INGEST_PRELUDE:
            cursor.execute(statement, {"organization": organization_id})
            rows.append(cursor.fetchall())
    return rows


# --- Backfill ------------------------------------------------------------------------------------

REBUILD_TASK = "billing.tasks.rebuild_metric_rollups"


def rollup_rebuild_queue(*, metric: BillableMetric) -> None:
    """Rebuild the metric's rollups from the ledger in the background, once this transaction commits."""
    enqueue_on_commit(REBUILD_TASK, args=[str(metric.pk)])


def rebuild_running(organization_id) -> bool:
    """Whether a rollup rebuild of the organization has started and not finished (rollups incomplete)."""
    active = (RollupRebuild.Status.QUEUED, RollupRebuild.Status.RUNNING)
    return RollupRebuild.objects.filter(organization_id=organization_id, status__in=active).exists()


def ledger_month_holds(*, start: datetime, end: datetime) -> list[str]:
    """Why billing needs the ledger's month [start, end) attached (events' ledger month guard):
    draft invoices whose period overlaps it (open billing periods: their late events and correction
    invoices are read from the ledger), and any metric rollup rebuild queued or running (it reads the
    ledger by event id; one started after the detach counts only the attached months)."""
    reasons = []
    drafts = Invoice.objects.filter(status=Invoice.Status.DRAFT, period_start__lt=end, period_end__gt=start)
    count = drafts.count()
    if count:
        reasons.append(f"{count} draft invoice(s) have a billing period in this month")
    active = (RollupRebuild.Status.QUEUED, RollupRebuild.Status.RUNNING)
    rebuilds = RollupRebuild.objects.filter(status__in=active).count()
    if rebuilds:
        reasons.append(f"{rebuilds} metric rollup rebuild(s) are queued or running")
    return reasons


def metric_rollups_rebuild(*, metric: BillableMetric, batch_size: int = 1000, after_chunk=None) -> int:
    """Rebuild one metric's rollups from the ledger now (the task, the command). Returns matched measurements."""
    rebuild = RollupRebuild.objects.create(organization_id=metric.organization_id, metric=metric)
    return rollup_rebuild_run(rebuild_id=rebuild.pk, batch_size=batch_size, after_chunk=after_chunk).matched


def rollup_rebuild_run(*, rebuild_id, batch_size: int = 1000, after_chunk=None) -> RollupRebuild | None:
    """Run (or resume) a queued rebuild; see RollupRebuild for why ingest never waits for all of it.

    Late events (arrived after their period was invoiced) go to their arrival hour, as they did at
    ingest. ``after_chunk(rebuild)``: called after each committed chunk (tests interleave ingest).
    When done, the organization's drafts are recomputed."""
    rebuild = _rebuild_begin(rebuild_id)
    if rebuild is None or rebuild.status != RollupRebuild.Status.RUNNING:
        return rebuild
    organization_id = rebuild.organization_id
    definition = metric_definition(rebuild.metric)
    if not rebuild.events_total and rebuild.watermark_event_id:
        total = event_selectors.event_count(
            organization=organization_id, event_types=definition.event_types_in, through_id=rebuild.watermark_event_id
        )
        RollupRebuild.objects.filter(pk=rebuild.pk).update(events_total=total)
    while True:
        with transaction.atomic():
            ledger_lock_shared(organization_id)  # a finalization or a newer rebuild's start waits for this chunk
            rebuild = RollupRebuild.objects.select_for_update().get(pk=rebuild.pk)
            if rebuild.status != RollupRebuild.Status.RUNNING:
                return rebuild  # superseded by a newer rebuild of the metric (or finished by another worker)
            events = event_selectors.metered_event_rows(
                organization=organization_id,
                event_types=definition.event_types_in,
                after_id=rebuild.last_event_id,
                through_id=rebuild.watermark_event_id,
                limit=batch_size,
            )
            if not events:
                rebuild.status = RollupRebuild.Status.DONE
                rebuild.finished_at = timezone.now()
                rebuild.save(update_fields=["status", "finished_at"])
                transaction.on_commit(partial(_recompute_drafts, organization_id), robust=True)
                return rebuild
            closings = _closings(organization_id)
            rule = billing_hour_rule(
                lambda customer_id, received_at, closings=closings: _closed_at(
                    closings.get(customer_id, ()), received_at
                )
            )
            accumulated = accumulate([definition], events, rule)
            store(organization_id, accumulated)
            rebuild.last_event_id = events[-1].id
            rebuild.events_done += len(events)
            rebuild.matched += accumulated.matched
            rebuild.save(update_fields=["last_event_id", "events_done", "matched"])
        if after_chunk is not None:
            after_chunk(rebuild)


@transaction.atomic
def _rebuild_begin(rebuild_id) -> RollupRebuild | None:
    """Start a queued rebuild: under the exclusive ledger lock (held for this short transaction
    only), supersede older rebuilds of the metric, clear its rollups and note the watermark."""
    rebuild = RollupRebuild.objects.filter(pk=rebuild_id).select_related("metric").first()
    if rebuild is None or rebuild.status != RollupRebuild.Status.QUEUED:
        return rebuild  # running: resumed from last_event_id; done or superseded: nothing to do
    lock_organization_exclusive(rebuild.organization_id)
    rebuild = RollupRebuild.objects.select_for_update().select_related("metric").get(pk=rebuild_id)
    if rebuild.status != RollupRebuild.Status.QUEUED:
        return rebuild
    now = timezone.now()
    later = RollupRebuild.objects.filter(metric_id=rebuild.metric_id, pk__gt=rebuild.pk)
    if later.exists():  # a newer rebuild of the metric will do it with its newer definition
        rebuild.status, rebuild.finished_at = RollupRebuild.Status.SUPERSEDED, now
        rebuild.save(update_fields=["status", "finished_at"])
        return rebuild
    RollupRebuild.objects.filter(
        metric_id=rebuild.metric_id,
        pk__lt=rebuild.pk,
        status__in=[RollupRebuild.Status.QUEUED, RollupRebuild.Status.RUNNING],
    ).update(status=RollupRebuild.Status.SUPERSEDED, finished_at=now)
    UsageRollup.objects.filter(metric_id=rebuild.metric_id).delete()
    UniqueValueRollup.objects.filter(metric_id=rebuild.metric_id).delete()
    rebuild.watermark_event_id = event_selectors.latest_event_id(organization=rebuild.organization_id)
    rebuild.status, rebuild.started_at = RollupRebuild.Status.RUNNING, now
    rebuild.save(update_fields=["watermark_event_id", "status", "started_at"])
    return rebuild


def _recompute_drafts(organization_id) -> None:
    """After a rebuild: every draft of the organization, from the complete rollups."""
    if rebuild_running(organization_id):
        return  # another rebuild is still filling rollups; it recomputes when it is done
    schedule_drafts_recompute(
        sorted(
            Invoice.objects.filter(organization_id=organization_id, status=Invoice.Status.DRAFT)
            .values_list("customer_id", flat=True)
            .distinct()
        )
    )


def _closings(organization_id) -> dict[int, list[tuple[datetime, datetime]]]:
    """Per customer: (finalized_at, period_end) of its closed invoices, in finalization order."""
    result: dict[int, list[tuple[datetime, datetime]]] = {}
    rows = (
        Invoice.objects.filter(organization_id=organization_id, finalized_at__isnull=False, kind=Invoice.Kind.REGULAR)
        .exclude(status=Invoice.Status.DRAFT)
        .order_by("finalized_at")
        .values_list("customer_id", "finalized_at", "period_end")
    )
    for customer_id, finalized_at, period_end in rows:
        result.setdefault(customer_id, []).append((finalized_at, period_end))
    return result


def _closed_at(closings: Sequence[tuple[datetime, datetime]], instant: datetime) -> datetime | None:
    """The end of the latest period that was already closed at ``instant``."""
    ends = [period_end for finalized_at, period_end in closings if finalized_at <= instant]
    return max(ends) if ends else None
