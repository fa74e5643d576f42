"""The one ingest core behind every dialect.

validate (done by the dialect) → one round trip (after psycopg's `BEGIN`: accounts.sql) for the
ledger and catalog locks (shared, held until commit: events.locks), the organization's ingest state,
the keys already stored, the customers the batch names, the price catalog's version and the ingest
hooks' preludes (billing's metric fingerprint, say) → drop the stored keys → price (costcalc's batch
API over its in-process snapshot) → resolve customers of the events that passed (set-based from the
rows already read, creating unknown ones) → one statement: a multi-row `INSERT … RETURNING` for the
events and one for their vendor responses, and the upserts of the usage rollups over those rows
(events.services.rollups) → ingest hooks (inside the transaction, new events only) → on commit:
`usage_recorded` and the debounced budget evaluation.

Exactly once: the primary key of the keys table (`UsageEventKey`: organization, idempotency_key)
decides; the ledger itself is partitioned by month and cannot hold that constraint. The write
statement inserts the keys first, each with the id its event will get, then the events of the keys
it inserted. A request that races another with the same keys waits on the conflicting key row
until the other commits; its plain INSERT then fails on the constraint, and the whole transaction
runs again once, with `ON CONFLICT DO NOTHING`: it skips the keys taken and reads their ids, so
every client gets the same id for the same key ("created" for exactly one of them, "duplicate" for
the rest). Rows are inserted in key order so two such requests cannot deadlock.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from functools import partial

import orjson
import psycopg
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.connection_check import first_statement_checks, reused_connection_lost
from accounts.sql import fetch_all, fetch_one, fetch_pipelined
from costcalc.money import usd_to_microdollars
from costcalc.selectors import CATALOG_VERSION_SQL

from .. import hooks, signals
from ..drafts import (
    CREATED,
    DUPLICATE,
    ERROR,
    EventDraft,
    EventError,
    EventOutcome,
    IngestResult,
)
from ..locks import INGEST_LOCKS_SQL
from ..models import BlocklistState, Budget, Feature, IngestSettings, UsageEvent, UsageEventKey, VendorResponse
from .customers import customers_lookup_statement, customers_resolve
from .pricing import price_calls, pricing_error, record_unpriced
from .rollups import NEW_CALL_COLUMNS, NEW_EVENT_COLUMNS, ROLLUP_CTES

logger = logging.getLogger(__name__)

MAX_MICRODOLLARS = 2**63 - 1  # a bigint column
_EVENTS = UsageEvent._meta.db_table
_KEYS = UsageEventKey._meta.db_table
_RESPONSES = VendorResponse._meta.db_table


@dataclass(slots=True)
class _OrganizationState:
    accept_unpriced_models: bool
    budget_state_version: int
    blocklist_watched: bool  # an enabled budget, or a block source watching the organization


_STATE_SQL = (
    f"SELECT (SELECT accept_unpriced_models FROM {IngestSettings._meta.db_table} "  # noqa: S608
    "WHERE organization_id = %(organization)s), "
    f"(SELECT version FROM {BlocklistState._meta.db_table} WHERE organization_id = %(organization)s), "
    f"EXISTS (SELECT 1 FROM {Budget._meta.db_table} WHERE organization_id = %(organization)s AND enabled) "
    "OR {watched}"
)
# Ingest's first round trip reads the price catalog's version with the state, in the same row.
_STATE_AND_CATALOG_SQL = _STATE_SQL + f", ({CATALOG_VERSION_SQL})"


def _state_sql(sql: str = _STATE_SQL) -> str:
    return sql.replace("{watched}", f"({hooks.block_sources_watch_sql()})")


# The keys travel as one JSON array: formatting a text[] parameter costs the client a quoting
# check per element. Read from the keys table (the ledger's dedupe), which holds the event's id.
_STORED_SQL = (
    f"SELECT idempotency_key, event_id FROM {_KEYS} "  # noqa: S608
    "WHERE organization_id = %s AND idempotency_key = ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
)


def _state(row) -> _OrganizationState:
    accept, version, watched = row[:3]
    return _OrganizationState(bool(accept), version or 0, watched)


def organization_ingest_state(organization_id) -> _OrganizationState:
    """Everything ingest needs to know about the organization, in one query."""
    return _state(fetch_one(_state_sql(), {"organization": organization_id}))


def ingest_events(
    *,
    organization,
    source: str,
    items: Sequence[EventDraft | EventError],
    now: datetime | None = None,
) -> IngestResult:
    """Store the drafts exactly once; one outcome per item, in order (errors pass through)."""
    received_at = now or timezone.now()
    race_safe = False
    while True:
        # With CONN_HEALTH_CHECKS, Django checks a reused connection with a round trip of its own
        # (SELECT 1) when this transaction starts. Ingest lets its first round trip, which only
        # reads, be that check: should it find the connection closed by the server, nothing was
        # written, so the transaction is dropped and run again once on a new connection.
        unchecked = first_statement_checks()
        try:
            with transaction.atomic():
                outcomes, state = _ingest(organization, source, items, received_at, unchecked, race_safe)
        except _ReusedConnectionLost:
            connection.close()
            continue
        except psycopg.errors.UniqueViolation as error:
            if race_safe or error.diag.constraint_name != _KEY_CONSTRAINT:
                raise
            # A concurrent request stored some of these keys after our first read: run the whole
            # transaction again (reads included), this time skipping keys that are taken.
            race_safe = True
            continue
        return IngestResult(outcomes=outcomes, budget_state_version=state.budget_state_version)


class _ReusedConnectionLost(Exception):
    """The first statement of a request found its reused connection closed (nothing was written)."""


def _ingest(
    organization, source, items, received_at, unchecked, race_safe
) -> tuple[list[EventOutcome], _OrganizationState]:
    outcomes: list[EventOutcome | None] = [None] * len(items)
    first_by_key: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # (index, index of the first draft with the same key)
    for index, item in enumerate(items):
        if isinstance(item, EventError):
            outcomes[index] = EventOutcome(ERROR, error=item)
        elif item.idempotency_key in first_by_key:
            repeats.append((index, first_by_key[item.idempotency_key]))
        else:
            first_by_key[item.idempotency_key] = index

    # One round trip for what every batch needs to know; keys already stored are duplicates before
    # any other work, so a replayed batch costs just this.
    try:
        if first_by_key:
            organization_param = {"organization": organization.pk}
            _lock, state_rows, stored_rows, customer_rows, *prelude_rows = fetch_pipelined(
                [
                    # First, so that everything after it reads with the locks held (events.locks).
                    (INGEST_LOCKS_SQL, organization_param, True),
                    (_state_sql(_STATE_AND_CATALOG_SQL), organization_param, True),
                    (_STORED_SQL, [organization.pk, orjson.dumps(list(first_by_key)).decode()], False),
                    (
                        *customers_lookup_statement(
                            organization_id=organization.pk,
                            refs=[items[index].customer for index in first_by_key.values()],
                        ),
                        False,
                    ),
                    *((statement, organization_param, True) for statement in hooks.ingest_prelude_statements()),
                ]
            )
            state = _state(state_rows[0])
            catalog_version = state_rows[0][3]
        else:
            state = organization_ingest_state(organization.pk)
            stored_rows = customer_rows = prelude_rows = []
            catalog_version = None
    except psycopg.OperationalError as error:
        if reused_connection_lost(unchecked):
            raise _ReusedConnectionLost from error
        raise
    stored = dict(stored_rows)
    pending: list[int] = []
    for key, index in first_by_key.items():
        if key in stored:
            outcomes[index] = EventOutcome(DUPLICATE, id=stored[key], draft=items[index])
        else:
            pending.append(index)

    if pending:
        _store(
            organization, source, items, pending, outcomes, received_at, state, customer_rows, catalog_version,
            prelude_rows, race_safe,
        )

    for index, first in repeats:
        original = outcomes[first]
        outcomes[index] = (
            EventOutcome(ERROR, error=original.error)
            if original.status == ERROR
            else EventOutcome(DUPLICATE, id=original.id, draft=items[index])
        )
    return outcomes, state  # type: ignore[return-value]


def _stored_ids(organization_id, keys: list[str]) -> dict[str, int]:
    return dict(fetch_all(_STORED_SQL, [organization_id, orjson.dumps(keys).decode()], prepare=False))


_NO_RESULTS: list = []


@dataclass(slots=True)
class _Row:
    index: int
    draft: EventDraft
    customer_id: int
    cost: int
    revenue: int
    unpriced: bool
    call_costs: list  # PricedUsage | None per call
    unpriced_models: tuple[str, ...] = ()


def _store(
    organization, source, items, pending, outcomes, received_at, state, customer_rows, catalog_version, prelude_rows,
    race_safe,
):
    drafts = {index: items[index] for index in pending}
    features = _features(organization.pk, drafts.values())
    priced = _price(organization, drafts, catalog_version)
    rows: list[_Row] = []
    sightings: list[tuple[str, datetime]] = []
    for index, draft in drafts.items():
        results = priced.get(index, _NO_RESULTS)
        failures = None  # (call, exception) of the calls that could not be priced; None when all were
        for result in results:
            if isinstance(result, Exception):
                failures = [(c, r) for c, r in zip(draft.calls, results, strict=True) if isinstance(r, Exception)]
                break
        explicit_cost = draft.cost_microdollars is not None
        if failures and not explicit_cost and not state.accept_unpriced_models:
            outcomes[index] = EventOutcome(ERROR, error=pricing_error(*failures[0]))
            continue
        if draft.feature_uuid or draft.feature_key:
            feature, feature_error = _feature_for(draft, features)
            if feature_error is not None:
                outcomes[index] = EventOutcome(ERROR, error=feature_error)
                continue
            if draft.feature_uuid:
                # Seed 003: featureId supersedes featureKey, so the event is the resolved feature's
                # (stored and answered with its key, whatever featureKey said).
                draft.feature_key = feature.key
        else:
            feature = None
        if failures is None:
            call_costs = results
        else:
            call_costs = [None if isinstance(result, Exception) else result for result in results]
        if explicit_cost:
            cost = draft.cost_microdollars
        elif draft.calls:
            cost = sum(result.cost_microdollars for result in call_costs if result is not None)
        else:
            cost = _per_unit(feature and feature.cost_per_unit_usd, draft.usage_units)
        revenue = (
            draft.revenue_microdollars
            if draft.revenue_microdollars is not None
            else _per_unit(feature and feature.price_per_unit_usd, draft.usage_units)
        )
        if cost > MAX_MICRODOLLARS or revenue > MAX_MICRODOLLARS:
            field = "usageUnits" if draft.usage_units is not None else draft.customer.field.rsplit(".", 1)[0]
            outcomes[index] = EventOutcome(
                ERROR, error=EventError("validation_error", "The amount is too large to record.", field)
            )
            continue
        unpriced = bool(failures) and not explicit_cost
        rows.append(
            _Row(
                index,
                draft,
                0,  # resolved below, once the event is known to be stored
                cost,
                revenue,
                unpriced,
                call_costs,
                () if failures is None else tuple(dict.fromkeys(call.model for call, _ in failures)),
            )
        )

    # Customers last, so an event rejected above does not leave a new customer behind.
    external_ids: dict[int, str] = {}
    customers = customers_resolve(
        organization=organization,
        refs=[row.draft.customer for row in rows],
        now=received_at,
        found=customer_rows,
        external_ids=external_ids,
    )
    for row in rows:
        row.customer_id = customers.get((row.draft.customer.kind, row.draft.customer.value), 0)
        if not row.customer_id:
            error = EventError("not_found", "No customer with this id in your organization.", row.draft.customer.field)
            outcomes[row.index] = EventOutcome(ERROR, error=error)
    rows = [row for row in rows if row.customer_id]
    if not rows:
        return
    rows.sort(key=lambda row: row.draft.idempotency_key)  # a stable lock order between concurrent requests
    inserted = _write(
        organization.pk, source, rows, received_at, race_safe=race_safe, watched=state.blocklist_watched
    )
    raced = [row for row in rows if row.draft.idempotency_key not in inserted]
    originals = _stored_ids(organization.pk, [row.draft.idempotency_key for row in raced]) if raced else {}
    stored: list[tuple[_Row, int]] = []  # (row, event id) of the events this batch stored
    for row in rows:
        key = row.draft.idempotency_key
        if key in inserted:
            event_id = inserted[key]
            outcomes[row.index] = EventOutcome(
                CREATED,
                id=event_id,
                draft=row.draft,
                customer_id=row.customer_id,
                cost_microdollars=row.cost,
                revenue_microdollars=row.revenue,
                unpriced=row.unpriced,
            )
            stored.append((row, event_id))
            if row.unpriced_models:
                sightings.extend((model, received_at) for model in row.unpriced_models)
        else:
            outcomes[row.index] = EventOutcome(DUPLICATE, id=originals[key], draft=row.draft)

    if sightings:
        record_unpriced(organization=organization, sightings=sightings)
    if stored:
        recorded = _RecordedEvents(stored, partial(_recorded_events, organization.pk, external_ids, received_at))
        hooks.run_ingest_hooks(organization=organization, events=recorded, prelude_rows=prelude_rows)
        customer_ids = sorted({row.customer_id for row, _ in stored})
        transaction.on_commit(partial(_send_usage_recorded, organization.pk, customer_ids), robust=True)
        if state.blocklist_watched:
            # Without an enabled budget or a block source watching the organization, usage cannot
            # change the blocklist: nothing to evaluate.
            transaction.on_commit(partial(_schedule_budget_evaluation, organization.pk), robust=True)


class _RecordedEvents(Sequence):
    """The stored events as `hooks.RecordedEvent`s, built when a hook first reads them. An
    organization without billable metrics or contracts has hooks that return on their prelude's
    rows alone, and building a named tuple (and its calls) per event was ~5% of such a batch's
    Python time."""

    __slots__ = ("_build", "_events", "_stored")

    def __init__(self, stored: list[tuple[_Row, int]], build) -> None:
        self._stored = stored  # (row, event id)
        self._build = build  # stored -> the events
        self._events: list[hooks.RecordedEvent] | None = None

    def _list(self) -> list[hooks.RecordedEvent]:
        if self._events is None:
            self._events = self._build(self._stored)
        return self._events

    def __len__(self) -> int:
        return len(self._stored)

    def __getitem__(self, index):
        return self._list()[index]

    def __iter__(self):
        return iter(self._list())


def _recorded_events(organization_id, external_ids, received_at, stored) -> list[hooks.RecordedEvent]:
    return [
        hooks.RecordedEvent(
            id=event_id,
            organization_id=organization_id,
            customer_id=row.customer_id,
            event_type=row.draft.event_type,
            occurred_at=row.draft.occurred_at,
            properties=row.draft.properties,
            cost_microdollars=row.cost,
            revenue_microdollars=row.revenue,
            usage_units=row.draft.usage_units,
            calls=_recorded_calls(row),
            customer_external_id=external_ids[row.customer_id],
            feature_key=row.draft.feature_key,
            meta=row.draft.meta or None,
            received_at=received_at,
        )
        for row, event_id in stored
    ]


def _recorded_calls(row: _Row) -> tuple[hooks.RecordedCall, ...]:
    """The event's model calls for ingest hooks: the catalog slug that priced each and its cost."""
    if not row.draft.calls:
        return ()
    return tuple(
        hooks.RecordedCall(
            priced.slug if priced is not None else call.model,
            call.input_tokens,
            call.output_tokens,
            call.cached_input_tokens,
            call.cache_write_tokens,
            call.reasoning_tokens,
            None if priced is None else priced.cost_microdollars,
        )
        for call, priced in zip(row.draft.calls, row.call_costs, strict=True)
    )


def _price(organization, drafts: dict[int, EventDraft], catalog_version) -> dict[int, list]:
    calls, owners = [], []
    for index, draft in drafts.items():
        for call in draft.calls:
            calls.append((call, draft.occurred_at))
            owners.append(index)
    results: dict[int, list] = {}
    priced = price_calls(organization=organization, calls=calls, catalog_version=catalog_version)
    for owner, result in zip(owners, priced, strict=True):
        results.setdefault(owner, []).append(result)
    return results


def _features(organization_id, drafts) -> dict[str, Feature]:
    """Features named by drafts that need one (no cost or no revenue of their own), by key and uuid."""
    keys, uuids = set(), set()
    for draft in drafts:
        if draft.feature_uuid:
            uuids.add(draft.feature_uuid)
        elif draft.feature_key and (draft.revenue_microdollars is None or draft.cost_microdollars is None):
            keys.add(draft.feature_key)
    if not (keys or uuids):
        return {}
    found: dict[str, Feature] = {}
    for feature in Feature.objects.filter(Q(key__in=keys) | Q(uuid__in=uuids), organization_id=organization_id):
        found[feature.key] = feature
        found[str(feature.uuid)] = feature
    return found


def _feature_for(draft: EventDraft, features: dict[str, Feature]) -> tuple[Feature | None, EventError | None]:
    if draft.feature_uuid:
        feature = features.get(draft.feature_uuid)
        if feature is None:
            return None, EventError("not_found", "No feature with this id in your organization.", "featureId")
        return feature, None
    return features.get(draft.feature_key) if draft.feature_key else None, None


def _per_unit(price: Decimal | None, units: Decimal | None) -> int:
    """A Decimal USD unit price x units, exact, rounded once to the microdollar (half up). An amount
    beyond a bigint comes back as MAX_MICRODOLLARS + 1 for the caller to reject."""
    if price is None or units is None:
        return 0
    with localcontext() as context:
        context.prec = 80  # exact for any price (24 digits) x units (30 digits)
        amount = price * units
        if amount * 1_000_000 > MAX_MICRODOLLARS:
            return MAX_MICRODOLLARS + 1
        return usd_to_microdollars(amount)


_KEY_CONSTRAINT = "events_usageeventkey_pkey"
# The ids come from the ledger's sequence here, in key order, so the key row and the event share one.
_ID_SEQUENCE = f"{_EVENTS}_id_seq"
_WRITE_SQL = f"""
WITH batch AS (
    SELECT * FROM json_to_recordset(%(events)s::json) AS e(customer bigint, event_type text, occurred_at timestamptz,
        key text, properties jsonb, flow_id text, feature_key text, usage_units numeric, cost bigint, revenue bigint,
        unpriced boolean, meta jsonb)
), new_keys AS (
    INSERT INTO {_KEYS} (organization_id, idempotency_key, event_id, occurred_at)
    SELECT %(organization)s, k.key, nextval('{_ID_SEQUENCE}'), k.occurred_at
    FROM (SELECT key, occurred_at FROM batch ORDER BY key) AS k
    ON CONFLICT (organization_id, idempotency_key) DO NOTHING
    RETURNING idempotency_key, event_id
), new_events AS (
    INSERT INTO {_EVENTS} (id, organization_id, customer_id, event_type, occurred_at, received_at, idempotency_key,
        source, properties, flow_id, feature_key, usage_units, cost_microdollars, revenue_microdollars, unpriced, meta)
    SELECT k.event_id, %(organization)s, e.customer, e.event_type, e.occurred_at, %(received_at)s, e.key, %(source)s,
        coalesce(e.properties, '{{}}'), coalesce(e.flow_id, ''), coalesce(e.feature_key, ''), e.usage_units, e.cost,
        e.revenue, coalesce(e.unpriced, false), coalesce(e.meta, '{{}}')
    FROM batch e JOIN new_keys k ON k.idempotency_key = e.key
    ORDER BY e.key
    RETURNING {NEW_EVENT_COLUMNS}
), new_calls AS (
    INSERT INTO {_RESPONSES} (organization_id, event_id, model, input_tokens, output_tokens, cached_input_tokens,
        cache_write_tokens, reasoning_tokens, cost_microdollars, price_id, price_override_id)
    SELECT %(organization)s, n.id, c.model, c.input, c.output, coalesce(c.cached, 0), coalesce(c.cache_write, 0),
        coalesce(c.reasoning, 0), c.cost, c.price, c.override
    FROM new_events n JOIN ROWS FROM (json_to_recordset(%(calls)s::json) AS (key text, model text,
        input bigint, output bigint, cached bigint, cache_write bigint, reasoning bigint, cost bigint, price bigint,
        override bigint)) WITH ORDINALITY AS c(key, model, input, output, cached, cache_write, reasoning, cost, price,
        override, position) ON c.key = n.idempotency_key
    ORDER BY n.id, c.position
    RETURNING {NEW_CALL_COLUMNS}
){ROLLUP_CTES}
SELECT idempotency_key, id FROM new_events
"""  # noqa: S608 (table names only)
# Without the conflict clause, for the first attempt. `ON CONFLICT DO NOTHING` inserts each row
# speculatively (an extra index probe and an extra WAL record per row, ~1.5 ms of a 100-event
# batch), which only a race needs: the first round trip already dropped the keys that were stored.
_INSERT_SQL = _WRITE_SQL.replace("    ON CONFLICT (organization_id, idempotency_key) DO NOTHING\n", "")
assert _INSERT_SQL != _WRITE_SQL


def _write(
    organization_id, source: str, rows: list[_Row], received_at, *, race_safe: bool, watched: bool
) -> dict[str, int]:
    """Keys, events and their vendor responses in one statement (data-modifying CTEs): the keys are
    inserted in key order (a stable lock order between concurrent requests), each drawing its event's
    id from the ledger's sequence, then the events of the keys inserted, then their vendor
    responses. The batch travels as two JSON documents, which PostgreSQL
    expands with `json_to_recordset` (read once, as `json`: converting the whole document to `jsonb`
    first cost ~0.6 ms of a 100-event batch; the properties column still arrives as `jsonb`).
    Returns {key: id} of the new rows.

    First attempt (`race_safe` false): a plain INSERT, as the keys were not stored when this
    transaction read them. Should a concurrent request have stored one since, the keys' primary key
    fails the statement (after that request commits: until then this one waits on its row) and
    `ingest_events` runs the transaction again with `race_safe`: `ON CONFLICT DO NOTHING`, and the
    keys it skips are answered with the other request's ids.

    The same statement upserts the usage rollups of the inserted rows (events.services.rollups) and,
    when `watched` (an enabled budget or a block source), queues their customers for the next
    budget evaluation."""
    # A key whose value is the column's default is left out (the statement coalesces it): most
    # events and calls carry only a few of these, and every key is built here and parsed there.
    events, calls = [], []
    for row in rows:
        draft = row.draft
        key = draft.idempotency_key
        event = {
            "customer": row.customer_id,
            "event_type": draft.event_type,
            "occurred_at": draft.occurred_at,
            "key": key,
            "cost": row.cost,
            "revenue": row.revenue,
        }
        if draft.properties_json != "{}":
            event["properties"] = orjson.Fragment(draft.properties_json)
        if draft.flow_id:
            event["flow_id"] = draft.flow_id
        if draft.feature_key:
            event["feature_key"] = draft.feature_key
        if draft.usage_units is not None:
            event["usage_units"] = draft.usage_units
        if row.unpriced:
            event["unpriced"] = True
        if draft.meta:
            event["meta"] = draft.meta
        events.append(event)
        for call, priced in zip(draft.calls, row.call_costs, strict=True):  # in order: WITH ORDINALITY
            call_row = {"key": key, "model": call.model, "input": call.input_tokens, "output": call.output_tokens}
            if call.cached_input_tokens:
                call_row["cached"] = call.cached_input_tokens
            if call.cache_write_tokens:
                call_row["cache_write"] = call.cache_write_tokens
            if call.reasoning_tokens:
                call_row["reasoning"] = call.reasoning_tokens
            if priced is not None:
                call_row["cost"] = priced.cost_microdollars
                if priced.price_id is not None:
                    call_row["price"] = priced.price_id
                if priced.override_id is not None:
                    call_row["override"] = priced.override_id
            calls.append(call_row)
    return dict(
        fetch_all(
            _WRITE_SQL if race_safe else _INSERT_SQL,
            {
                "organization": organization_id,
                "received_at": received_at,
                "source": source,
                "events": orjson.dumps(events, default=_json_default).decode(),
                "calls": orjson.dumps(calls).decode(),
                "watched": bool(watched),
            },
        )
    )


def _json_default(value):
    if isinstance(value, Decimal):
        return str(value)  # exact: usage units go to a numeric column as text
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _send_usage_recorded(organization_id, customer_ids: list[int]) -> None:
    signals.usage_recorded.send(sender=UsageEvent, organization_id=organization_id, customer_ids=customer_ids)


def _schedule_budget_evaluation(organization_id) -> None:
    from .budgets import budget_evaluation_schedule

    budget_evaluation_schedule(organization_id=organization_id)
