"""Credit endpoints. Seed-004 (Cloudflare AI Gateway billing) endpoints answer the seed's shapes,
per customer of the caller's organization; the ledger and the Stripe account use our envelope."""

import contextlib
import logging
import uuid
from functools import cached_property

import stripe
from django.conf import settings
from django.db import IntegrityError
from django.http import JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.errors import Conflict, error_body
from accounts.api.pagination import EnvelopeCursorPagination
from accounts.api.views import OrganizationScopedAPIView
from accounts.models import ApiKeyScope, Role
from accounts.stripe_client import construct_webhook_event
from billing.credits import payments, selectors, services, webhooks
from billing.credits.models import CreditEntry, StripePaymentAccount
from billing.credits.serializers import (
    CreditEntryCreateSerializer,
    CreditEntrySerializer,
    SpendingLimitSerializer,
    StripeAccountSerializer,
    TopupConfigSerializer,
    TopupCreateSerializer,
    TopupStatusSerializer,
    cents,
    spending_limit_shape,
    topup_config_shape,
)

logger = logging.getLogger(__name__)

TOPUP_CONFIG_SCHEMA = inline_serializer("TopupConfig", {
    "amount": serializers.IntegerField(allow_null=True, help_text="Cents"),
    "disabled_reason": serializers.CharField(allow_null=True),
    "error": serializers.CharField(allow_null=True),
    "last_failed_at": serializers.IntegerField(allow_null=True, help_text="Unix seconds"),
    "threshold": serializers.IntegerField(allow_null=True, help_text="Cents"),
})
SPENDING_LIMIT_SCHEMA = inline_serializer("SpendingLimitGetResponse", {
    "config": inline_serializer("SpendingLimitConfig", {
        "amount": serializers.IntegerField(allow_null=True, help_text="Cents"),
        "duration": serializers.CharField(allow_null=True),
        "strategy": serializers.CharField(allow_null=True),
    }),
    "enabled": serializers.BooleanField(),
})
EMPTY_SCHEMA = inline_serializer("EmptyObject", {})
STRIPE_ACCOUNT_SCHEMA = inline_serializer("StripePaymentAccount", {
    "configured": serializers.BooleanField(),
    "key_hint": serializers.CharField(allow_null=True),
    "livemode": serializers.BooleanField(allow_null=True),
    "webhook_secret_set": serializers.BooleanField(
        help_text="Whether a webhook signing secret is stored (it is never shown)"
    ),
    "webhook_url": serializers.CharField(
        allow_null=True, help_text="This organization's own webhook endpoint (null without a signing secret)"
    ),
    "updated_at": serializers.DateTimeField(allow_null=True),
})


class CustomerBillingView(OrganizationScopedAPIView):
    """A seed-004 endpoint about one customer (`customer_id`: our uuid or the external id)."""

    envelope = False

    @cached_property
    def customer(self):
        return selectors.customer_get(organization=self.organization, customer_id=self.kwargs["customer_id"])

    def validated(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# --- Credit balance -----------------------------------------------------------------------------


class CreditBalanceView(CustomerBillingView):
    @extend_schema(
        summary="Get credit balance (seed 004)",
        responses=inline_serializer("CreditBalance", {
            "balance": serializers.IntegerField(
                help_text="Spendable credit in whole cents (rounded down): unexpired credit minus what open "
                "draft invoices already apply"
            ),
            "balance_microdollars": serializers.IntegerField(help_text="The same, exact"),
            "has_default_payment_method": serializers.BooleanField(),
            "payment_method": serializers.DictField(allow_null=True),
            "topup_config": serializers.DictField(),
            "first_topup_success": serializers.BooleanField(),
        }),
    )
    def get(self, request, customer_id: str):
        customer = self.customer
        available = selectors.spendable_credit(customer=customer)
        card = None
        if selectors.stripe_account(organization=self.organization) and customer.stripe_customer_id:
            try:
                client = payments.client_for(self.organization)
                card = payments.default_card(client=client, stripe_customer_id=customer.stripe_customer_id)
            except stripe.StripeError as exc:
                raise payments.StripeUnavailable(f"Stripe: {exc.user_message or exc}") from exc
        return Response({
            "balance": cents(available),
            "balance_microdollars": available,
            "has_default_payment_method": card is not None,
            "payment_method": None if card is None else {"brand": card.brand, "last4": card.last4},
            "topup_config": topup_config_shape(selectors.auto_topup_config(customer=customer)),
            "first_topup_success": selectors.has_completed_topup(customer=customer),
        })


# --- Top-ups ------------------------------------------------------------------------------------


class TopupView(CustomerBillingView):
    @extend_schema(
        summary="Create a top-up (seed 004): a Stripe PaymentIntent",
        request=TopupCreateSerializer,
        responses=inline_serializer("TopupCreateResponse", {
            "client_secret": serializers.CharField(allow_null=True),
            "onboarding": serializers.BooleanField(help_text="Whether the customer was already onboarded (saved card)"),
            "payment_intent_id": serializers.CharField(),
            "brand": serializers.CharField(allow_null=True),
            "last4": serializers.CharField(allow_null=True),
        }),
    )
    def post(self, request, customer_id: str):
        data = self.validated(TopupCreateSerializer)
        created = services.topup_create(customer=self.customer, amount_cents=data["amount"])
        return Response({
            "client_secret": created.client_secret,
            "onboarding": created.onboarding,
            "payment_intent_id": created.topup.payment_intent_id,
            "brand": created.card.brand if created.card else None,
            "last4": created.card.last4 if created.card else None,
        })


class TopupStatusView(CustomerBillingView):
    @extend_schema(
        summary="Check top-up status (seed 004); credits the customer once when the payment succeeded",
        request=TopupStatusSerializer,
        responses=inline_serializer("TopupStatusResponse", {
            "payment_intent_id": serializers.CharField(),
            "status": serializers.ChoiceField(choices=["completed", "pending"]),
        }),
    )
    def post(self, request, customer_id: str):
        data = self.validated(TopupStatusSerializer)
        topup = services.topup_refresh(customer=self.customer, payment_intent_id=data["payment_intent_id"])
        return Response({
            "payment_intent_id": topup.payment_intent_id,
            "status": "completed" if topup.status == topup.Status.COMPLETED else "pending",
        })


class TopupConfigView(CustomerBillingView):
    @extend_schema(summary="Get auto top-up configuration (seed 004)", responses=TOPUP_CONFIG_SCHEMA)
    def get(self, request, customer_id: str):
        return Response(topup_config_shape(selectors.auto_topup_config(customer=self.customer)))

    @extend_schema(
        summary="Set auto top-up configuration (seed 004)", request=TopupConfigSerializer,
        responses=inline_serializer("ConfigCreateResponse", {
            "amount": serializers.IntegerField(), "threshold": serializers.IntegerField(),
        }),
    )
    def post(self, request, customer_id: str):
        data = self.validated(TopupConfigSerializer)
        config = services.auto_topup_config_set(
            customer=self.customer,
            amount_microdollars=data["amount"] * services.MICRODOLLARS_PER_CENT,
            threshold_microdollars=data["threshold"] * services.MICRODOLLARS_PER_CENT,
        )
        return Response(
            {"amount": cents(config.amount_microdollars), "threshold": cents(config.threshold_microdollars)}
        )

    @extend_schema(summary="Delete auto top-up configuration (seed 004)", responses={200: EMPTY_SCHEMA})
    def delete(self, request, customer_id: str):
        services.auto_topup_config_delete(customer=self.customer)
        return Response({})


# --- Spending limit -----------------------------------------------------------------------------


class SpendingLimitView(CustomerBillingView):
    @extend_schema(summary="Get spending limit (seed 004)", responses=SPENDING_LIMIT_SCHEMA)
    def get(self, request, customer_id: str):
        return Response(spending_limit_shape(selectors.spending_limit(customer=self.customer)))

    @extend_schema(
        summary="Set spending limit (seed 004)", request=SpendingLimitSerializer, responses=SPENDING_LIMIT_SCHEMA
    )
    def post(self, request, customer_id: str):
        data = self.validated(SpendingLimitSerializer)
        limit = services.spending_limit_set(
            customer=self.customer,
            amount_microdollars=data["amount"] * services.MICRODOLLARS_PER_CENT,
            duration=data["duration"],
            strategy=data["strategy"],
            enabled=data["enabled"],
        )
        return Response(spending_limit_shape(limit))

    @extend_schema(summary="Delete spending limit (seed 004)", responses={200: EMPTY_SCHEMA})
    def delete(self, request, customer_id: str):
        services.spending_limit_delete(customer=self.customer)
        return Response({})


# --- Ledger (our envelope) ----------------------------------------------------------------------


class CreditEntryPagination(EnvelopeCursorPagination):
    ordering = ("-created_at", "-id")


class CreditEntriesView(OrganizationScopedAPIView):
    """The customer's credit ledger, newest first; POST adds a grant or an adjustment."""

    serializer_class = CreditEntrySerializer
    pagination_class = CreditEntryPagination

    def get_base_queryset(self):
        return CreditEntry.objects.select_related("customer").prefetch_related("draws")

    def _customer(self):
        return selectors.customer_get(organization=self.organization, customer_id=self.kwargs["customer_id"])

    @extend_schema(responses=CreditEntrySerializer(many=True))
    def get(self, request, customer_id: str):
        page = self.paginate_queryset(self.get_queryset().filter(customer=self._customer()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(request=CreditEntryCreateSerializer, responses={201: CreditEntrySerializer})
    def post(self, request, customer_id: str):
        customer = self._customer()
        serializer = CreditEntryCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = request.user if getattr(request.user, "is_authenticated", False) and request.user.pk else None
        try:
            if data["kind"] == CreditEntry.Kind.GRANT:
                entry, created = services.credit_add(
                    customer=customer, kind=CreditEntry.Kind.GRANT, amount_microdollars=data["amount_microdollars"],
                    reference=data["reference"], expires_at=data.get("expires_at"),
                    description=data["description"], created_by=user,
                )
            else:
                entry, created = services.credit_adjust(
                    customer=customer, amount_microdollars=data["amount_microdollars"], reference=data["reference"],
                    expires_at=data.get("expires_at"), description=data["description"], created_by=user,
                )
        except services.InsufficientCredit as exc:
            raise serializers.ValidationError({"amount_microdollars": str(exc)}) from exc
        if not created:
            raise Conflict(
                f"A {data['kind']} with reference {data['reference']!r} already exists for this customer.",
                details={"field": "reference", "existing_id": str(entry.id)},
            )
        return Response(CreditEntrySerializer(entry).data, status=status.HTTP_201_CREATED)


# --- Stripe account (our envelope) --------------------------------------------------------------


def _account_shape(request, account) -> dict:
    if account is None:
        return {"configured": False, "key_hint": None, "livemode": None, "webhook_secret_set": False,
                "webhook_url": None, "updated_at": None}
    webhook_url = None
    if account.has_webhook_secret:
        webhook_url = request.build_absolute_uri(
            reverse("billing:stripe-organization-billing-webhook", args=[str(account.organization_id)])
        )
    return {"configured": True, "key_hint": account.key_hint, "livemode": account.livemode,
            "webhook_secret_set": account.has_webhook_secret, "webhook_url": webhook_url,
            "updated_at": account.updated_at}


class StripeAccountView(OrganizationScopedAPIView):
    """The Stripe account top-ups are charged through and its webhook signing secret (admins only;
    neither secret is ever shown again)."""

    required_role = Role.ADMIN
    required_write_role = Role.ADMIN
    required_scope = ApiKeyScope.ADMIN  # an API key that can change the Stripe secret is an admin key

    @extend_schema(responses=STRIPE_ACCOUNT_SCHEMA)
    def get(self, request):
        return Response(_account_shape(request, selectors.stripe_account(organization=self.organization)))

    @extend_schema(request=StripeAccountSerializer, responses=STRIPE_ACCOUNT_SCHEMA)
    def put(self, request):
        serializer = StripeAccountSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        secret_key = serializer.validated_data.get("secret_key")
        if secret_key is None and selectors.stripe_account(organization=self.organization) is None:
            raise serializers.ValidationError({"secret_key": "Required to set up the Stripe account."})
        if secret_key is not None:
            try:
                from accounts.stripe_client import stripe_client

                stripe_client(secret_key).v1.customers.list(params={"limit": 1})
            except stripe.AuthenticationError as exc:
                raise serializers.ValidationError({"secret_key": "Stripe refused this key."}) from exc
            except stripe.StripeError as exc:
                raise payments.StripeUnavailable(f"Stripe: {exc.user_message or exc}") from exc
        account = services.stripe_account_set(
            organization=self.organization,
            secret_key=secret_key,
            webhook_secret=serializer.validated_data.get("webhook_secret"),
        )
        return Response(_account_shape(request, account))

    @extend_schema(responses={200: STRIPE_ACCOUNT_SCHEMA})
    def delete(self, request):
        services.stripe_account_delete(organization=self.organization)
        return Response(_account_shape(request, None))


# --- Stripe webhook -----------------------------------------------------------------------------


@extend_schema(exclude=True)
@csrf_exempt
@require_POST
def stripe_billing_webhook(request):
    """Stripe → us: payment_intent.* events for top-ups, from the platform's Stripe account. The
    signature (Stripe-Signature header, STRIPE_WEBHOOK_SECRET) is checked before anything is read
    or stored."""
    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        return JsonResponse(
            error_body("webhook_not_configured", "STRIPE_WEBHOOK_SECRET is not set; the endpoint refuses events."),
            status=503,
        )
    return _receive(request, secret=secret, endpoint_organization=None)


@extend_schema(exclude=True)
@csrf_exempt
@require_POST
def stripe_organization_billing_webhook(request, organization_id: str):
    """Stripe → us: payment_intent.* events from an organization's own Stripe account, verified with
    the signing secret stored on its payment account; only that organization's top-ups are touched.
    An unknown organization and one without a signing secret get the same 404."""
    account = None
    with contextlib.suppress(ValueError):
        account = (
            StripePaymentAccount.objects.select_related("organization")
            .filter(organization_id=uuid.UUID(organization_id))
            .first()
        )
    if account is None or not account.has_webhook_secret:
        return JsonResponse(
            error_body("not_found", "No Stripe billing webhook endpoint for this organization."), status=404
        )
    return _receive(request, secret=account.webhook_secret, endpoint_organization=account.organization)


def _receive(request, *, secret: str, endpoint_organization) -> JsonResponse:
    try:
        event = construct_webhook_event(request.body, request.headers.get("Stripe-Signature", ""), secret)
    except stripe.SignatureVerificationError:
        return JsonResponse(error_body("invalid_signature", "The Stripe-Signature header does not verify."), status=400)
    except (ValueError, TypeError, AttributeError, KeyError):  # the library only builds events from JSON objects
        return JsonResponse(error_body("validation_error", "The body is not a JSON Stripe event."), status=400)
    payload = event.to_dict()
    problem = webhooks.event_problem(payload)
    if problem:
        return JsonResponse(error_body("validation_error", problem), status=400)
    try:
        row = webhooks.webhook_receive(event=payload, endpoint_organization=endpoint_organization)
    except IntegrityError:  # a concurrent redelivery of the same event id is being handled
        return JsonResponse({"received": True, "status": "duplicate"})
    if row.status == row.Status.FAILED:
        # Non-2xx makes Stripe redeliver later; the error is kept on the stored row.
        return JsonResponse(error_body("webhook_failed", row.error), status=500)
    return JsonResponse({"received": True, "status": row.status})
