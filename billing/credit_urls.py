"""Routes of prepaid credits, included from billing/urls.py."""

from django.urls import path

from billing import credit_views

CUSTOMER = "api/v1/customers/<str:customer_id>/billing"

urlpatterns = [
    path(f"{CUSTOMER}/credit-balance", credit_views.CreditBalanceView.as_view(), name="credit-balance"),
    path(f"{CUSTOMER}/topup", credit_views.TopupView.as_view(), name="credit-topup"),
    path(f"{CUSTOMER}/topup/status", credit_views.TopupStatusView.as_view(), name="credit-topup-status"),
    path(f"{CUSTOMER}/topup/config", credit_views.TopupConfigView.as_view(), name="credit-topup-config"),
    path(f"{CUSTOMER}/spending-limit", credit_views.SpendingLimitView.as_view(), name="credit-spending-limit"),
    path(f"{CUSTOMER}/credit-entries", credit_views.CreditEntriesView.as_view(), name="credit-entries"),
    path("api/v1/billing/stripe-account", credit_views.StripeAccountView.as_view(), name="billing-stripe-account"),
    path("api/stripe/webhooks/billing", credit_views.stripe_billing_webhook, name="stripe-billing-webhook"),
    path(
        "api/stripe/webhooks/billing/<str:organization_id>",
        credit_views.stripe_organization_billing_webhook,
        name="stripe-organization-billing-webhook",
    ),
]
