"""Endpoints of collection through Stripe (our envelope): a customer's billing configuration, the
"retry" of an invoice's push, and the reconciliation (JSON or CSV)."""

import csv
import io
import uuid
from functools import cached_property

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from accounts.api.views import OrganizationScopedAPIView
from accounts.models import Role
from billing.collection import selectors, serializers, services
from billing.credits.selectors import customer_get
from billing.models import Invoice


def _field_errors(error: DjangoValidationError) -> ValidationError:
    if hasattr(error, "error_dict"):
        return ValidationError({field: messages for field, messages in error.message_dict.items()})
    return ValidationError({"non_field_errors": error.messages})


class BillingConfigView(OrganizationScopedAPIView):
    """How the customer's finalized invoices are collected: through the organization's Stripe account
    (charged automatically or sent with a due date) or not at all. Writes need the admin role."""

    required_write_role = Role.ADMIN

    @cached_property
    def customer(self):
        return customer_get(organization=self.organization, customer_id=self.kwargs["customer_id"])

    @extend_schema(responses=serializers.BillingConfigShapeSerializer)
    def get(self, request, customer_id: str):
        customer = self.customer
        return Response(serializers.billing_config_shape(customer, selectors.billing_config(customer=customer)))

    @extend_schema(request=serializers.BillingConfigSerializer, responses=serializers.BillingConfigShapeSerializer)
    def put(self, request, customer_id: str):
        customer = self.customer
        payload = serializers.BillingConfigSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        try:
            config = services.billing_config_set(customer=customer, **data)
        except DjangoValidationError as error:
            raise _field_errors(error) from error
        customer.refresh_from_db()
        return Response(serializers.billing_config_shape(customer, config))

    @extend_schema(responses=serializers.BillingConfigShapeSerializer)
    def delete(self, request, customer_id: str):
        customer = self.customer
        services.billing_config_delete(customer=customer)
        return Response(serializers.billing_config_shape(customer, None))


class InvoiceStripeRetryView(OrganizationScopedAPIView):
    """Push the invoice to Stripe again after a permanent error (or for the first time, when it was
    finalized before its customer was billed through Stripe). 409 when there is nothing to retry."""

    required_write_role = Role.ADMIN
    queryset = Invoice.objects.all()

    @extend_schema(request=None, responses=serializers.ExternalInvoiceSerializer)
    def post(self, request, customer_id: str, invoice_id: str):
        customer = customer_get(organization=self.organization, customer_id=customer_id)
        try:
            invoice = self.get_queryset().get(customer=customer, pk=uuid.UUID(invoice_id))
        except (ValueError, Invoice.DoesNotExist) as exc:
            raise NotFound("No invoice with this id.") from exc
        row = services.external_invoice_retry(invoice=invoice)
        row.refresh_from_db()
        return Response(serializers.ExternalInvoiceSerializer(row).data, status=202)


class IgnoreFormatParameter(DefaultContentNegotiation):
    """`?format=csv` selects the body here, not a DRF renderer: always negotiate JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class ReconciliationView(OrganizationScopedAPIView):
    """Per customer and currency, for invoices whose billing period starts in `period`: metered (our
    rating), invoiced (what Stripe holds of what we sent), collected (what Stripe reports paid), and
    the differences flagged. Amounts in cents of the currency (hundredths of its unit)."""

    content_negotiation_class = IgnoreFormatParameter

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, description="YYYY-MM (default: the current month, UTC)"),
            OpenApiParameter("format", str, enum=["json", "csv"], description='csv: "reconciliation-YYYY-MM.csv"'),
        ],
        responses={
            (200, "application/json"): serializers.ReconciliationSerializer,
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR, description="Columns: " + ", ".join(serializers.CSV_COLUMNS)
            ),
        },
    )
    def get(self, request):
        period = request.query_params.get("period") or f"{timezone.now():%Y-%m}"
        try:
            selectors.period_bounds(period)
        except ValueError as exc:
            raise ValidationError({"period": ["Must be YYYY-MM."]}) from exc
        response_format = request.query_params.get("format") or "json"
        if response_format not in ("json", "csv"):
            raise ValidationError({"format": ["Must be json or csv."]})
        rows = selectors.reconciliation_rows(organization=self.organization, period=period)
        if response_format == "json":
            return Response(serializers.reconciliation_shape(period, rows))
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(serializers.CSV_COLUMNS)
        writer.writerows(serializers.reconciliation_csv_rows(rows))
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="reconciliation-{period}.csv"'
        return response
