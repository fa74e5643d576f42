"""Cloudflare AI Gateway billing (seed 004) at Cloudflare's own paths, for its SDK (`cloudflare` on
PyPI, `client.ai_gateway.billing.*`): `/accounts/{account_id}/ai-gateway/billing/...`, also under
`/client/v4` (the conventional end of Cloudflare's base URL).

The objects are those of our seed-004 endpoints (`/api/v1/customers/{id}/billing/...`, same views,
same services); what differs is Cloudflare's:
- the v4 envelope `{"result", "success", "errors": [{"code", "message"}], "messages"}`, on errors too
  (`code` is the HTTP status, `message` ours);
- `account_id` is a customer of the caller's organization: our uuid, external id, an ingest alias or
  its Stripe customer id (404 in the envelope otherwise);
- `usage_history` takes `value_grouping_window` (`day`/`hour`) and `start_time`/`end_time` in Unix
  milliseconds, without a metric: the value is what the customer was charged in the window, in cents;
- `invoice_history` pages with `page`/`per_page` and answers a `pagination` object;
- top-up configuration fields Cloudflare spells in camelCase (`disabledReason`, `lastFailedAt`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import cached_property

from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.api.renderers import json_number
from billing import presentation
from billing.credits import selectors as credit_selectors
from billing.credits import views as credit_views
from billing.models import BillableMetric, Invoice
from billing.views import (
    WINDOW_STEP,
    InvoiceHistoryView,
    InvoicePreviewView,
    UsageHistoryView,
    metric_window_values,
    usage_windows,
)
from costcalc.money import MICRODOLLARS_PER_CENT
from events import selectors as event_selectors

# Cloudflare's own camelCase for two of the top-up configuration's fields (its SDK reads these names).
TOPUP_CONFIG_ALIASES = {"disabled_reason": "disabledReason", "last_failed_at": "lastFailedAt"}
INVOICE_TYPES = ("all", "auto", "manual")
DEFAULT_PER_PAGE = 20
MAX_PER_PAGE = 100
USAGE_WINDOWS = ("day", "hour")
DEFAULT_USAGE_RANGE = {"day": timedelta(days=30), "hour": timedelta(hours=24)}


def envelope(status_code: int, data) -> dict:
    """Cloudflare's v4 envelope around one of our bodies (an error body becomes `errors`)."""
    if status_code >= 400:
        error = data.get("error", {}) if isinstance(data, dict) else {}
        message = error.get("message") or str(data)
        return {"result": None, "success": False, "errors": [{"code": status_code, "message": message}],
                "messages": []}  # fmt: skip
    return {"result": data, "success": True, "errors": [], "messages": []}


class CloudflareDialect:
    """Mixed in front of a seed-004 view: `account_id` names the customer, bodies go in the v4 envelope."""

    schema = None  # Cloudflare's API reference documents these; ours lists the /api/v1 originals

    def dispatch(self, request, *args, account_id: str, **kwargs):
        # The seed-004 views read the customer from `customer_id`.
        return super().dispatch(request, *args, customer_id=account_id, **kwargs)

    @cached_property
    def customer(self):
        identifier = self.kwargs["customer_id"]
        found = None
        if "\x00" not in identifier:  # PostgreSQL text cannot hold NUL: no customer has such an id
            found = event_selectors.customer_find(organization=self.organization, identifier=identifier)
        if found is None:
            raise NotFound(f"No account {identifier!r} in this organization.")
        return found

    def finalize_response(self, request, response, *args, **kwargs):
        if isinstance(response, Response):
            response.data = envelope(response.status_code, response.data)
        return super().finalize_response(request, response, *args, **kwargs)


def _camel_topup_config(config: dict) -> dict:
    return {TOPUP_CONFIG_ALIASES.get(key, key): value for key, value in config.items()}


class CreditBalanceView(CloudflareDialect, credit_views.CreditBalanceView):
    def get(self, request, customer_id: str):
        response = super().get(request, customer_id)
        response.data["topup_config"] = _camel_topup_config(response.data["topup_config"])
        return response


class TopupView(CloudflareDialect, credit_views.TopupView):
    def post(self, request, customer_id: str):
        if request.data.get("payment_method_id") is not None:
            # Charging a card other than the saved default is not supported: refuse rather than ignore it.
            raise ValidationError({"payment_method_id": "Not supported: top-ups charge the saved default card, "
                                   "or return a client_secret to confirm with a new card."})  # fmt: skip
        return super().post(request, customer_id)


class TopupStatusView(CloudflareDialect, credit_views.TopupStatusView):
    pass


class TopupConfigView(CloudflareDialect, credit_views.TopupConfigView):
    def get(self, request, customer_id: str):
        response = super().get(request, customer_id)
        response.data = _camel_topup_config(response.data)
        return response


class SpendingLimitView(CloudflareDialect, credit_views.SpendingLimitView):
    pass


class InvoicePreviewView(CloudflareDialect, InvoicePreviewView):
    pass


class InvoiceHistoryView(CloudflareDialect, InvoiceHistoryView):
    """Closed invoices, newest period first, `page`/`per_page` pages and Cloudflare's `pagination`.
    `type`: `all` and `auto` list every invoice (ours are all made by billing periods); `manual` none."""

    def get(self, request, customer_id: str):
        params = request.query_params
        kind = params.get("type", "all")
        if kind not in INVOICE_TYPES:
            raise ValidationError({"type": f"Must be one of {', '.join(INVOICE_TYPES)}."})
        page = _int(params, "page", default=1, low=1, high=10**6)
        per_page = _int(params, "per_page", default=DEFAULT_PER_PAGE, low=1, high=MAX_PER_PAGE)
        invoices = (
            self.get_queryset()
            .filter(customer=self.customer)
            .exclude(status=Invoice.Status.DRAFT)
            .order_by("-period_start", "-pk")
        )
        if kind == "manual":
            invoices = invoices.none()
        total = invoices.count()
        offset = (page - 1) * per_page
        items = list(invoices[offset : offset + per_page]) if offset < total else []
        return Response({
            "invoices": [presentation.seed_invoice_history_item(invoice) for invoice in items],
            "pagination": {"has_more": offset + len(items) < total, "page": page, "per_page": per_page,
                           "total_count": total},
        })  # fmt: skip


class UsageHistoryView(CloudflareDialect, UsageHistoryView):
    """Per `value_grouping_window` between `start_time` and `end_time` (Unix ms; default the last 30 days
    by day, the last 24 hours by hour): what the customer was charged there, in cents (exact, as spending
    limits count it). With our `billable_metric_id` extension: that metric's aggregated usage instead."""

    def get(self, request, customer_id: str):
        params = request.query_params
        size = params.get("value_grouping_window")
        if size not in USAGE_WINDOWS:
            raise ValidationError({"value_grouping_window": f"Required, one of {', '.join(USAGE_WINDOWS)}."})
        end = _unix_ms(params, "end_time") or timezone.now()
        start = _unix_ms(params, "start_time") or end - DEFAULT_USAGE_RANGE[size]
        windows = usage_windows(start=start, end=end, size=size, end_field="end_time",
                                size_field="value_grouping_window")  # fmt: skip
        step = WINDOW_STEP[size]
        metric_id = params.get("billable_metric_id")
        if metric_id:
            metric = BillableMetric.objects.filter(organization=self.organization, pk=_metric_pk(metric_id)).first()
            if metric is None:
                raise NotFound("No billable metric with this id.")
            found = metric_window_values(customer=self.customer, metric=metric, windows=windows, size=size)
            values = [found.get(window, 0) for window in windows]
            prefix = str(metric.pk)
        else:
            spent = credit_selectors.spend_history(
                customer=self.customer, windows=[(window, window + step) for window in windows]
            )
            values = [Decimal(microdollars) / MICRODOLLARS_PER_CENT for microdollars in spent]
            prefix = f"spend:{self.customer.uuid}"
        return Response({
            "history": [
                {"id": f"{prefix}:{_ms(window)}", "aggregated_value": json_number(value),
                 "start_time": _ms(window), "end_time": _ms(window + step)}
                for window, value in zip(windows, values, strict=True)
            ]
        })  # fmt: skip


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _ms(instant: datetime) -> int:
    return presentation.unix(instant) * 1000


def _unix_ms(params, name: str) -> datetime | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    try:
        milliseconds = Decimal(raw)
        if not milliseconds.is_finite():
            raise InvalidOperation
        instant = EARLIEST + timedelta(milliseconds=int(milliseconds))
    except (InvalidOperation, OverflowError, ValueError) as error:
        raise ValidationError({name: "Must be a Unix timestamp in milliseconds."}) from error
    if not EARLIEST <= instant < LATEST:
        raise ValidationError({name: "Must be between 1970-01-01 and 9999-01-01 (UTC)."})
    return instant


def _int(params, name: str, *, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValidationError({name: "Must be an integer."}) from error
    if not low <= value <= high:
        raise ValidationError({name: f"Must be between {low} and {high}."})
    return value


def _metric_pk(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as error:
        raise ValidationError({"billable_metric_id": "Must be a UUID."}) from error
