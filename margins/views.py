"""NullSpend Margins API (seed 002), spoken exactly: session auth, Pro tier, `{"data": ...}` bodies.

Roles: viewer reads (margins, unmatched, mappings, settings); member triggers a revenue sync and
writes mappings (create, delete, approve, reject); admin connects/disconnects Stripe, changes margin
settings and manages webhook endpoints. A session caller starts a revenue sync with
`POST /api/stripe/revenue-sync` (a state change: CSRF applies); the scheduled caller keeps
`GET` with `Authorization: Bearer <CRON_SECRET>` and syncs every connected organization.
"""

import csv
import io
import uuid
from decimal import Decimal

from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import MethodNotAllowed, NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response

from accounts.api.permissions import IsOrganizationMember, RequiresPlan
from accounts.api.views import OrganizationScopedAPIView
from accounts.models import Organization, Role
from costcalc.money import ROUNDING, microdollars_to_usd

from . import calculations, openapi, selectors, serializers, services
from .authentication import CronCaller, CronSecretAuthentication
from .models import CustomerMapping, SyncRun, WebhookEndpoint
from .stripe_api import StripeSyncError


class IgnoreFormatParameter(DefaultContentNegotiation):
    """`?format=csv` is the seed's own parameter here, not DRF's renderer override: always negotiate JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MarginsAPIView(OrganizationScopedAPIView):
    authentication_classes = [SessionAuthentication]
    # Plan first: a free organization cannot use these at any role, so its 403 carries the upgrade pointer.
    permission_classes = [RequiresPlan, IsOrganizationMember]
    content_negotiation_class = IgnoreFormatParameter

    def _object_of_id_parameter(self, *, required: str, not_found: str):
        """The caller's object named by `?id=UUID` (DELETE endpoints): 400 without it, 404 for a bad or unknown id."""
        raw_id = self.request.query_params.get("id")
        if not raw_id:
            raise ValidationError({"id": [required]})
        try:
            object_id = uuid.UUID(raw_id)
        except ValueError as exc:
            raise NotFound(not_found) from exc
        found = self.get_queryset().filter(pk=object_id).first()
        if found is None:
            raise NotFound(not_found)
        return found


MIN_YEAR, MAX_YEAR = 1971, 9998  # so the trailing and projected months are dates too


def _period(request) -> str:
    value = request.query_params.get("period")
    if value is None or value == "":
        return calculations.period_of(timezone.now())
    try:
        year, _ = calculations.parse_period(value)
    except ValueError as exc:
        raise ValidationError({"period": ["Invalid period format: expected YYYY-MM, e.g. 2026-04."]}) from exc
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValidationError({"period": [f"The year must be between {MIN_YEAR} and {MAX_YEAR}."]})
    return value


# --- Stripe connection -------------------------------------------------------------------------


class StripeConnectView(MarginsAPIView):
    """Connect a restricted Stripe key (`rk_…`; `sk_test_…` outside production), checked with
    `customers.list(limit=1)` and stored encrypted (admin)."""

    required_role = Role.ADMIN
    required_write_role = Role.ADMIN

    @extend_schema(
        request=serializers.StripeConnectSerializer,
        responses={
            201: openapi.CONNECTION,
            **openapi.errors(
                400, 409, 502, s400="validation_error (key missing or malformed) or stripe_validation_failed "
                "(Stripe refused the key)", s409="conflict: Stripe is already connected (disconnect first)",
                s502="stripe_unavailable: Stripe unreachable, rate limiting or failing; nothing stored, try again",
            ),
        },
    )
    def post(self, request):
        if not isinstance(request.data, dict) or not isinstance(request.data.get("stripeKey", ""), str):
            raise ValidationError({"stripeKey": ["A Stripe key string is required."]})
        payload = serializers.StripeConnectSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        connection = services.stripe_connect(
            organization=self.organization, stripe_key=payload.validated_data["stripeKey"]
        )
        return Response(serializers.connection_json(connection), status=status.HTTP_201_CREATED)


class StripeDisconnectView(MarginsAPIView):
    """Remove the Stripe connection with all synced revenue data and customer mappings (admin)."""

    required_role = Role.ADMIN
    required_write_role = Role.ADMIN

    @extend_schema(
        request=None,
        responses={200: openapi.DELETED, **openapi.errors(404, s404="not_found: Stripe is not connected")},
    )
    def delete(self, request):
        services.stripe_disconnect(organization=self.organization)
        return Response({"deleted": True})


class RevenueSyncView(MarginsAPIView):
    """Cron (GET, Bearer CRON_SECRET): sync every connected Pro organization. Session (POST, member+):
    the caller's. A session GET is a 405: a state change never rides on a GET, which CSRF does not guard."""

    authentication_classes = [CronSecretAuthentication, SessionAuthentication]
    required_role = Role.MEMBER

    def _is_cron(self) -> bool:
        return isinstance(self.request.user, CronCaller)

    def get_permissions(self):
        if self._is_cron():
            return []
        return super().get_permissions()

    @extend_schema(
        request=None,
        auth=[{"CronSecret": []}],
        responses={200: openapi.SYNC_CRON, **openapi.errors(405, s405="method_not_allowed: session callers POST")},
        description="The scheduled caller (Authorization: Bearer CRON_SECRET) syncs every connected Pro "
        "organization.",
    )
    def get(self, request):
        if not self._is_cron():
            raise MethodNotAllowed(
                "GET", detail="A session caller starts a sync with POST; GET is for the scheduled caller (CRON_SECRET)."
            )
        return Response(self._sync_all())

    @extend_schema(
        request=None,
        responses={
            200: openapi.SYNC,
            **openapi.errors(404, 502, s404="not_found: Stripe is not connected (session callers)"),
        },
        description="A session caller (member) syncs its organization now; the cron secret syncs every one.",
    )
    def post(self, request):
        if self._is_cron():
            return Response(self._sync_all())
        try:
            result = services.revenue_sync(organization=self.organization, trigger=SyncRun.Trigger.MANUAL)
        except StripeSyncError as exc:
            raise services.StripeSyncFailed(
                f"The revenue sync could not read from Stripe: {exc}", details={"transient": exc.transient}
            ) from exc
        return Response(
            {
                "orgId": str(result.organization_id),
                "customersProcessed": result.customers_processed,
                "periodsUpdated": result.periods_updated,
                "autoMatchesCreated": result.auto_matches_created,
                "invoicesFetched": result.invoices_fetched,
                "invoicesSkipped": result.invoices_skipped,
                "skippedCurrencies": result.skipped_currencies,
                "durationMs": result.duration_ms,
            }
        )

    def _sync_all(self) -> dict:
        synced = errors = 0
        for organization in Organization.objects.filter(pk__in=services.connected_organization_ids()):
            try:
                services.revenue_sync(organization=organization, trigger=SyncRun.Trigger.CRON)
            except (StripeSyncError, services.StripeNotConnected):
                errors += 1  # recorded on the organization's SyncRun / connection
            else:
                synced += 1
        return {"synced": synced, "errors": errors}


# --- Customer mappings -------------------------------------------------------------------------


class CustomerMappingsView(MarginsAPIView):
    """Stripe customer → usage customer (tag value) mappings: list (viewer), upsert on
    (organization, stripeCustomerId, tagKey) and delete by `?id=` (member)."""

    queryset = CustomerMapping.objects.all()

    @extend_schema(responses={200: openapi.MAPPINGS, **openapi.errors()})
    def get(self, request):
        mappings = self.get_queryset().order_by("stripe_customer_id", "tag_key")
        return Response([serializers.mapping_json(mapping) for mapping in mappings])

    @extend_schema(
        request=serializers.CustomerMappingWriteSerializer,
        responses={200: openapi.MAPPING, 201: openapi.MAPPING, **openapi.errors(400)},
    )
    def post(self, request):
        payload = serializers.CustomerMappingWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        mapping, created = services.customer_mapping_upsert(
            organization=self.organization,
            stripe_customer_id=data["stripeCustomerId"],
            tag_value=data["tagValue"],
            tag_key=data["tagKey"],
            match_type=data["matchType"],
        )
        return Response(
            serializers.mapping_json(mapping), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(
        parameters=[OpenApiParameter("id", str, required=True, description="Mapping id (UUID)")],
        responses={
            200: openapi.MAPPING_DELETED,
            **openapi.errors(400, 404, s404="not_found: no such mapping in the organization"),
        },
    )
    def delete(self, request):
        mapping = self._object_of_id_parameter(
            required="The mapping id is required: DELETE /api/customer-mappings?id=UUID.",
            not_found="Customer mapping not found.",
        )
        mapping_id = str(mapping.pk)
        services.customer_mapping_delete(mapping=mapping)
        return Response({"deleted": True, "id": mapping_id})


class CustomerMappingReviewView(MarginsAPIView):
    """POST /api/customer-mappings/{id}/approve or /reject: review a pending auto-match."""

    queryset = CustomerMapping.objects.all()
    approve = True

    @extend_schema(
        request=None,
        responses={200: openapi.MAPPING, **openapi.errors(404, 409, s409="conflict: the mapping is not pending")},
    )
    def post(self, request, pk):
        mapping = self.get_object()
        mapping = services.customer_mapping_review(mapping=mapping, approve=self.approve)
        return Response(serializers.mapping_json(mapping))


# --- Margins -----------------------------------------------------------------------------------

CSV_COLUMNS = [
    "Customer", "Stripe ID", "Tag Value", "Revenue ($)", "Cost ($)", "Margin (%)", "Margin ($)", "Health Tier",
]


def _dollars(microdollars: int) -> str:
    return str(microdollars_to_usd(microdollars).quantize(Decimal("0.01"), rounding=ROUNDING))


def _csv_text(value: str) -> str:
    """Text cells that a spreadsheet would run as a formula get a leading apostrophe (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class MarginsView(MarginsAPIView):
    """The margin table of a calendar month: summary and one row per customer, as JSON or CSV (viewer)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("period", str, description="YYYY-MM (default: current month, UTC)"),
            OpenApiParameter(
                "format", str, enum=["json", "csv"],
                description='csv: an attachment "margins-YYYY-MM.csv" with the columns Customer, Stripe ID, Tag Value, '
                "Revenue ($), Cost ($), Margin (%), Margin ($), Health Tier",
            ),
        ],
        responses={
            (200, "application/json"): openapi.MARGIN_TABLE,
            (200, "text/csv"): openapi.MARGIN_CSV,
            **openapi.errors(400, s400="validation_error: invalid period (YYYY-MM) or format"),
        },
    )
    def get(self, request):
        period = _period(request)
        response_format = request.query_params.get("format") or "json"
        if response_format not in ("json", "csv"):
            raise ValidationError({"format": ["Must be json or csv."]})
        table = selectors.margin_table(organization=self.organization, period=period)
        if response_format == "csv":
            return self._csv(table)
        return Response(serializers.margin_table_json(table))

    def _csv(self, table) -> HttpResponse:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(CSV_COLUMNS)
        for row in table.customers:
            writer.writerow(
                [
                    _csv_text(row.customer_name),
                    row.stripe_customer_id or "",
                    _csv_text(row.tag_value),
                    _dollars(row.revenue),
                    _dollars(row.cost),
                    "" if row.margin_percent is None else str(row.margin_percent),
                    _dollars(row.margin),
                    row.health_tier,
                ]
            )
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="margins-{table.period}.csv"'
        return response


class MarginCustomerView(MarginsAPIView):
    """One customer's margin (URL-encoded tag value): three months of revenue and cost, cost per model (viewer)."""

    @extend_schema(
        operation_id="margins_customer_retrieve",
        parameters=[OpenApiParameter("period", str, description="YYYY-MM (default: current month, UTC)")],
        responses={
            200: openapi.MARGIN_CUSTOMER,
            **openapi.errors(400, 404, s404="not_found: customer mapping not found"),
        },
    )
    def get(self, request, customer: str):
        period = _period(request)
        # PostgreSQL text cannot hold NUL, so no customer has one in its id (and the query would fail).
        if "\x00" in customer or not selectors.customer_mapped(organization=self.organization, tag_value=customer):
            raise NotFound("Customer mapping not found.")
        (row,) = selectors.customer_margins(organization=self.organization, period=period, tag_values={customer})
        models = selectors.model_breakdown(organization=self.organization, tag_value=customer, period=period)
        return Response(serializers.customer_detail_json(row, models))


class UnmatchedView(MarginsAPIView):
    """Unmatched Stripe customers, usage customers without a Stripe customer, pending auto-matches (viewer)."""

    @extend_schema(responses={200: openapi.UNMATCHED, **openapi.errors()})
    def get(self, request):
        result = selectors.unmatched(organization=self.organization)
        return Response(
            {
                "unmatchedStripeCustomers": result.stripe_customers,
                "unmappedTagValues": result.tag_values,
                "pendingAutoMatches": [
                    {
                        "id": str(mapping.id),
                        "stripeCustomerId": mapping.stripe_customer_id,
                        "customerName": result.customer_names.get(mapping.stripe_customer_id, ""),
                        "tagValue": mapping.tag_value,
                        "confidence": serializers.number(mapping.confidence),
                    }
                    for mapping in result.pending
                ],
                "customerNames": result.customer_names,
            }
        )


class MarginSettingsView(MarginsAPIView):
    """GET (viewer) / PUT (admin) /api/margin-settings: health-tier thresholds and target margin, in percent."""

    required_write_role = Role.ADMIN

    @extend_schema(responses={200: openapi.MARGIN_SETTINGS, **openapi.errors()})
    def get(self, request):
        return Response(serializers.margin_settings_json(selectors.thresholds_for(organization=self.organization)))

    @extend_schema(
        request=serializers.MarginSettingsWriteSerializer,
        responses={200: openapi.MARGIN_SETTINGS, **openapi.errors(400)},
    )
    def put(self, request):
        payload = serializers.MarginSettingsWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        row = services.margin_settings_update(organization=self.organization, **payload.model_values())
        return Response(serializers.margin_settings_json(row))


class WebhookEndpointsView(MarginsAPIView):
    """GET/POST/DELETE ?id= /api/webhook-endpoints (admin). The signing secret is returned once, at creation."""

    queryset = WebhookEndpoint.objects.all()
    required_role = Role.ADMIN
    required_write_role = Role.ADMIN

    @extend_schema(responses={200: openapi.WEBHOOK_ENDPOINTS, **openapi.errors()})
    def get(self, request):
        return Response([serializers.webhook_endpoint_json(e) for e in self.get_queryset().order_by("created_at")])

    @extend_schema(
        request=serializers.WebhookEndpointWriteSerializer,
        responses={201: openapi.WEBHOOK_ENDPOINT_CREATED, **openapi.errors(400)},
    )
    def post(self, request):
        payload = serializers.WebhookEndpointWriteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(
            organization=self.organization,
            url=payload.validated_data["url"],
            event_types=payload.validated_data["eventTypes"],
        )
        body = {**serializers.webhook_endpoint_json(endpoint), "secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("id", str, required=True, description="Endpoint id (UUID)")],
        responses={200: openapi.WEBHOOK_ENDPOINT_DELETED, **openapi.errors(400, 404)},
    )
    def delete(self, request):
        endpoint = self._object_of_id_parameter(
            required="The endpoint id is required.", not_found="Webhook endpoint not found."
        )
        endpoint_id = str(endpoint.pk)
        services.webhook_endpoint_delete(endpoint=endpoint)
        return Response({"deleted": True, "id": endpoint_id})
