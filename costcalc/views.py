from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.renderers import dumps, json_number
from accounts.api.views import OrganizationScopedAPIView
from accounts.tenancy import resolve_tenant

from .selectors import CurrentPrice, catalog_snapshot, current_prices
from .serializers import MarginDashModelListSerializer, ModelListSerializer
from .sources import tiers_to_json

# The list depends on the catalog version, the organization's overrides, the vendor filter and the
# clock (a dated price can start); a computed body is reused for a short while per key.
_BODY_TTL_SECONDS = 30.0
_bodies: dict[tuple[Any, ...], tuple[float, str, bytes]] = {}
_bodies_lock = threading.Lock()


def _iso(value) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _item(price: CurrentPrice) -> dict[str, Any]:
    return {
        "slug": price.slug,
        "vendor": price.vendor,
        "display_name": price.display_name,
        "input_per_mtok": str(price.input_per_mtok),
        "output_per_mtok": str(price.output_per_mtok),
        "cache_read_per_mtok": None if price.cache_read_per_mtok is None else str(price.cache_read_per_mtok),
        "cache_write_per_mtok": None if price.cache_write_per_mtok is None else str(price.cache_write_per_mtok),
        "reasoning_per_mtok": None if price.reasoning_per_mtok is None else str(price.reasoning_per_mtok),
        "request_fee_usd": str(price.request_fee_usd),
        "tiers": tiers_to_json(price.tiers),
        "effective_from": _iso(price.effective_from),
        "effective_until": _iso(price.effective_until),
        "source": price.source,
    }


def _margindash_item(price: CurrentPrice) -> dict[str, Any]:
    # MarginDash's SDK reads the prices as JSON numbers; they are written from the Decimal's exact
    # text (never through a float), so what the catalog stores is what the client parses.
    return {
        "slug": price.slug,
        "vendor": price.vendor,
        "pricing": {
            "input_per_1m_usd": json_number(price.input_per_mtok),
            "output_per_1m_usd": json_number(price.output_per_mtok),
        },
    }


def _matches(if_none_match: str, etag: str) -> bool:
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates or f"W/{etag}" in candidates


def _vendor_filter(request) -> str | None:
    return (request.query_params.get("vendor") or "").strip().lower() or None


def _price_list_response(request, *, shape: str, organization_id, vendor: str | None) -> HttpResponse:
    """The rendered list for (catalog version, organization, vendor, shape), reused for a short
    while, with an ETag so pollers get a 304 when nothing changed."""
    snapshot = catalog_snapshot()
    key = (snapshot.version, organization_id, vendor, shape)
    now = time.monotonic()
    cached = _bodies.get(key)
    if cached is None or now - cached[0] > _BODY_TTL_SECONDS:
        prices = current_prices(organization_id=organization_id, vendor=vendor)
        if shape == "margindash":
            body = dumps({"models": [_margindash_item(price) for price in prices]})
        else:
            body = dumps({"data": [_item(price) for price in prices]})
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with _bodies_lock:
            if len(_bodies) > 1000:
                _bodies.clear()
            _bodies[key] = cached = (now, etag, body)
    _, etag, body = cached
    headers = {"ETag": etag, "Cache-Control": "private, max-age=0, must-revalidate", "Vary": "Authorization"}
    if _matches(request.headers.get("If-None-Match", ""), etag):
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
    # Already rendered: these are exactly the bytes the ETag was computed from.
    return HttpResponse(body, content_type="application/json", headers=headers)


_VENDOR_PARAMETER = OpenApiParameter("vendor", str, description="only this vendor's slugs, e.g. anthropic")
_NOT_MODIFIED = OpenApiResponse(description="Not modified (ETag matched)")


class ModelPriceListView(OrganizationScopedAPIView):
    """Every priced model slug with its vendor and current prices, in full (`GET /api/v1/model-prices`).

    Ordered by slug. `?vendor=anthropic` filters. The organization's own price overrides replace the
    catalog price for that organization. Poll cheaply with `If-None-Match: <ETag>` (304 when unchanged).
    """

    @extend_schema(parameters=[_VENDOR_PARAMETER], responses={200: ModelListSerializer, 304: _NOT_MODIFIED})
    def get(self, request):
        return _price_list_response(
            request, shape="tokenledger", organization_id=self.organization.pk, vendor=_vendor_filter(request)
        )


class MarginDashModelListView(APIView):
    """MarginDash's public `GET /api/v1/models`: `{"models": [{slug, pricing: {input_per_1m_usd,
    output_per_1m_usd}}]}`, what the `ai-cost-calc` SDK's `cost()` reads.

    No key needed: without one it is the global catalog. With an API key (or a session) the caller's
    organization overrides apply, as they do when its events are priced; a wrong key is still a 401.
    """

    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[_VENDOR_PARAMETER],
        responses={200: MarginDashModelListSerializer, 304: _NOT_MODIFIED},
    )
    def get(self, request):
        organization_id = resolve_tenant(request).organization.pk if request.user.is_authenticated else None
        return _price_list_response(
            request, shape="margindash", organization_id=organization_id, vendor=_vendor_filter(request)
        )
