"""Billing API: configuration modelled on Metronome's create/list endpoints, and per-customer invoices
(ours, plus seed 004's invoice_preview / invoice_history / usage_history shapes as bare seed objects,
without our envelope).

Every view is tenant-scoped through accounts.api.views: another organization's object is a 404.
"""

import uuid
from datetime import UTC, datetime, timedelta
from functools import cached_property

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from accounts.api.pagination import EnvelopeCursorPagination
from accounts.api.views import OrganizationScopedAPIView, OrganizationScopedViewSet
from accounts.models import Role
from events.selectors import customer_get

from . import invoicing, presentation, selectors, services
from .models import LATEST_INSTANT, BillableMetric, Contract, Invoice, Product, Rate, RateCard
from .serializers import (
    BillableMetricCreateSerializer,
    BillableMetricSerializer,
    ContractCreateSerializer,
    ContractSerializer,
    InvoiceLinkCreateSerializer,
    InvoiceSerializer,
    ProductCreateSerializer,
    ProductSerializer,
    RateCardSerializer,
    RateCreateSerializer,
    RateSerializer,
)

# --- Seed 004 response shapes, for the OpenAPI schema -------------------------------------------

_PERIOD = inline_serializer(
    "InvoiceLinePeriod", {"start": serializers.IntegerField(), "end": serializers.IntegerField()}
)
INVOICE_PREVIEW_SCHEMA = inline_serializer(
    "BillingInvoicePreviewResponse",
    {
        "id": serializers.CharField(),
        "amount_due": serializers.IntegerField(help_text="Cents: total minus credits applied"),
        "amount_paid": serializers.IntegerField(help_text="Cents"),
        "amount_remaining": serializers.IntegerField(help_text="Cents"),
        "currency": serializers.CharField(),
        "invoice_lines": inline_serializer(
            "BillingInvoiceLine",
            {
                "amount": serializers.IntegerField(help_text="Cents, rounded once (ROUND_HALF_UP)"),
                "currency": serializers.CharField(),
                "description": serializers.CharField(allow_null=True),
                "period": _PERIOD,
                "pricing": inline_serializer(
                    "InvoiceLinePricing",
                    {"unit_amount_decimal": serializers.CharField(allow_null=True, help_text="Cents per unit")},
                ),
                "quantity": serializers.DecimalField(max_digits=None, decimal_places=None, coerce_to_string=False,
                                                     help_text="An exact JSON number, never a float"),
                "pretax_credit_amounts": inline_serializer(
                    "InvoiceLinePretaxCreditAmount",
                    {
                        "amount": serializers.IntegerField(help_text="Cents"),
                        "type": serializers.CharField(),
                        "credit_balance_transaction": serializers.CharField(allow_null=True),
                        "discount": serializers.CharField(allow_null=True),
                    },
                    many=True,
                ),
            },
            many=True,
        ),
        "period_end": serializers.IntegerField(help_text="Unix seconds"),
        "period_start": serializers.IntegerField(help_text="Unix seconds"),
        "status": serializers.ChoiceField(choices=["draft", "open", "paid", "uncollectible", "void"]),
    },
)
INVOICE_HISTORY_SCHEMA = inline_serializer(
    "BillingInvoiceHistoryResponse",
    {
        "invoices": inline_serializer(
            "BillingInvoiceHistoryItem",
            {
                "amount_due": serializers.IntegerField(help_text="Cents"),
                "amount_paid": serializers.IntegerField(help_text="Cents"),
                "amount_remaining": serializers.IntegerField(help_text="Cents"),
                "currency": serializers.CharField(),
                "id": serializers.CharField(allow_null=True),
                "attempt_count": serializers.IntegerField(allow_null=True),
                "attempted": serializers.BooleanField(allow_null=True),
                "auto_advance": serializers.BooleanField(allow_null=True),
                "created": serializers.IntegerField(allow_null=True, help_text="Unix seconds"),
                "created_by": serializers.CharField(allow_null=True),
                "description": serializers.CharField(allow_null=True),
                "invoice_origin": serializers.CharField(allow_null=True),
                "invoice_pdf": serializers.CharField(allow_null=True),
                "status": serializers.ChoiceField(choices=["open", "paid", "uncollectible", "void"], allow_null=True),
            },
            many=True,
        ),
    },
)
USAGE_HISTORY_SCHEMA = inline_serializer(
    "BillingUsageHistoryResponse",
    {
        "history": inline_serializer(
            "BillingUsageHistoryWindow",
            {
                "id": serializers.CharField(),
                "aggregated_value": serializers.DecimalField(max_digits=None, decimal_places=None,
                                                             coerce_to_string=False),
                "end_time": serializers.IntegerField(help_text="Unix seconds"),
                "start_time": serializers.IntegerField(help_text="Unix seconds"),
            },
            many=True,
        ),
    },
)
INVOICE_LINK_SCHEMA = inline_serializer(
    "InvoiceLink", {"url": serializers.URLField(), "expires_at": serializers.DateTimeField()}
)


def _field_errors(error: DjangoValidationError) -> ValidationError:
    """A model/service ValidationError as a DRF one, keeping the field at fault."""
    if hasattr(error, "error_dict"):
        return ValidationError({field: messages for field, messages in error.message_dict.items()})
    return ValidationError({"non_field_errors": error.messages})


def _call(service, **kwargs):
    try:
        return service(**kwargs)
    except DjangoValidationError as error:
        raise _field_errors(error) from error


def product_create_from(*, organization, data: dict):
    """Create a product from a validated ProductCreateSerializer body (our API and Metronome's path)."""
    return _call(
        services.product_create,
        organization=organization,
        name=data["name"],
        type=data["type"],
        billable_metric=data["billable_metric_id"],
        presentation_group_key=data["presentation_group_key"],
        quantity_conversion=data["quantity_conversion"],
        composite_products=data["composite_product_ids"],
        external_id=data["external_id"],
        stripe_product_id=data["stripe_product_id"],
    )


def contract_create_from(*, organization, data: dict):
    """Create a contract from a validated ContractCreateSerializer body (our API and Metronome's path)."""
    schedule = data["usage_statement_schedule"] or {"day": Contract.StatementDay.FIRST_OF_MONTH}
    return _call(
        services.contract_create,
        organization=organization,
        customer=data["customer_id"],
        rate_card=data["rate_card_id"],
        starting_at=data["starting_at"],
        ending_before=data["ending_before"],
        name=data["name"],
        usage_statement_day=schedule["day"],
        overrides=data["overrides"],
    )


class ConfigurationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """List and retrieve for everyone in the organization; create for admins (and API keys)."""

    pagination_class = EnvelopeCursorPagination
    required_write_role = Role.ADMIN
    create_serializer_class: type[serializers.Serializer]

    def parse(self, request) -> dict:
        payload = self.create_serializer_class(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        return payload.validated_data

    def created(self, instance) -> Response:
        return Response(self.get_serializer(instance).data, status=status.HTTP_201_CREATED)


class BillableMetricViewSet(ConfigurationViewSet):
    """Billable metrics: which events count and how (event_type_filter, property_filters, aggregation)."""

    queryset = BillableMetric.objects.all()
    serializer_class = BillableMetricSerializer
    create_serializer_class = BillableMetricCreateSerializer

    @extend_schema(request=BillableMetricCreateSerializer, responses={201: BillableMetricSerializer})
    def create(self, request):
        metric = _call(services.billable_metric_create, organization=self.organization, **self.parse(request))
        return self.created(metric)


class ProductViewSet(ConfigurationViewSet):
    """Products: how a metric (or a fixed, subscription or composite charge) appears on invoices."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    create_serializer_class = ProductCreateSerializer

    @extend_schema(request=ProductCreateSerializer, responses={201: ProductSerializer})
    def create(self, request):
        data = self.parse(request)
        product = product_create_from(organization=self.organization, data=data)
        return self.created(product)


class RateCardViewSet(ConfigurationViewSet):
    """Rate cards, and their rates at /rate-cards/{id}/rates."""

    queryset = RateCard.objects.all()
    serializer_class = RateCardSerializer
    create_serializer_class = RateCardSerializer

    @extend_schema(request=RateCardSerializer, responses={201: RateCardSerializer})
    def create(self, request):
        data = self.parse(request)
        rate_card = _call(
            services.rate_card_create,
            organization=self.organization,
            name=data["name"],
            description=data.get("description", ""),
        )
        return self.created(rate_card)

    @extend_schema(methods=["get"], responses=RateSerializer(many=True))
    @extend_schema(methods=["post"], request=RateCreateSerializer, responses={201: RateSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=None)  # every rate, no cursor links
    def rates(self, request, pk=None):
        rate_card = self.get_object()
        if request.method == "GET":
            rates = Rate.objects.filter(rate_card=rate_card).prefetch_related("tiers").order_by("starting_at", "id")
            return Response(RateSerializer(rates, many=True).data)
        payload = RateCreateSerializer(data=request.data, context=self.get_serializer_context())
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        rate = _call(services.rate_create, rate_card=rate_card, product=data.pop("product_id"), **data)
        return Response(RateSerializer(rate).data, status=status.HTTP_201_CREATED)


class ContractViewSet(ConfigurationViewSet):
    """Contracts: a customer on a rate card from starting_at, with per-product overrides."""

    queryset = Contract.objects.select_related("customer").prefetch_related("overrides")
    serializer_class = ContractSerializer
    create_serializer_class = ContractCreateSerializer

    def get_base_queryset(self):
        contracts = super().get_base_queryset()
        customer_id = self.request.query_params.get("customer_id")
        if customer_id:
            customer = customer_get(organization=self.organization, customer_id=customer_id)
            contracts = contracts.filter(customer=customer) if customer else contracts.none()
        return contracts

    @extend_schema(request=ContractCreateSerializer, responses={201: ContractSerializer})
    def create(self, request):
        data = self.parse(request)
        contract = contract_create_from(organization=self.organization, data=data)
        return self.created(contract)


# --- Per customer ----------------------------------------------------------------------------------


class CustomerScopedMixin:
    @cached_property
    def customer(self):
        customer = customer_get(organization=self.organization, customer_id=self.kwargs["customer_id"])
        if customer is None:
            raise NotFound("No customer with this id.")
        return customer


class CustomerInvoiceViewSet(
    CustomerScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet
):
    """A customer's invoices (ours: integer cents), newest period first. Filter with ?status=draft."""

    queryset = Invoice.objects.select_related("customer", "external_invoice").prefetch_related("lines")
    serializer_class = InvoiceSerializer
    pagination_class = EnvelopeCursorPagination

    def get_base_queryset(self):
        invoicing.drafts_refresh(organization_id=self.organization.pk, customer_ids=[self.customer.pk])
        invoices = super().get_base_queryset().filter(customer=self.customer)
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in Invoice.Status.values:
                raise ValidationError({"status": f"Must be one of {', '.join(Invoice.Status.values)}."})
            invoices = invoices.filter(status=wanted)
        return invoices

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=Invoice.Status.values)], responses=InvoiceSerializer(many=True)
    )
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=InvoiceLinkCreateSerializer, responses={201: INVOICE_LINK_SCHEMA})
    @action(detail=True, methods=["post"], url_path="links")
    def links(self, request, customer_id=None, pk=None):
        """A signed, expiring link to the customer-facing invoice page (no login needed to open it)."""
        invoice = self.get_object()
        payload = InvoiceLinkCreateSerializer(data=request.data or {})
        payload.is_valid(raise_exception=True)
        days = payload.validated_data.get("expires_in_days", settings.BILLING_INVOICE_LINK_DAYS)
        expires_at = timezone.now() + timedelta(days=days)
        token = services.invoice_link_token(invoice=invoice, expires_at=expires_at)
        url = request.build_absolute_uri(reverse("billing:invoice-page", args=[token]))
        return Response({"url": url, "expires_at": expires_at}, status=status.HTTP_201_CREATED)


class InvoicePreviewView(CustomerScopedMixin, OrganizationScopedAPIView):
    """Seed 004 invoice_preview: the customer's current draft (amounts in integer cents)."""

    envelope = False  # seed 004 shape, as the credit endpoints beside it
    queryset = Invoice.objects.all()

    @extend_schema(responses=INVOICE_PREVIEW_SCHEMA)
    def get(self, request, customer_id):
        invoicing.drafts_refresh(organization_id=self.organization.pk, customer_ids=[self.customer.pk])
        invoice = selectors.current_draft(organization=self.organization, customer=self.customer)
        if invoice is None:
            raise NotFound("The customer has no draft invoice (no contract covers the current period).")
        return Response(presentation.seed_invoice_preview(invoice))


class InvoiceHistoryView(CustomerScopedMixin, OrganizationScopedAPIView):
    """Seed 004 invoice_history: the customer's finalized, paid, void and uncollectible invoices, newest first."""

    envelope = False  # seed 004 shape, as the credit endpoints beside it
    queryset = Invoice.objects.all()

    @extend_schema(parameters=[OpenApiParameter("limit", int)], responses=INVOICE_HISTORY_SCHEMA)
    def get(self, request, customer_id):
        limit = _int_param(request, "limit", default=50, low=1, high=500)
        invoices = (
            self.get_queryset()
            .filter(customer=self.customer)
            .exclude(status=Invoice.Status.DRAFT)
            .order_by("-period_start")[:limit]
        )
        return Response({"invoices": [presentation.seed_invoice_history_item(invoice) for invoice in invoices]})


EARLIEST_PARAM = datetime(1970, 1, 1, tzinfo=UTC)
WINDOW_STEP = {"hour": relativedelta(hours=1), "day": relativedelta(days=1), "month": relativedelta(months=1)}
MAX_WINDOWS = 1000


class UsageHistoryView(CustomerScopedMixin, OrganizationScopedAPIView):
    """Seed 004 usage_history: a metric's aggregated value per time window for the customer.

    Params: billable_metric_id (required), window_size hour|day|month (default day), starting_on and
    ending_before (ISO 8601; default the 30 days up to now). Every window in the range is listed,
    0 when empty; at most 1000 windows.
    """

    envelope = False  # seed 004 shape, as the credit endpoints beside it
    queryset = BillableMetric.objects.all()

    @extend_schema(
        parameters=[
            OpenApiParameter("billable_metric_id", str, required=True),
            OpenApiParameter("window_size", str, enum=list(WINDOW_STEP)),
            OpenApiParameter("starting_on", OpenApiTypes.DATETIME),
            OpenApiParameter("ending_before", OpenApiTypes.DATETIME),
        ],
        responses=USAGE_HISTORY_SCHEMA,
    )
    def get(self, request, customer_id):
        params = request.query_params
        metric_id = params.get("billable_metric_id")
        if not metric_id:
            raise ValidationError({"billable_metric_id": "This parameter is required."})
        metric = self.get_queryset().filter(pk=_uuid(metric_id, "billable_metric_id")).first()
        if metric is None:
            raise NotFound("No billable metric with this id.")
        size = params.get("window_size", "day")
        if size not in WINDOW_STEP:
            raise ValidationError({"window_size": f"Must be one of {', '.join(WINDOW_STEP)}."})
        end = _datetime_param(params, "ending_before") or timezone.now()
        start = _datetime_param(params, "starting_on") or end - timedelta(days=30)
        windows = usage_windows(start=start, end=end, size=size, end_field="ending_before", size_field="window_size")
        values = metric_window_values(customer=self.customer, metric=metric, windows=windows, size=size)
        history = [
            {
                "id": f"{metric.pk}:{presentation.unix(window)}",
                "aggregated_value": presentation.json_number(values.get(window, 0)),
                "start_time": presentation.unix(window),
                "end_time": presentation.unix(window + WINDOW_STEP[size]),
            }
            for window in windows
        ]
        return Response({"history": history})


def usage_windows(*, start: datetime, end: datetime, size: str, end_field: str, size_field: str) -> list[datetime]:
    """The starts of every `size` window from the one holding `start` up to `end` (at most MAX_WINDOWS);
    a 400 naming the dialect's own parameter otherwise."""
    first = _truncate(start, size)
    if end <= first:
        raise ValidationError({end_field: "Must be after the start of the range."})
    windows = []
    cursor = first
    while cursor < end:
        windows.append(cursor)
        cursor += WINDOW_STEP[size]
        if len(windows) > MAX_WINDOWS:
            raise ValidationError({size_field: f"The range has more than {MAX_WINDOWS} windows of a {size}."})
    return windows


def metric_window_values(*, customer, metric, windows: list[datetime], size: str) -> dict[datetime, object]:
    """The metric's aggregated value per window start (windows without usage are absent)."""
    return dict(
        selectors.usage_history(
            customer_id=customer.pk, metric=metric, start=windows[0], end=windows[-1] + WINDOW_STEP[size],
            window_size=size,
        )
    )  # fmt: skip


def _truncate(instant: datetime, size: str) -> datetime:
    instant = instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if size in {"day", "month"}:
        instant = instant.replace(hour=0)
    if size == "month":
        instant = instant.replace(day=1)
    return instant


def _datetime_param(params, name: str) -> datetime | None:
    raw = params.get(name)
    if not raw:
        return None
    try:
        value = serializers.DateTimeField().to_internal_value(raw)
    except ValidationError as error:
        raise ValidationError({name: error.detail}) from error
    if not EARLIEST_PARAM <= value < LATEST_INSTANT:
        raise ValidationError({name: "Must be between 1970-01-01 and 9999-01-01 (UTC)."})
    return value


def _uuid(raw: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError as error:
        raise ValidationError({name: "Must be a UUID."}) from error


def _int_param(request, name: str, *, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as error:
        raise ValidationError({name: "Must be an integer."}) from error
    if not low <= value <= high:
        raise ValidationError({name: f"Must be between {low} and {high}."})
    return value
