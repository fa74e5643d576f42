"""Metronome's own API paths and shapes over billing's services, for Metronome's SDK (npm
`@metronome/sdk`): what its getting-started walk-through (seed 001) calls. The base URL is the
server's root (`https://tokenledger.example.com`); Metronome's paths start with `/v1/`.

| Metronome | here |
|---|---|
| `POST /v1/ingest` | events' Metronome ingest (the `/api/v1/ingest` view) |
| `POST /v1/customers` | `customer_create`; answers `{"data": {id, external_id, ingest_aliases, name, custom_fields}}` |
| `POST /v1/billable-metrics/create` | `billable_metric_create`, counting usage that arrived before it |
| `POST /v1/contract-pricing/products/create` | `product_create` |
| `POST /v1/contract-pricing/rate-cards/create` | `rate_card_create` |
| `POST /v1/contract-pricing/rate-cards/addRate` | `rate_create` |
| `POST /v1/contracts/create` | `contract_create` |
| `GET /v1/customers/{customer_id}/invoices` | the invoices in Metronome's fields, `DRAFT`/`FINALIZED`/`VOID` |

Creates answer `{"data": {"id": …}}` (addRate: the rate) with 200, as Metronome does. Bodies are read by
our own create serializers, whose field names are Metronome's. Errors keep our error envelope.
"""

from __future__ import annotations

import uuid

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.api.renderers import json_number
from accounts.api.views import OrganizationScopedAPIView
from accounts.models import Role
from billing import invoicing, services
from billing.models import Invoice, Rate, RateCard
from billing.serializers import (
    BillableMetricCreateSerializer,
    ContractCreateSerializer,
    ProductCreateSerializer,
    RateCardSerializer,
    RateCreateSerializer,
)
from billing.views import _call, contract_create_from, product_create_from
from events import selectors as event_selectors
from events import views as events_views
from events.serializers import CustomerCreateSerializer
from events.services import customer_create

# Metronome's invoice statuses: ours that Metronome has no word for are finalized invoices there.
METRONOME_STATUS = {
    Invoice.Status.DRAFT: "DRAFT",
    Invoice.Status.FINALIZED: "FINALIZED",
    Invoice.Status.PAID: "FINALIZED",
    Invoice.Status.UNCOLLECTIBLE: "FINALIZED",
    Invoice.Status.VOID: "VOID",
}
STATUS_FILTER = {
    "DRAFT": [Invoice.Status.DRAFT],
    "FINALIZED": [Invoice.Status.FINALIZED, Invoice.Status.PAID, Invoice.Status.UNCOLLECTIBLE],
    "VOID": [Invoice.Status.VOID],
}
USD_CENTS = {"id": "USD", "name": "USD (cents)"}  # Metronome's fiat credit type: amounts in cents
DEFAULT_PAGE = 25
MAX_PAGE = 100


class IngestView(events_views.MetronomeIngestView):
    """`POST /v1/ingest`: events' Metronome ingest itself, at Metronome's path."""

    schema = None  # documented once, at /api/v1/ingest


class MetronomeView(OrganizationScopedAPIView):
    envelope = False  # Metronome's own `{"data": …}`, built here
    schema = None  # Metronome's API reference documents these; ours lists the /api/v1 originals
    required_write_role = Role.ADMIN  # configuration, as our /api/v1 equivalents

    def validated(self, serializer_class, *, also_reads: frozenset[str] = frozenset()) -> dict:
        payload = serializer_class(data=self.request.data, context={"organization": self.organization})
        if isinstance(self.request.data, dict):
            # Metronome has many more options (commits, credits, custom fields, ...): one we do not
            # implement is refused, never silently dropped from what was meant to be billed.
            unknown = sorted(set(self.request.data) - set(payload.fields) - also_reads)
            if unknown:
                raise ValidationError({unknown[0]: "Not supported by TokenLedger's Metronome API."})
        payload.is_valid(raise_exception=True)
        return dict(payload.validated_data)


def _id(instance) -> Response:
    return Response({"data": {"id": str(instance.pk)}})


class CustomerCreateView(MetronomeView):
    required_write_role = Role.MEMBER  # as POST /api/v1/customers

    def post(self, request):
        data = self.validated(CustomerCreateSerializer)
        customer = customer_create(organization=self.organization, **data)
        return Response({"data": {
            "id": str(customer.uuid), "external_id": customer.external_id, "ingest_aliases": customer.ingest_aliases,
            "name": customer.name, "custom_fields": {},
        }})  # fmt: skip


class BillableMetricCreateView(MetronomeView):
    def post(self, request):
        data = self.validated(BillableMetricCreateSerializer)
        # Usage sent before the metric existed counts (seed 001 ingests first): creating it rebuilds.
        metric = _call(services.billable_metric_create, organization=self.organization, **data)
        return _id(metric)


class ProductCreateView(MetronomeView):
    def post(self, request):
        data = self.validated(ProductCreateSerializer)
        product = product_create_from(organization=self.organization, data=data)
        return _id(product)


class RateCardCreateView(MetronomeView):
    def post(self, request):
        data = self.validated(RateCardSerializer)
        rate_card = _call(
            services.rate_card_create,
            organization=self.organization,
            name=data["name"],
            description=data.get("description", ""),
        )
        return _id(rate_card)


class RateAddView(MetronomeView):
    def post(self, request):
        rate_card_id = request.data.get("rate_card_id") if isinstance(request.data, dict) else None
        rate_card = RateCard.objects.filter(organization=self.organization, pk=_uuid(rate_card_id)).first()
        if rate_card is None:
            raise ValidationError({"rate_card_id": "No rate card with this id."})
        data = self.validated(RateCreateSerializer, also_reads=frozenset({"rate_card_id"}))
        rate = _call(services.rate_create, rate_card=rate_card, product=data.pop("product_id"), **data)
        return Response({"data": _rate(rate)})


class ContractCreateView(MetronomeView):
    def post(self, request):
        data = self.validated(ContractCreateSerializer)
        contract = contract_create_from(organization=self.organization, data=data)
        return _id(contract)


class CustomerInvoiceListView(MetronomeView):
    """A customer's invoices, newest period first; `status` (DRAFT, FINALIZED, VOID), `limit` and the
    `next_page` cursor Metronome's pagination sends back."""

    def get(self, request, customer_id: str):
        customer = event_selectors.customer_get(organization=self.organization, customer_id=customer_id)
        if customer is None:
            raise NotFound("No customer with this id.")
        invoicing.drafts_refresh(organization_id=self.organization.pk, customer_ids=[customer.pk])
        params = request.query_params
        invoices = (
            Invoice.objects.filter(organization=self.organization, customer=customer)
            .select_related("customer")
            .prefetch_related("lines")
            .order_by("-period_start", "-pk")
        )
        wanted = params.get("status")
        if wanted:
            if wanted.upper() not in STATUS_FILTER:
                raise ValidationError({"status": f"Must be one of {', '.join(STATUS_FILTER)}."})
            invoices = invoices.filter(status__in=STATUS_FILTER[wanted.upper()])
        limit = _bounded(params.get("limit"), "limit", default=DEFAULT_PAGE, low=1, high=MAX_PAGE)
        offset = _bounded(params.get("next_page"), "next_page", default=0, low=0, high=10**9)
        page = list(invoices[offset : offset + limit + 1])
        more = len(page) > limit
        return Response({
            "data": [_invoice(invoice) for invoice in page[:limit]],
            "next_page": str(offset + limit) if more else None,
        })


def _rate(rate: Rate) -> dict:
    shape = {"rate_type": rate.rate_type, "credit_type": USD_CENTS}
    if rate.price is not None:
        shape["price"] = json_number(rate.price)
    tiers = list(rate.tiers.all())
    if tiers:
        shape["tiers"] = [
            {"price": json_number(tier.price), **({"size": json_number(tier.size)} if tier.size is not None else {})}
            for tier in tiers
        ]
    if rate.quantity is not None:
        shape["quantity"] = json_number(rate.quantity)
    return shape


def _instant(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _invoice(invoice: Invoice) -> dict:
    return {
        "id": str(invoice.pk),
        "customer_id": str(invoice.customer.uuid),
        "contract_id": str(invoice.contract_id),
        "type": "USAGE",
        "status": METRONOME_STATUS[invoice.status],
        "credit_type": USD_CENTS,
        "start_timestamp": _instant(invoice.period_start),
        "end_timestamp": _instant(invoice.period_end),
        "issued_at": _instant(invoice.finalized_at) if invoice.finalized_at else None,
        "created_at": _instant(invoice.created_at),
        "subtotal": invoice.total_cents,
        "total": invoice.amount_due_cents,
        "line_items": [
            {
                "name": line.product_name,
                "type": line.product_type,
                "product_id": str(line.product_id),
                "product_type": line.product_type.upper(),
                "credit_type": USD_CENTS,
                "quantity": json_number(line.quantity),
                "unit_price": json_number(line.unit_price),
                "total": line.amount_cents,
                "starting_at": _instant(line.period_start),
                "ending_before": _instant(line.period_end),
                "presentation_group_values": line.group_values or {},
            }
            for line in invoice.lines.all()
        ],
    }


def _uuid(raw) -> uuid.UUID:
    try:
        return uuid.UUID(str(raw))
    except ValueError as error:
        raise ValidationError({"rate_card_id": "Must be a UUID."}) from error


def _bounded(raw, name: str, *, default: int, low: int, high: int) -> int:
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValidationError({name: "Must be an integer."}) from error
    if not low <= value <= high:
        raise ValidationError({name: f"Must be between {low} and {high}."})
    return value
