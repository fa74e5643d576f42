"""Routes of prepaid credits, included from billing/urls.py."""

from django.urls import path

from billing.credits import views

CUSTOMER = "api/v1/customers/<str:customer_id>/billing"

urlpatterns = [
    path(f"{CUSTOMER}/credit-balance", views.CreditBalanceView.as_view(), name="credit-balance"),
    path(f"{CUSTOMER}/topup", views.TopupView.as_view(), name="credit-topup"),
    path(f"{CUSTOMER}/topup/status", views.TopupStatusView.as_view(), name="credit-topup-status"),
    path(f"{CUSTOMER}/topup/config", views.TopupConfigView.as_view(), name="credit-topup-config"),
    path(f"{CUSTOMER}/spending-limit", views.SpendingLimitView.as_view(), name="credit-spending-limit"),
    path(f"{CUSTOMER}/credit-entries", views.CreditEntriesView.as_view(), name="credit-entries"),
    path("api/v1/billing/stripe-account", views.StripeAccountView.as_view(), name="billing-stripe-account"),
    path("api/stripe/webhooks/billing", views.stripe_billing_webhook, name="stripe-billing-webhook"),
    path(
        "api/stripe/webhooks/billing/<str:organization_id>",
        views.stripe_organization_billing_webhook,
        name="stripe-organization-billing-webhook",
    ),
]
