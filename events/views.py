"""Thin views: parse with the dialect, call one service or selector, answer in the dialect's shape."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from accounts.api.errors import ApiError, Conflict
from accounts.api.openapi import error_responses
from accounts.api.pagination import EnvelopeCursorPagination
from accounts.api.views import OrganizationScopedAPIView, OrganizationScopedViewSet
from accounts.models import ApiKeyScope, Role
from costcalc.money import microdollars_to_usd

from . import openapi, selectors
from .dialects import client_key, margindash, metronome, tanso
from .dialects.fields import FieldError, parse_timestamp
from .drafts import CREATED, DUPLICATE
from .models import Budget, Customer, UsageEvent
from .serializers import BudgetSerializer, CustomerCreateSerializer, CustomerSerializer, UsageEventSerializer
from .services import budget_create, budget_delete, budget_update, customer_create, ingest_events
from .services.budgets import budget_evaluation_pending


class NotFound(ApiError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"


class UsageEventPagination(EnvelopeCursorPagination):
    ordering = ("-occurred_at", "-id")


class EventsView(OrganizationScopedAPIView):
    """`POST /api/v1/events` (MarginDash ingest) and `GET /api/v1/events` (the ledger, for debugging)."""

    serializer_class = UsageEventSerializer
    pagination_class = UsageEventPagination
    queryset = UsageEvent.objects.all()
    unenveloped_methods = ("POST",)  # the MarginDash answer is bare
    required_scopes = {"POST": ApiKeyScope.INGEST}

    @extend_schema(
        operation_id="events_ingest",
        request=openapi.MARGINDASH_BATCH,
        responses={200: openapi.MARGINDASH_RESULT, **openapi.MARGINDASH_ERRORS},
        description="MarginDash dialect: 1 to 100 events; each gets its own result (created, duplicate or error).",
    )
    def post(self, request):
        drafts = margindash.parse_batch(request.data, now=timezone.now())
        result = ingest_events(organization=self.organization, source=UsageEvent.Source.MARGINDASH, items=drafts)
        self.envelope = False
        return Response(
            {
                "budget_state_version": result.budget_state_version,
                "results": [
                    {"id": outcome.id, "status": outcome.status}
                    if outcome.status in (CREATED, DUPLICATE)
                    else {"status": "error", "error": outcome.error.as_dict()}
                    for outcome in result.outcomes
                ],
            }
        )

    @extend_schema(
        operation_id="events_list",
        parameters=[
            OpenApiParameter("customer_id", str, description="external id, ingest alias, uuid or Stripe id"),
            OpenApiParameter("event_type", str),
            # Plain strings: empty means no bound, and anything that is not an ISO 8601 instant is a 400.
            OpenApiParameter("occurred_after", str, description="ISO 8601 date-time, inclusive (empty: no bound)"),
            OpenApiParameter("occurred_before", str, description="ISO 8601 date-time, exclusive (empty: no bound)"),
            OpenApiParameter("idempotency_key", str, description="the key as the client sent it"),
            OpenApiParameter("limit", int),
        ],
        responses=UsageEventSerializer(many=True),
    )
    def get(self, request):
        params = request.query_params
        self.paginator.get_page_size(request)  # a bad `limit` is a 400 even when the answer is empty
        for name, value in params.items():
            if "\x00" in value:
                raise ApiError(f"{name} must not contain NUL characters.", details={"field": name})
        customer = None
        if params.get("customer_id"):
            customer = selectors.customer_find(organization=self.organization, identifier=params["customer_id"])
            if customer is None:
                return Response({"data": [], "next": None, "previous": None})
        events = selectors.usage_event_list(
            organization=self.organization,
            customer=customer,
            event_type=params.get("event_type") or None,
            occurred_after=_query_time(params, "occurred_after"),
            occurred_before=_query_time(params, "occurred_before"),
            idempotency_key=params.get("idempotency_key") or None,
        )
        page = self.paginate_queryset(events)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


def _query_time(params, name: str):
    value = params.get(name)
    if not value:
        return None
    try:
        return parse_timestamp(value, name, naive_is_utc=False)
    except FieldError as error:
        raise ApiError(f"{name}: {error.message}", details={"field": name}) from None


class MetronomeIngestView(OrganizationScopedAPIView):
    """`POST /api/v1/ingest`: Metronome usage events, a JSON array of 1 to 100."""

    envelope = False
    required_scopes = {"POST": ApiKeyScope.INGEST}

    @extend_schema(
        operation_id="metronome_ingest",
        request=openapi.MetronomeBatch,
        responses={200: openapi.METRONOME_RESULT, **openapi.METRONOME_ERRORS},
        description="Metronome dialect: 1 to 100 usage events, validated as a whole: one invalid event is a 400 "
        "and nothing is stored. A transaction_id already stored is counted as duplicate.",
    )
    def post(self, request):
        drafts = metronome.parse_batch(request.data, now=timezone.now())
        result = ingest_events(organization=self.organization, source=UsageEvent.Source.METRONOME, items=drafts)
        return Response(
            {
                "budget_state_version": result.budget_state_version,
                "created": result.created,
                "duplicate": result.duplicates,
            }
        )


class TansoUsageEventView(OrganizationScopedAPIView):
    """`POST /api/v1/usage-events`: one Tanso usage event."""

    envelope = False
    required_scopes = {"POST": ApiKeyScope.INGEST}

    @extend_schema(
        operation_id="tanso_usage_event",
        request=openapi.TANSO_EVENT,
        parameters=[openapi.TANSO_IDEMPOTENCY_KEY],
        responses={201: openapi.TANSO_EVENT_STORED, **openapi.TANSO_ERRORS},
        description="Tanso dialect: one usage event, answered with the stored event. A repeated idempotency key "
        "is a 409 carrying the original event's id.",
    )
    def post(self, request):
        draft = tanso.parse_event(request.data, header_key=request.headers.get("Idempotency-Key"), now=timezone.now())
        result = ingest_events(organization=self.organization, source=UsageEvent.Source.TANSO, items=[draft])
        outcome = result.outcomes[0]
        key = client_key(draft.idempotency_key)
        if outcome.status == DUPLICATE:
            raise Conflict(
                f"An event with the idempotency key {key!r} was already recorded.",
                details={"id": outcome.id, "eventIdempotencyKey": key},
            )
        if outcome.error is not None:
            error = outcome.error
            details = {"field": error.field, **({"suggestions": list(error.suggestions)} if error.suggestions else {})}
            if error.code == "not_found":
                raise NotFound(error.message, details=details)
            raise ApiError(error.message, code=error.code, details=details)
        customer = Customer.objects.only("uuid", "external_id").get(pk=outcome.customer_id)
        return Response(
            {
                "id": outcome.id,
                "eventIdempotencyKey": key,
                "eventName": draft.event_type,
                "occurredAt": draft.occurred_at.isoformat().replace("+00:00", "Z"),
                "customerId": customer.uuid,
                "customerReferenceId": customer.external_id,
                "featureKey": outcome.draft.feature_key or None,  # the resolved feature's, when featureId named one
                "flowId": draft.flow_id or None,
                "usageUnits": draft.usage_units,
                "costAmount": microdollars_to_usd(outcome.cost_microdollars),
                "revenueAmount": microdollars_to_usd(outcome.revenue_microdollars),
                "unpriced": outcome.unpriced,
                "budgetStateVersion": result.budget_state_version,
            },
            status=status.HTTP_201_CREATED,
        )


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrganizationScopedViewSet):
    """`GET/POST /api/v1/customers`, `GET /api/v1/customers/{id}` (our uuid)."""

    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    pagination_class = EnvelopeCursorPagination
    lookup_field = "uuid"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @extend_schema(
        request=CustomerCreateSerializer,
        responses={
            201: CustomerSerializer,
            **error_responses(409, s409="conflict: another customer already has one of these identifiers "
                              "(details.customer_id, details.field)"),
        },
    )
    def create(self, request):
        payload = CustomerCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        customer = customer_create(organization=self.organization, **payload.validated_data)
        return Response(CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class BudgetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrganizationScopedViewSet,
):
    """`/api/v1/budgets`: cost budgets that feed the SDK blocklist. Writes need the admin role."""

    queryset = Budget.objects.all()
    serializer_class = BudgetSerializer
    pagination_class = EnvelopeCursorPagination
    required_write_role = Role.ADMIN
    lookup_value_regex = "[0-9]+"

    def perform_create(self, serializer):
        serializer.instance = budget_create(organization=self.organization, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = budget_update(budget=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance):
        budget_delete(budget=instance)


class BlocklistView(OrganizationScopedAPIView):
    """`GET /api/v1/budgets/blocklist?since_version=N` (seed 000), polled by the SDK's budget guard."""

    envelope = False
    required_scopes = {"GET": (ApiKeyScope.INGEST, ApiKeyScope.READ), "HEAD": (ApiKeyScope.INGEST, ApiKeyScope.READ)}

    @extend_schema(
        operation_id="budgets_blocklist",
        parameters=[OpenApiParameter("since_version", int)],
        responses={
            200: inline_serializer(
                "Blocklist",
                {
                    "version": serializers.IntegerField(),
                    "ttl_seconds": serializers.IntegerField(),
                    "changed": serializers.BooleanField(),
                    "recompute_in_progress": serializers.BooleanField(),
                    "blocked": inline_serializer(
                        "BlockedSet",
                        {
                            "organization": serializers.BooleanField(),
                            "event_types": serializers.ListField(child=serializers.CharField()),
                            "customer_ids": serializers.ListField(child=serializers.CharField()),
                        },
                        required=False,
                    ),
                },
            )
        },
    )
    def get(self, request):
        since = request.query_params.get("since_version")
        if since not in (None, ""):
            try:
                since = int(since)
            except ValueError:
                raise ApiError("since_version must be an integer.", details={"field": "since_version"}) from None
        else:
            since = None
        blocklist = selectors.blocklist_get(organization=self.organization)
        body = {
            "version": blocklist.version,
            "ttl_seconds": settings.BLOCKLIST_TTL_SECONDS,
            "changed": since != blocklist.version,
            "recompute_in_progress": budget_evaluation_pending(self.organization.pk),
        }
        if body["changed"]:
            body["blocked"] = blocklist.blocked
        return Response(body)
