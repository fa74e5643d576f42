"""Write operations of margins: Stripe connect/disconnect, revenue sync, customer mappings, margin
settings, health-tier tracking (which queues `margin.threshold_crossed` webhooks).
"""

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import stripe
from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Q
from django.utils import timezone

from accounts.api.errors import ApiError, Conflict
from accounts.crypto import DecryptionError
from accounts.models import Organization
from events.locks import organization_lock_key
from events.models import Customer

from . import calculations, matching, stripe_api
from .models import (
    CustomerHealth,
    CustomerMapping,
    MarginSettings,
    StripeConnection,
    StripeCustomer,
    StripeInvoice,
    SyncRun,
    WebhookEndpoint,
)

logger = logging.getLogger(__name__)

# Invoices created shortly before the previous sync started are read again (clock skew between Stripe
# and us, invoices created while that sync was paging). Upserts make the overlap harmless.
SYNC_OVERLAP_SECONDS = 300
# Invoices that may still be paid, so every sync re-reads them: Stripe lets an `uncollectible` one be paid later.
UNPAID_STATUSES = ("draft", "open", "uncollectible")


class StripeNotConnected(ApiError):
    status_code = 404
    default_code = "not_found"
    default_detail = "Stripe is not connected for this organization."


class StripeSyncFailed(ApiError):
    status_code = 502
    default_code = "stripe_sync_failed"
    default_detail = "The revenue sync could not read from Stripe."


class StripeUnavailable(ApiError):
    status_code = 502
    default_code = "stripe_unavailable"
    default_detail = "Stripe could not be reached; try again."


# --- Connect / disconnect ----------------------------------------------------------------------


def stripe_connect(*, organization: Organization, stripe_key: str) -> StripeConnection:
    """Validate the key's format, check it against Stripe with `customers.list(limit=1)`, store it encrypted."""
    try:
        stripe_api.validate_key_format(stripe_key)
    except stripe_api.StripeKeyFormatError as exc:
        raise ApiError(str(exc), code="validation_error", details={"field": "stripeKey"}) from exc
    if StripeConnection.objects.filter(organization=organization).exists():
        raise Conflict("Stripe is already connected; disconnect first.")
    try:
        stripe_api.check_key(stripe_key)
    except stripe.StripeError as exc:
        if stripe_api.classify(exc).transient:  # Stripe down or rate limiting: nothing is wrong with the key
            raise StripeUnavailable(
                f"Stripe could not check the key right now ({type(exc).__name__}); try again.",
                details={"transient": True},
            ) from exc
        raise ApiError(
            "The key did not authenticate with Stripe.",
            code="stripe_validation_failed",
            details={"field": "stripeKey", "stripe_error": type(exc).__name__},
        ) from exc
    try:
        with transaction.atomic():
            return StripeConnection.objects.create(
                organization=organization, secret_key=stripe_key, key_prefix=stripe_api.mask_key(stripe_key)
            )
    except IntegrityError as exc:  # a concurrent connect won the race
        raise Conflict("Stripe is already connected; disconnect first.") from exc


@transaction.atomic
def stripe_disconnect(*, organization: Organization) -> None:
    """Remove the connection and, as the seed says, all revenue data and customer mappings of the organization."""
    connection = (
        StripeConnection.objects.select_for_update().defer("secret_key").filter(organization=organization).first()
    )
    if connection is None:
        raise StripeNotConnected()
    CustomerMapping.objects.filter(organization=organization).delete()
    CustomerHealth.objects.filter(organization=organization).delete()
    connection.delete()  # cascades to synced customers, invoices and sync runs


# --- Revenue sync ------------------------------------------------------------------------------


@dataclass
class SyncResult:
    organization_id: object
    sync_run_id: object
    customers_processed: int = 0
    periods_updated: int = 0
    auto_matches_created: int = 0
    invoices_fetched: int = 0
    invoices_skipped: int = 0
    skipped_currencies: dict[str, int] = field(default_factory=dict)
    duration_ms: int = 0


def _timestamp(value) -> datetime | None:
    return datetime.fromtimestamp(int(value), tz=UTC) if value else None


def _invoice_columns(invoice: dict) -> dict:
    status = invoice.get("status") or ""
    currency = (invoice.get("currency") or "").lower()
    amount_paid = int(invoice.get("amount_paid") or 0)
    created = _timestamp(invoice.get("created"))
    paid_at = None
    if status == "paid":
        paid_at = _timestamp((invoice.get("status_transitions") or {}).get("paid_at")) or created
    customer = invoice.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    counts_as_revenue = status == "paid" and currency == "usd"
    ours = str((invoice.get("metadata") or {}).get("tokenledger_invoice_id") or "")[:64]
    return {
        "stripe_customer_id": customer or "",
        "status": status,
        "currency": currency,
        "amount_paid": amount_paid,
        "amount_paid_microdollars": (
            calculations.minor_units_to_micro_units(amount_paid, currency) if counts_as_revenue else None
        ),
        "stripe_created": created,
        "paid_at": paid_at,
        "period": calculations.period_of(paid_at) if paid_at else "",
        "tokenledger_invoice_id": ours,
        "raw": invoice,
    }


def revenue_sync(*, organization: Organization, trigger: str = SyncRun.Trigger.MANUAL) -> SyncResult:
    """Read new Stripe customers and invoices, upsert them, auto-match customers, track health tiers.

    Network reads happen before the write transaction; the writes (and the cursor) commit together,
    so a failed sync changes nothing but its SyncRun row. Raises StripeNotConnected, or a
    `stripe_api.StripeSyncError` subclass (transient ones are retried by the Celery task).
    """
    connection = StripeConnection.objects.defer("secret_key").filter(organization=organization).first()
    if connection is None:
        raise StripeNotConnected()
    started = timezone.now()
    clock = time.monotonic()
    run = SyncRun.objects.create(organization=organization, connection=connection, trigger=trigger, started_at=started)
    since = None
    if connection.invoices_synced_until is not None:
        since = connection.invoices_synced_until - SYNC_OVERLAP_SECONDS
    recheck = list(
        StripeInvoice.objects.filter(organization=organization, status__in=UNPAID_STATUSES).values_list(
            "stripe_id", flat=True
        )
    )
    try:
        snapshot = stripe_api.fetch_snapshot(
            key=_stored_key(connection), invoices_created_since=since, recheck_invoice_ids=recheck
        )
    except stripe_api.StripeSyncError as exc:
        _record_failure(run=run, connection=connection, error=exc, clock=clock)
        raise
    result = _store_snapshot(
        organization=organization, connection_id=connection.pk, run=run, snapshot=snapshot, started=started
    )
    result.duration_ms = int((time.monotonic() - clock) * 1000)
    SyncRun.objects.filter(pk=run.pk).update(duration_ms=result.duration_ms)
    return result


def _stored_key(connection: StripeConnection) -> str:
    try:
        return StripeConnection.objects.values_list("secret_key", flat=True).get(pk=connection.pk)
    except DecryptionError as exc:
        raise stripe_api.StripeKeyRejected(
            "The stored Stripe key cannot be decrypted with SECRETS_ENCRYPTION_KEYS; reconnect Stripe."
        ) from exc


def _record_failure(*, run: SyncRun, connection: StripeConnection, error: Exception, clock: float) -> None:
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.FAILED, finished_at=now, error=str(error)[:2000],
        duration_ms=int((time.monotonic() - clock) * 1000),
    )
    updates = {"last_error": str(error)[:2000], "updated_at": now}
    if isinstance(error, stripe_api.StripeKeyRejected):
        updates["status"] = StripeConnection.Status.ERROR
    StripeConnection.objects.filter(pk=connection.pk).update(**updates)
    logger.warning("revenue sync failed for organization %s: %s", connection.organization_id, error)


@transaction.atomic
def _store_snapshot(
    *, organization: Organization, connection_id, run: SyncRun, snapshot: stripe_api.StripeSnapshot, started: datetime
) -> SyncResult:
    # Serializes concurrent syncs of one organization (cron and a manual click, say).
    connection = StripeConnection.objects.select_for_update().defer("secret_key").get(pk=connection_id)
    now = timezone.now()
    result = SyncResult(organization_id=organization.pk, sync_run_id=run.pk)

    customer_rows = [
        StripeCustomer(
            organization=organization,
            connection=connection,
            stripe_id=customer["id"],
            name=customer.get("name") or "",
            email=customer.get("email") or "",
            metadata=customer.get("metadata") or {},
            raw=customer,
            stripe_created=_timestamp(customer.get("created")),
            synced_at=now,
        )
        for customer in snapshot.customers
    ]
    StripeCustomer.objects.bulk_create(
        customer_rows,
        update_conflicts=True,
        unique_fields=["organization", "stripe_id"],
        update_fields=["connection", "name", "email", "metadata", "raw", "stripe_created", "synced_at"],
        batch_size=500,
    )
    result.customers_processed = len(customer_rows)

    invoices = {invoice["id"]: invoice for invoice in snapshot.invoices}  # the overlap may repeat an id
    before = {
        row["stripe_id"]: (row["stripe_customer_id"], row["period"], row["amount_paid_microdollars"])
        for row in StripeInvoice.objects.filter(organization=organization, stripe_id__in=invoices).values(
            "stripe_id", "stripe_customer_id", "period", "amount_paid_microdollars"
        )
    }
    skipped: Counter[str] = Counter()
    touched: set[tuple[str, str]] = set()
    invoice_rows = []
    for invoice_id, invoice in invoices.items():
        columns = _invoice_columns(invoice)
        if columns["status"] == "paid" and columns["currency"] != "usd":
            skipped[columns["currency"]] += 1
        after = (columns["stripe_customer_id"], columns["period"], columns["amount_paid_microdollars"])
        previous = before.get(invoice_id)
        if previous != after:
            for customer_id, period, amount in filter(None, (previous, after)):
                if period and amount is not None:
                    touched.add((customer_id, period))
        invoice_rows.append(
            StripeInvoice(
                organization=organization, connection=connection, stripe_id=invoice_id, synced_at=now, **columns
            )
        )
    StripeInvoice.objects.bulk_create(
        invoice_rows,
        update_conflicts=True,
        unique_fields=["organization", "stripe_id"],
        update_fields=[
            "connection", "stripe_customer_id", "status", "currency", "amount_paid", "amount_paid_microdollars",
            "stripe_created", "paid_at", "period", "tokenledger_invoice_id", "raw", "synced_at",
        ],
        batch_size=500,
    )
    if snapshot.missing_invoice_ids:
        StripeInvoice.objects.filter(organization=organization, stripe_id__in=snapshot.missing_invoice_ids).delete()
    result.invoices_fetched = len(invoices)
    result.invoices_skipped = sum(skipped.values())
    result.skipped_currencies = dict(sorted(skipped.items()))
    result.periods_updated = len(touched)
    result.auto_matches_created = auto_match_customers(organization=organization)

    connection.invoices_synced_until = int(started.timestamp())
    connection.last_synced_at = now
    connection.status = StripeConnection.Status.ACTIVE
    connection.last_error = ""
    connection.save(update_fields=["invoices_synced_until", "last_synced_at", "status", "last_error", "updated_at"])
    SyncRun.objects.filter(pk=run.pk).update(
        status=SyncRun.Status.SUCCEEDED,
        finished_at=timezone.now(),
        customers_processed=result.customers_processed,
        periods_updated=result.periods_updated,
        auto_matches_created=result.auto_matches_created,
        invoices_fetched=result.invoices_fetched,
        invoices_skipped=result.invoices_skipped,
        skipped_currencies=result.skipped_currencies,
    )
    health_recompute(organization=organization)
    return result


# --- Auto-matching -----------------------------------------------------------------------------


def auto_match_customers(*, organization: Organization) -> int:
    """Link synced Stripe customers to usage customers (see `margins.matching`); returns mappings created.

    - Manual mappings are never touched.
    - An exact link (metadata.customer_id, or the Stripe id on the usage customer) becomes an active
      auto mapping with confidence 1. When the metadata now names another usage customer, the
      mapping is re-pointed, so the Stripe customer's existing invoices count for the new one.
    - An exact auto mapping whose basis disappeared (metadata removed or changed to an unknown id)
      is dropped, and the customer is considered for a suggestion like any unmatched one.
    - Otherwise the most similar usage customer not already actively mapped becomes a pending auto
      mapping with its confidence; a rejected suggestion is not proposed again.
    """
    tag_key = CustomerMapping.DEFAULT_TAG_KEY
    usage = [
        matching.UsageSide(
            external_id=row["external_id"], name=row["name"] or "", email=row["email"] or "",
            stripe_customer_id=row["stripe_customer_id"] or "",
        )
        for row in Customer.objects.filter(organization=organization).values(
            "external_id", "name", "email", "stripe_customer_id"
        )
    ]
    mappings = {
        mapping.stripe_customer_id: mapping
        for mapping in CustomerMapping.objects.select_for_update().filter(organization=organization, tag_key=tag_key)
    }
    actively_mapped = {m.tag_value for m in mappings.values() if m.status == CustomerMapping.Status.ACTIVE}
    unmapped_usage = [u for u in usage if u.external_id not in actively_mapped]
    created = 0
    for customer in StripeCustomer.objects.filter(organization=organization).order_by("stripe_id"):
        existing = mappings.get(customer.stripe_id)
        if existing is not None and existing.match_type == CustomerMapping.MatchType.MANUAL:
            continue
        side = matching.StripeSide(
            stripe_id=customer.stripe_id, name=customer.name, email=customer.email,
            metadata_customer_id=str((customer.metadata or {}).get("customer_id") or ""),
        )
        exact = matching.exact_match(side, usage)
        if exact is not None:
            if existing is None:
                _create_auto(organization, customer.stripe_id, exact, CustomerMapping.Status.ACTIVE)
                created += 1
            elif existing.tag_value != exact.external_id or existing.status == CustomerMapping.Status.PENDING:
                _point(existing, exact, CustomerMapping.Status.ACTIVE)
            continue
        if existing is not None and existing.status == CustomerMapping.Status.ACTIVE:
            if existing.reason == CustomerMapping.Reason.SIMILARITY:
                continue  # an operator approved it
            existing.delete()  # its exact basis is gone
            existing = None
        suggestion = matching.best_suggestion(side, unmapped_usage)
        if suggestion is None:
            if existing is not None and existing.status == CustomerMapping.Status.PENDING:
                existing.delete()
            continue
        if existing is None:
            _create_auto(organization, customer.stripe_id, suggestion, CustomerMapping.Status.PENDING)
            created += 1
        elif existing.tag_value != suggestion.external_id or (
            existing.status == CustomerMapping.Status.PENDING and existing.confidence != suggestion.confidence
        ):
            _point(existing, suggestion, CustomerMapping.Status.PENDING)
    return created


def _create_auto(organization: Organization, stripe_customer_id: str, match: matching.Match, status: str) -> None:
    CustomerMapping.objects.create(
        organization=organization,
        stripe_customer_id=stripe_customer_id,
        tag_key=CustomerMapping.DEFAULT_TAG_KEY,
        tag_value=match.external_id,
        match_type=CustomerMapping.MatchType.AUTO,
        status=status,
        reason=match.reason,
        confidence=match.confidence,
    )


def _point(mapping: CustomerMapping, match: matching.Match, status: str) -> None:
    mapping.tag_value = match.external_id
    mapping.status = status
    mapping.reason = match.reason
    mapping.confidence = match.confidence
    mapping.save(update_fields=["tag_value", "status", "reason", "confidence", "updated_at"])


# --- Customer mappings (API and admin) ---------------------------------------------------------


@transaction.atomic
def customer_mapping_upsert(
    *,
    organization: Organization,
    stripe_customer_id: str,
    tag_value: str,
    tag_key: str = CustomerMapping.DEFAULT_TAG_KEY,
    match_type: str = CustomerMapping.MatchType.MANUAL,
) -> tuple[CustomerMapping, bool]:
    """Create or update the mapping of (organization, stripe_customer_id, tag_key); an operator's write is
    active at once. Returns (mapping, created)."""
    mapping, created = CustomerMapping.objects.select_for_update().update_or_create(
        organization=organization,
        stripe_customer_id=stripe_customer_id,
        tag_key=tag_key,
        defaults={
            "tag_value": tag_value,
            "match_type": match_type,
            "status": CustomerMapping.Status.ACTIVE,
            "reason": CustomerMapping.Reason.API,
            "confidence": None,
        },
    )
    return mapping, created


@transaction.atomic
def customer_mapping_delete(*, mapping: CustomerMapping) -> None:
    mapping.delete()


@transaction.atomic
def customer_mapping_review(*, mapping: CustomerMapping, approve: bool) -> CustomerMapping:
    """Approve (→ active) or reject a suggested mapping. Only pending mappings can be reviewed."""
    mapping = CustomerMapping.objects.select_for_update().get(pk=mapping.pk)
    if mapping.status != CustomerMapping.Status.PENDING:
        raise Conflict(
            f"Only pending mappings can be approved or rejected; this one is {mapping.status}.",
            details={"status": mapping.status},
        )
    mapping.status = CustomerMapping.Status.ACTIVE if approve else CustomerMapping.Status.REJECTED
    mapping.save(update_fields=["status", "updated_at"])
    return mapping


# --- Margin settings ---------------------------------------------------------------------------


@transaction.atomic
def margin_settings_update(*, organization: Organization, **values: Decimal) -> MarginSettings:
    """Update thresholds / target (keys: healthy_min_percent, at_risk_min_percent, target_margin_percent)."""
    margin_settings, _ = MarginSettings.objects.select_for_update().get_or_create(organization=organization)
    for name, value in values.items():
        setattr(margin_settings, name, value)
    if margin_settings.at_risk_min_percent > margin_settings.healthy_min_percent:
        raise ApiError(
            "atRiskMinPercent must not exceed healthyMinPercent.", details={"field": "atRiskMinPercent"}
        )
    margin_settings.save()
    health_recompute(organization=organization)
    return margin_settings


# --- Health tiers and threshold webhooks -------------------------------------------------------

# "MRGN": tier tracking's lock, a 64-bit key from the organization's UUID (events.locks.organization_lock_key)
HEALTH_LOCK_NAMESPACE = 0x4D52474E


@transaction.atomic
def health_recompute(*, organization: Organization, now: datetime | None = None) -> list[dict]:
    """Compute every customer's tier for the current month; for each tier that changed since the last
    computation in the same month, queue a `margin.threshold_crossed` webhook. Returns the crossings.

    Runs after each sync, after a settings change and on a schedule (`margins.tasks.health_recompute_all`);
    one at a time per organization (an advisory lock), so two runs neither both create a baseline nor
    both report the same crossing.

    A customer seen for the first time, or for the first time in a new month, sets a baseline and
    sends nothing: at a month's start revenue is usually not yet invoiced, and a tier drop caused by
    the calendar alone is not an alert. Customers no longer in the table lose their baseline.
    """
    from . import selectors, webhooks

    with db_connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [organization_lock_key(organization.pk, HEALTH_LOCK_NAMESPACE)]
        )
    period = calculations.period_of(now or timezone.now())
    # Only the rows: the table's summary (sync status, skipped currencies) would be two queries for nothing.
    customers = selectors.customer_margins(organization=organization, period=period)
    known = {row.tag_value: row for row in CustomerHealth.objects.select_for_update().filter(organization=organization)}
    crossings = []
    for row in customers:
        previous = known.pop(row.tag_value, None)
        if previous is None:
            CustomerHealth.objects.create(
                organization=organization, tag_value=row.tag_value, period=period, tier=row.health_tier,
                margin_percent=row.margin_percent,
            )
            continue
        if previous.period == period and previous.tier != row.health_tier:
            crossings.append(
                {
                    "customer": row.tag_value,
                    "stripeCustomerId": row.stripe_customer_id,
                    "customerName": row.customer_name,
                    "period": period,
                    "previousTier": previous.tier,
                    "currentTier": row.health_tier,
                    "direction": "worsened"
                    if calculations.tier_is_worse(row.health_tier, previous.tier)
                    else "improved",
                    "marginPercent": None if row.margin_percent is None else float(row.margin_percent),
                    "revenueMicrodollars": row.revenue,
                    "costMicrodollars": row.cost,
                }
            )
        if (previous.tier, previous.margin_percent, previous.period) != (row.health_tier, row.margin_percent, period):
            previous.tier, previous.margin_percent, previous.period = row.health_tier, row.margin_percent, period
            previous.save(update_fields=["tier", "margin_percent", "period", "updated_at"])
    if known:
        CustomerHealth.objects.filter(pk__in=[row.pk for row in known.values()]).delete()
    for crossing in crossings:
        webhooks.webhook_event_queue(
            organization=organization, event_type=webhooks.THRESHOLD_CROSSED, data=crossing
        )
    return crossings


def connected_organization_ids() -> list:
    """Organizations with a Stripe connection and the Pro plan (the only ones the scheduled sync serves)."""
    return list(
        StripeConnection.objects.filter(organization__plan=Organization.Plan.PRO)
        .order_by("created_at")
        .values_list("organization_id", flat=True)
    )


def organizations_with_threshold_webhooks() -> list:
    """Pro organizations with an active endpoint for `margin.threshold_crossed` (the scheduled tier check's)."""
    endpoints = WebhookEndpoint.objects.filter(is_active=True, organization__plan=Organization.Plan.PRO).filter(
        Q(event_types=[]) | Q(event_types__contains=[WebhookEndpoint.EVENT_THRESHOLD_CROSSED])
    )
    return list(endpoints.order_by("organization_id").values_list("organization_id", flat=True).distinct())


# --- Webhook endpoints -------------------------------------------------------------------------


@transaction.atomic
def webhook_endpoint_create(
    *, organization: Organization, url: str, event_types: list[str] | None = None
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its signing secret (stored encrypted, shown to the caller once)."""
    from .webhooks import THRESHOLD_CROSSED, generate_secret

    secret = generate_secret()
    endpoint = WebhookEndpoint.objects.create(
        organization=organization, url=url, secret=secret, event_types=event_types or [THRESHOLD_CROSSED]
    )
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    endpoint.delete()
