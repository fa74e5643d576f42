"""Registries through which upper apps plug into events without events importing them.

Ingest hooks run inside the ingest transaction with the events that were newly stored (never
duplicates), so a hook's writes (billing's usage pre-aggregation, say) commit or roll back with
the events themselves: there is no window in which an event exists but is not aggregated.

Block sources contribute to the SDK blocklist (`GET /api/v1/budgets/blocklist`): events computes
the union of its own budgets and every registered source (billing's spending limits, say).

Apps register in `AppConfig.ready()`.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


class RecordedCall(NamedTuple):
    """One model call of a stored event, as priced at ingest: `model` is the catalog slug that priced
    it (the model as sent when the catalog could not price it), `cost_microdollars` its price then
    (None: unpriced). A rebuild reads the same values back from the ledger (`events.selectors`)."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_microdollars: int | None = None


class RecordedEvent(NamedTuple):
    """A usage event as stored, handed to ingest hooks (a named tuple: ingest builds one per event).

    Everything a hook may meter comes with it (the model calls, the customer's external id, Tanso's
    feature key and meta), so a hook needs no query of its own to read the event back."""

    id: int
    organization_id: object
    customer_id: int
    event_type: str
    occurred_at: datetime
    properties: dict
    cost_microdollars: int
    revenue_microdollars: int
    usage_units: Decimal | None = None
    calls: tuple[RecordedCall, ...] = ()
    customer_external_id: str = ""
    feature_key: str = ""
    meta: dict | None = None
    received_at: datetime | None = None


@dataclass(frozen=True)
class BlockedSet:
    """What a block source says is blocked for one organization."""

    organization: bool = False
    event_types: frozenset[str] = field(default_factory=frozenset)
    customer_ids: frozenset[str] = field(default_factory=frozenset)  # customers' external ids

    def union(self, other: "BlockedSet") -> "BlockedSet":
        return BlockedSet(
            organization=self.organization or other.organization,
            event_types=self.event_types | other.event_types,
            customer_ids=self.customer_ids | other.customer_ids,
        )


IngestHook = Callable[..., None]  # called as hook(organization=..., events=Sequence[RecordedEvent][, prelude=...])
BlockSource = Callable[..., BlockedSet]  # called as source(organization=...)

_ingest_hooks: list[IngestHook] = []
_block_sources: list[BlockSource] = []
_preludes: dict[IngestHook, tuple[str, ...]] = {}


def register_ingest_hook(hook: IngestHook, *, prelude: Sequence[str] = ()) -> IngestHook:
    """`prelude`: SQL statements (one parameter, `%(organization)s`) that ingest runs for the hook in
    its first round trip, inside the ingest transaction and in this order, each with a snapshot of
    its own taken when it starts (so a statement that waits for a lock is followed by reads that see
    what the lock's holder committed). The hook is then called with `prelude=` the rows of each
    statement, or `prelude=None` when it runs outside an ingest (it reads them itself then). A
    hook's own round trips cost every ingest batch; a prelude costs it none."""
    if hook not in _ingest_hooks:
        _ingest_hooks.append(hook)
    _preludes[hook] = tuple(prelude)
    return hook


def ingest_prelude_statements() -> list[str]:
    """Every hook's prelude statements, in hook order (ingest sends them with its first query)."""
    return [statement for hook in _ingest_hooks for statement in _preludes.get(hook, ())]


_watch_sql: dict[BlockSource, str | None] = {}


def register_block_source(source: BlockSource, *, watches_sql: str | None = None) -> BlockSource:
    """`watches_sql`: an SQL boolean expression (one parameter, `%(organization)s`) that is true when
    the source could block something in that organization, e.g. it has a limit there. After an
    ingest batch, the blocklist is evaluated only when the organization has an enabled budget or
    some source watches it (the expression joins ingest's first query, no extra round trip), and
    the evaluation asks only the sources whose expression holds (read with its other statements). A
    source registered without one watches every organization. Whatever changes a source's answer
    other than usage (a new limit, say) calls `blocklist_recompute` itself, as before."""
    if source not in _block_sources:
        _block_sources.append(source)
    _watch_sql[source] = watches_sql
    return source


def block_sources_watch_sql() -> str:
    """One SQL boolean over every block source's `watches_sql` (FALSE without sources)."""
    conditions = [_watch_sql.get(source) for source in _block_sources]
    if not conditions:
        return "FALSE"
    if any(condition is None for condition in conditions):
        return "TRUE"
    return " OR ".join(f"({condition})" for condition in conditions)


def block_sources_watch_columns() -> list[str]:
    """Per block source, in registration order, its `watches_sql` as an SQL boolean column (TRUE for
    a source registered without one): read with the caller's other statements, then handed back to
    `blocked_by_sources(watching=...)` so the sources that watch nothing there are not asked."""
    return [f"({_watch_sql.get(source) or 'TRUE'})" for source in _block_sources]


def run_ingest_hooks(
    *, organization, events: Sequence[RecordedEvent], prelude_rows: Sequence[list[tuple]] | None = None
) -> None:
    """Call every ingest hook; the caller is inside the ingest transaction. `prelude_rows`: the rows
    of `ingest_prelude_statements()`, in order, when the caller ran them in this transaction."""
    if not events:
        return
    rows = iter(prelude_rows) if prelude_rows is not None else None
    for hook in _ingest_hooks:
        statements = _preludes.get(hook, ())
        if not statements:
            hook(organization=organization, events=events)
        else:
            prelude = None if rows is None else [next(rows) for _ in statements]
            hook(organization=organization, events=events, prelude=prelude)


def blocked_by_sources(*, organization, watching: Sequence[bool] | None = None) -> BlockedSet:
    """The union of every block source's answer. `watching`: the values of
    `block_sources_watch_columns()` for the organization, when the caller read them; a source whose
    watch is false blocks nothing there and is not asked."""
    blocked = BlockedSet()
    for position, source in enumerate(_block_sources):
        if watching is not None and not watching[position]:
            continue
        blocked = blocked.union(source(organization=organization))
    return blocked


# --- Ledger retention ----------------------------------------------------------------------------

LedgerMonthGuard = Callable[..., list[str]]  # called as guard(start=..., end=...): reasons to keep it

_ledger_month_guards: list[LedgerMonthGuard] = []


def register_ledger_month_guard(guard: LedgerMonthGuard) -> LedgerMonthGuard:
    """A guard says why a month of the ledger ([start, end), UTC) must stay attached: billing's
    refuses a month with draft invoices in it, say. Detaching a month
    (events.services.partitions.ledger_month_detach) asks every guard and refuses on any reason."""
    if guard not in _ledger_month_guards:
        _ledger_month_guards.append(guard)
    return guard


def ledger_month_holds(*, start: datetime, end: datetime) -> list[str]:
    """Every registered guard's reasons to keep the ledger's month [start, end) attached."""
    return [reason for guard in _ledger_month_guards for reason in guard(start=start, end=end)]
