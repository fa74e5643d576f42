"""Routes of collection through Stripe, included from billing/urls.py."""

from django.urls import path

from billing.collection import views

urlpatterns = [
    path(
        "api/v1/customers/<str:customer_id>/billing-configuration",
        views.BillingConfigView.as_view(),
        name="customer-billing-configuration",
    ),
    path(
        "api/v1/customers/<str:customer_id>/invoices/<str:invoice_id>/stripe/retry",
        views.InvoiceStripeRetryView.as_view(),
        name="invoice-stripe-retry",
    ),
    path("api/v1/reconciliation", views.ReconciliationView.as_view(), name="reconciliation"),
]
