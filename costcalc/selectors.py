"""Read side of the price catalog: the cached in-process snapshot and the API's model list.

The snapshot (`costcalc.engine.CatalogSnapshot`) is built from the database once and reused by every
pricing call in the process. It is invalidated when prices change:

* in this process, immediately: the loaders and the override service call `catalog_changed()`;
* in every other process (web workers, Celery workers): each use compares the catalog version
  (`CatalogVersion`, set by database triggers whenever either price table changes; a one-row
  lookup) with the one the snapshot was built at, at most every ``COSTCALC_SNAPSHOT_CHECK_SECONDS``
  seconds (0, the default, checks on every use; the batch pricing path checks once per batch, and
  a caller that already read the version, such as ingest, passes it in).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .engine import CatalogSnapshot
from .models import CatalogVersion, ModelPrice, OrganizationPriceOverride
from .sources import PriceRecord, canonical_decimal, tiers_from_json, vendor_of

OVERRIDE_SOURCE = "override"
#: `effective_from` stored for a price that applies "since the beginning" (the column is NOT NULL);
#: read back as None.
CATALOG_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)

PRICE_COLUMNS = (
    "id",
    "slug",
    "vendor",
    "display_name",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "reasoning_per_mtok",
    "request_fee_usd",
    "tiers",
    "effective_from",
    "effective_until",
    "source",
)
OVERRIDE_COLUMNS = (
    "id",
    "organization_id",
    "slug",
    "input_per_mtok",
    "output_per_mtok",
    "cache_read_per_mtok",
    "cache_write_per_mtok",
    "reasoning_per_mtok",
    "request_fee_usd",
    "tiers",
    "effective_from",
    "effective_until",
)


def source_priority() -> tuple[str, ...]:
    return tuple(settings.COSTCALC_SOURCE_PRIORITY)


def _optional(value: Decimal | None) -> Decimal | None:
    return None if value is None else canonical_decimal(value)


def record_from_values(row: dict[str, Any], **extra: Any) -> PriceRecord:
    return PriceRecord(
        slug=row["slug"],
        vendor=extra.get("vendor", row.get("vendor", "")),
        display_name=extra.get("display_name", row.get("display_name") or row["slug"]),
        input_per_mtok=canonical_decimal(row["input_per_mtok"]),
        output_per_mtok=canonical_decimal(row["output_per_mtok"]),
        cache_read_per_mtok=_optional(row["cache_read_per_mtok"]),
        cache_write_per_mtok=_optional(row["cache_write_per_mtok"]),
        reasoning_per_mtok=_optional(row["reasoning_per_mtok"]),
        request_fee_usd=canonical_decimal(row["request_fee_usd"]),
        tiers=tiers_from_json(row["tiers"]),
        effective_from=None if row["effective_from"] <= CATALOG_BEGINNING else row["effective_from"],
        effective_until=row["effective_until"],
        source=extra.get("source", row.get("source", "")),
        row_id=row["id"],
    )


#: The current catalog version; run it yourself (e.g. with other queries in one round trip) and
#: pass the value to `catalog_snapshot(version=...)`. No row (a flushed test database) reads as None.
CATALOG_VERSION_SQL = f"SELECT version FROM {CatalogVersion._meta.db_table} WHERE id = 1"  # noqa: S608


def catalog_version() -> int | None:
    """Changes (in the same transaction) whenever a price or override row is added, edited or deleted."""
    with connection.cursor() as cursor:
        cursor.execute(CATALOG_VERSION_SQL)
        row = cursor.fetchone()
    return None if row is None else row[0]


def build_catalog_snapshot(*, version: Any = None) -> CatalogSnapshot:
    records = [record_from_values(row) for row in ModelPrice.objects.values(*PRICE_COLUMNS).iterator(chunk_size=5000)]
    overrides: dict[Any, list[PriceRecord]] = {}
    for row in OrganizationPriceOverride.objects.values(*OVERRIDE_COLUMNS):
        overrides.setdefault(row["organization_id"], []).append(
            record_from_values(row, vendor=vendor_of(row["slug"]), display_name=row["slug"], source=OVERRIDE_SOURCE)
        )
    return CatalogSnapshot(records, overrides=overrides, source_priority=source_priority(), version=version)


_UNKNOWN = object()


class _SnapshotHolder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshot: CatalogSnapshot | None = None
        self.checked_at = 0.0

    def get(self, version: Any = _UNKNOWN) -> CatalogSnapshot:
        snapshot = self.snapshot
        now = time.monotonic()
        if version is _UNKNOWN:
            interval = float(getattr(settings, "COSTCALC_SNAPSHOT_CHECK_SECONDS", 0))
            if snapshot is not None and interval > 0 and now - self.checked_at < interval:
                return snapshot
            version = catalog_version()
        if snapshot is not None and snapshot.version == version:
            self.checked_at = now
            return snapshot
        with self.lock:
            if self.snapshot is not None and self.snapshot.version == version:
                return self.snapshot
            snapshot = build_catalog_snapshot(version=version)
            self.snapshot, self.checked_at = snapshot, time.monotonic()
            return snapshot

    def clear(self) -> None:
        with self.lock:
            self.snapshot = None
            self.checked_at = 0.0


_holder = _SnapshotHolder()


def catalog_snapshot(*, version: Any = _UNKNOWN) -> CatalogSnapshot:
    """The current catalog snapshot of this process (rebuilt when the tables changed).

    `version`: the catalog version the caller just read with `CATALOG_VERSION_SQL` (saves the query).
    """
    return _holder.get(version)


def catalog_changed() -> None:
    """Drop this process's snapshot now (other processes notice through the fingerprint)."""
    _holder.clear()


# --------------------------------------------------------------------------------------------
# GET /api/v1/models


@dataclass(frozen=True, slots=True)
class CurrentPrice:
    slug: str
    vendor: str
    display_name: str
    source: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None
    request_fee_usd: Decimal
    tiers: tuple
    effective_from: datetime | None
    effective_until: datetime | None


def current_prices(
    *, organization_id: Any = None, vendor: str | None = None, at: datetime | None = None
) -> list[CurrentPrice]:
    """Every priced slug with the price in force at `at` (default: now), ordered by slug.

    Uses the same resolution as pricing (overrides of `organization_id` first, then source
    priority, most recent start wins), so the list says what an event sent now would cost that
    organization. Slugs whose every price has ended are left out.
    """
    snapshot = catalog_snapshot()
    at = at or timezone.now()
    wanted_vendor = vendor.strip().lower() if vendor else None
    slugs = sorted(set(snapshot.slugs) | set(snapshot.override_slugs(organization_id)))
    prices = []
    for slug in slugs:
        try:
            record, _ = snapshot.resolve(slug, at, organization_id=organization_id)
        except LookupError:
            continue  # known, but not priced at this moment
        if wanted_vendor is not None and record.vendor.lower() != wanted_vendor:
            continue
        prices.append(
            CurrentPrice(
                slug=slug,
                vendor=record.vendor,
                display_name=record.display_name,
                source=record.source,
                input_per_mtok=record.input_per_mtok,
                output_per_mtok=record.output_per_mtok,
                cache_read_per_mtok=record.cache_read_per_mtok,
                cache_write_per_mtok=record.cache_write_per_mtok,
                reasoning_per_mtok=record.reasoning_per_mtok,
                request_fee_usd=record.request_fee_usd,
                tiers=record.tiers,
                effective_from=record.effective_from,
                effective_until=record.effective_until,
            )
        )
    return prices
