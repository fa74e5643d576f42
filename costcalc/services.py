"""Write side of the price catalog, and the pricing API the other apps call.

Pricing (`price_usage`, `price_usages`) reads the cached in-process snapshot (see
`costcalc.selectors`), so pricing an event costs no query beyond one cheap freshness check.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from .engine import InvalidUsageError, PriceNotInEffectError, PricingError, UnknownModelError
from .models import ModelPrice, OrganizationPriceOverride, UnpricedModel
from .selectors import CATALOG_BEGINNING, PRICE_COLUMNS, catalog_changed, catalog_snapshot, record_from_values
from .sources import PriceRecord, PriceTier, SourceResult, tiers_to_json, vendor_of

__all__ = [
    "InvalidUsageError",
    "PriceNotInEffectError",
    "PricedUsage",
    "PricingError",
    "SyncSummary",
    "UnknownModelError",
    "UsageToPrice",
    "price_override_create",
    "price_usage",
    "price_usages",
    "sync_model_prices",
    "unpriced_models_record",
]

# pg_advisory_xact_lock key: one catalog sync at a time ("costcalc" in ASCII, as an int64)
_SYNC_LOCK_KEY = int.from_bytes(b"costcalc", "big") & 0x7FFF_FFFF_FFFF_FFFF


# --------------------------------------------------------------------------------------------
# pricing


@dataclass(frozen=True, slots=True)
class PricedUsage:
    """What one model call cost and which row priced it (exactly one of the two ids is set)."""

    cost_microdollars: int
    price_id: int | None
    override_id: int | None
    slug: str


class UsageToPrice(NamedTuple):
    """One model call for `price_usages` (token semantics: see `costcalc.engine`). A named tuple:
    ingest builds one per call, and a tuple costs a fraction of a frozen dataclass to build."""

    model: str
    occurred_at: datetime
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0


def _organization_id(organization: Any) -> Any:
    return getattr(organization, "pk", organization)


def price_usage(
    *,
    organization: Any,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    occurred_at: datetime,
) -> PricedUsage:
    """Price one model call as of `occurred_at`; the organization's overrides win over the catalog.

    Raises `UnknownModelError` (with ``.suggestions``, up to three slugs), `PriceNotInEffectError`
    (slug known, no price in force then) or `InvalidUsageError` (impossible token counts).
    """
    usage = UsageToPrice(
        model=model,
        occurred_at=occurred_at,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached_input_tokens,
        cache_write_tokens=cache_write_tokens,
        reasoning_tokens=reasoning_tokens,
    )
    result = price_usages(organization=organization, usages=[usage])[0]
    if isinstance(result, Exception):
        raise result
    return result


def price_usages(
    *, organization: Any, usages: Sequence[UsageToPrice], catalog_version: Any = None
) -> list[PricedUsage | PricingError | InvalidUsageError]:
    """Batch form for ingest: one snapshot check for the whole batch, one result per usage, in order.

    `catalog_version`: the version the caller read in its own round trip (`CATALOG_VERSION_SQL`);
    without it the snapshot check queries the version.

    A usage that cannot be priced gets its exception *instance* (`UnknownModelError`,
    `PriceNotInEffectError` or `InvalidUsageError`) in its slot instead of raising, so one bad line
    does not fail the batch. Record unpriced slugs with `unpriced_models_record`.
    """
    snapshot = catalog_snapshot() if catalog_version is None else catalog_snapshot(version=catalog_version)
    organization_id = _organization_id(organization)
    results: list[PricedUsage | PricingError | InvalidUsageError] = []
    # The price in force depends only on (model, moment) within one snapshot, and a batch often
    # repeats both (events sent without a time share the request's): each pair is looked up once.
    found: dict[tuple[str, datetime], tuple[Any, int | None, int | None, str]] = {}
    for usage in usages:
        try:
            pair = (usage.model, usage.occurred_at)
            hit = found.get(pair)
            if hit is None:
                compiled, is_override = snapshot.lookup(usage.model, usage.occurred_at, organization_id=organization_id)
                row_id = compiled.record.row_id
                hit = found[pair] = (
                    compiled,
                    None if is_override else row_id,
                    row_id if is_override else None,
                    compiled.record.slug,
                )
            compiled, price_id, override_id, slug = hit
            cost = compiled.cost(
                usage.input_tokens,
                usage.output_tokens,
                usage.cached_input_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
            )
            results.append(PricedUsage(cost, price_id, override_id, slug))
        except (PricingError, InvalidUsageError) as error:
            results.append(error)
    return results


@transaction.atomic
def unpriced_models_record(*, organization: Any, sightings: Iterable[tuple[str, datetime]]) -> int:
    """Count events whose model could not be priced (admin's "unpriced models" list).

    One ``INSERT … ON CONFLICT DO UPDATE`` for the whole batch: counts add up, first/last seen
    widen. Returns the number of distinct slugs written.
    """
    per_slug: dict[str, list[Any]] = {}
    for slug, seen_at in sightings:
        slug = slug.strip()[:255]
        if not slug:
            continue
        entry = per_slug.get(slug)
        if entry is None:
            per_slug[slug] = [1, seen_at, seen_at]
        else:
            entry[0] += 1
            entry[1] = min(entry[1], seen_at)
            entry[2] = max(entry[2], seen_at)
    if not per_slug:
        return 0
    table = UnpricedModel._meta.db_table
    organization_id = _organization_id(organization)
    values = []
    params: list[Any] = []
    for slug, (count, first, last) in sorted(per_slug.items()):
        values.append("(%s, %s, %s, %s, %s)")
        params += [organization_id, slug, count, first, last]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (organization_id, slug, event_count, first_seen_at, last_seen_at) "  # noqa: S608
            f"VALUES {', '.join(values)} "
            "ON CONFLICT (organization_id, slug) DO UPDATE SET "
            f"event_count = {table}.event_count + EXCLUDED.event_count, "
            f"first_seen_at = LEAST({table}.first_seen_at, EXCLUDED.first_seen_at), "
            f"last_seen_at = GREATEST({table}.last_seen_at, EXCLUDED.last_seen_at)",
            params,
        )
    return len(per_slug)


@transaction.atomic
def price_override_create(
    *,
    organization: Any,
    slug: str,
    input_per_mtok: Decimal,
    output_per_mtok: Decimal,
    cache_read_per_mtok: Decimal | None = None,
    cache_write_per_mtok: Decimal | None = None,
    reasoning_per_mtok: Decimal | None = None,
    request_fee_usd: Decimal = Decimal(0),
    tiers: Sequence[PriceTier] = (),
    effective_from: datetime | None = None,
    effective_until: datetime | None = None,
    note: str = "",
) -> OrganizationPriceOverride:
    """An organization's own price for a slug (wins over the catalog while in force)."""
    override = OrganizationPriceOverride.objects.create(
        organization_id=_organization_id(organization),
        slug=slug.strip(),
        input_per_mtok=input_per_mtok,
        output_per_mtok=output_per_mtok,
        cache_read_per_mtok=cache_read_per_mtok,
        cache_write_per_mtok=cache_write_per_mtok,
        reasoning_per_mtok=reasoning_per_mtok,
        request_fee_usd=request_fee_usd,
        tiers=tiers_to_json(tiers),
        effective_from=effective_from or CATALOG_BEGINNING,
        effective_until=effective_until,
        note=note,
    )
    transaction.on_commit(catalog_changed)
    return override


# --------------------------------------------------------------------------------------------
# loading a source into the catalog


@dataclass
class SyncSummary:
    source: str
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    skipped: int = 0
    rows_created: int = 0
    rows_closed: int = 0
    skipped_reasons: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"{self.source}: {self.added} added, {self.changed} changed, {self.unchanged} unchanged, "
            f"{self.skipped} skipped ({self.rows_created} rows created, {self.rows_closed} rows closed)"
        )


@dataclass
class _SlugPlan:
    creates: list[PriceRecord] = field(default_factory=list)
    closes: dict[int, datetime] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)


def _in_force_at(record: PriceRecord, moment: datetime | None) -> bool:
    start_ok = record.effective_from is None or (moment is not None and record.effective_from <= moment)
    end_ok = record.effective_until is None or moment is None or moment < record.effective_until
    return start_ok and end_ok


def _plan_slug(desired: list[PriceRecord], existing: list[PriceRecord], now: datetime) -> _SlugPlan:
    """What to write so the stored periods of one slug (one source) agree with the source,
    without rewriting history:

    * a source with one undated price (genai-prices without dates, an OpenRouter models document)
      states the *current* price: if it differs from the row in force, that row is closed at `now`
      and a new one opens at `now`;
    * a dated source states a timeline: a period that is not stored yet is inserted (closing the
      stored row in force at its start), a stored period the source now ends is closed, an open
      period whose price changed is closed at `now` and reopened at `now`; a past period whose
      price the source revised is left alone and reported.
    """
    plan = _SlugPlan()

    def close(row: PriceRecord, at: datetime) -> None:
        assert row.row_id is not None
        current = plan.closes.get(row.row_id, row.effective_until)
        if current is None or at < current:
            plan.closes[row.row_id] = at

    def open_row() -> PriceRecord | None:
        candidates = [row for row in existing if row.effective_until is None and row.row_id not in plan.closes]
        return max(candidates, key=lambda row: row.effective_from or CATALOG_BEGINNING, default=None)

    def replace_from_now(row: PriceRecord, record: PriceRecord) -> None:
        if (row.effective_from or CATALOG_BEGINNING) >= now:
            plan.conflicts.append("the stored price starts at or after this sync; not replaced")
            return
        close(row, now)
        plan.creates.append(_with_period(record, now, None))

    if len(desired) == 1 and desired[0].effective_from is None and desired[0].effective_until is None:
        record = desired[0]
        current = open_row()
        if current is None:
            start = None if not existing else now
            plan.creates.append(_with_period(record, start, None))
        elif not current.same_prices(record):
            replace_from_now(current, record)
        return plan

    by_start = {row.effective_from: row for row in existing}
    for record in desired:
        stored = by_start.get(record.effective_from)
        if stored is None:
            start = record.effective_from
            for row in existing:
                if start is not None and (row.effective_from or CATALOG_BEGINNING) < start and _in_force_at(row, start):
                    close(row, start)
            later = [
                row.effective_from
                for row in existing
                if row.effective_from is not None and (start is None or row.effective_from > start)
            ]
            until = record.effective_until
            if later and (until is None or min(later) < until):
                until = min(later)
            plan.creates.append(_with_period(record, start, until))
        elif stored.same_prices(record):
            if record.effective_until is not None and (
                stored.effective_until is None or record.effective_until < stored.effective_until
            ):
                close(stored, record.effective_until)
        elif record.effective_until is None and stored.effective_until is None:
            replace_from_now(stored, record)
        else:
            plan.conflicts.append(
                f"the source revised the past price from {stored.effective_from or 'the beginning'}; "
                "kept the stored one"
            )
    return plan


_SLUG_MAX_LENGTH = ModelPrice._meta.get_field("slug").max_length
_VENDOR_MAX_LENGTH = ModelPrice._meta.get_field("vendor").max_length
_PRICE_FIELD = ModelPrice._meta.get_field("input_per_mtok")
_PRICE_LIMIT = Decimal(10) ** (_PRICE_FIELD.max_digits - _PRICE_FIELD.decimal_places)


def _storage_problem(record: PriceRecord) -> str | None:
    """Why a parsed record cannot be stored exactly (None when it can): a source document is
    outside input, so an over-long slug or an absurd price is skipped with a reason, never a crash
    or a silently rounded price."""
    if not record.slug.strip() or len(record.slug) > _SLUG_MAX_LENGTH:
        return f"slug must be 1 to {_SLUG_MAX_LENGTH} characters"
    if len(record.vendor or vendor_of(record.slug)) > _VENDOR_MAX_LENGTH:
        return f"vendor must be at most {_VENDOR_MAX_LENGTH} characters"
    if any("\x00" in text for text in (record.slug, record.vendor, record.display_name)):
        return "contains a NUL character"
    prices = {
        "input": record.input_per_mtok,
        "output": record.output_per_mtok,
        "cache read": record.cache_read_per_mtok,
        "cache write": record.cache_write_per_mtok,
        "reasoning": record.reasoning_per_mtok,
        "request fee": record.request_fee_usd,
    }
    for name, price in prices.items():
        if price is None:
            continue
        if abs(price) >= _PRICE_LIMIT:
            return f"{name} price {price} is beyond what the catalog stores (below {_PRICE_LIMIT:,})"
        if price.as_tuple().exponent < -_PRICE_FIELD.decimal_places:  # type: ignore[operator]
            return f"{name} price {price} has more than {_PRICE_FIELD.decimal_places} decimal places"
    return None


def _with_period(record: PriceRecord, start: datetime | None, until: datetime | None) -> PriceRecord:
    return replace(record, effective_from=start, effective_until=until)


def _model_price(record: PriceRecord, source: str) -> ModelPrice:
    return ModelPrice(
        slug=record.slug,
        vendor=record.vendor or vendor_of(record.slug),
        display_name=record.display_name[:255],
        source=source,
        input_per_mtok=record.input_per_mtok,
        output_per_mtok=record.output_per_mtok,
        cache_read_per_mtok=record.cache_read_per_mtok,
        cache_write_per_mtok=record.cache_write_per_mtok,
        reasoning_per_mtok=record.reasoning_per_mtok,
        request_fee_usd=record.request_fee_usd,
        tiers=tiers_to_json(record.tiers),
        effective_from=record.effective_from or CATALOG_BEGINNING,
        effective_until=record.effective_until,
    )


@transaction.atomic
def sync_model_prices(
    *,
    result: SourceResult,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SyncSummary:
    """Load one parsed source into `ModelPrice`, idempotently (a second run changes nothing).

    Per slug: *added* (first rows for it from this source), *changed* (rows closed and/or opened),
    *unchanged*, or *skipped* (the parser could not price it, or the source contradicts stored
    history). Reads every stored row of the source once and writes with `bulk_create` /
    `bulk_update`; a PostgreSQL advisory lock keeps two syncs from interleaving.
    """
    now = now or timezone.now()
    source = result.source
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK_KEY])

    existing: dict[str, list[PriceRecord]] = defaultdict(list)
    for row in ModelPrice.objects.filter(source=source).values(*PRICE_COLUMNS).iterator(chunk_size=5000):
        existing[row["slug"]].append(record_from_values(row))
    desired: dict[str, list[PriceRecord]] = defaultdict(list)
    unstorable: dict[str, str] = {}
    for record in result.records:
        problem = _storage_problem(record)
        if problem is not None:
            unstorable.setdefault(record.slug, problem)
        desired[record.slug].append(record)

    summary = SyncSummary(source=source)
    for skipped in result.skipped:
        summary.skipped += 1
        summary.skipped_reasons.append((skipped.slug, skipped.reason))
    for slug, problem in unstorable.items():  # a slug is loaded whole or not at all
        del desired[slug]
        summary.skipped += 1
        summary.skipped_reasons.append((slug.replace("\x00", "\\x00")[:300], problem))

    creates: list[ModelPrice] = []
    closes: dict[int, datetime] = {}
    total = len(desired)
    for position, (slug, records) in enumerate(sorted(desired.items()), start=1):
        records.sort(key=lambda record: record.effective_from or CATALOG_BEGINNING)
        stored = existing.get(slug, [])
        plan = _plan_slug(records, stored, now)
        if plan.creates or plan.closes:
            if stored:
                summary.changed += 1
            else:
                summary.added += 1
            creates.extend(_model_price(record, source) for record in plan.creates)
            closes.update(plan.closes)
        elif plan.conflicts:
            summary.skipped += 1
        else:
            summary.unchanged += 1
        summary.skipped_reasons.extend((slug, reason) for reason in plan.conflicts)
        if progress is not None:
            progress(position, total)

    if closes:
        written_at = timezone.now()
        ModelPrice.objects.bulk_update(
            # updated_at is the wall clock (not `now`, which may be in the past) so the catalog
            # fingerprint moves and every process rebuilds its snapshot.
            [ModelPrice(id=row_id, effective_until=until, updated_at=written_at) for row_id, until in closes.items()],
            ["effective_until", "updated_at"],
            batch_size=1000,
        )
    if creates:
        ModelPrice.objects.bulk_create(creates, batch_size=1000)
    summary.rows_created, summary.rows_closed = len(creates), len(closes)
    if creates or closes:
        transaction.on_commit(catalog_changed)
    return summary
