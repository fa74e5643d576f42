from django.urls import path

from . import pages, views

urlpatterns = [
    path("api/stripe/connect", views.StripeConnectView.as_view(), name="stripe-connect"),
    path("api/stripe/disconnect", views.StripeDisconnectView.as_view(), name="stripe-disconnect"),
    path("api/stripe/revenue-sync", views.RevenueSyncView.as_view(), name="stripe-revenue-sync"),
    path("api/customer-mappings", views.CustomerMappingsView.as_view(), name="customer-mappings"),
    path(
        "api/customer-mappings/<uuid:pk>/approve",
        views.CustomerMappingReviewView.as_view(approve=True),
        name="customer-mapping-approve",
    ),
    path(
        "api/customer-mappings/<uuid:pk>/reject",
        views.CustomerMappingReviewView.as_view(approve=False),
        name="customer-mapping-reject",
    ),
    path("api/margin-settings", views.MarginSettingsView.as_view(), name="margin-settings"),
    path("api/webhook-endpoints", views.WebhookEndpointsView.as_view(), name="webhook-endpoints"),
    path("api/margins", views.MarginsView.as_view(), name="margins"),
    path("api/margins/unmatched", views.UnmatchedView.as_view(), name="margins-unmatched"),
    # Tag values are URL-encoded and may contain "/", hence <path:>; "unmatched" is matched first.
    path("api/margins/<path:customer>", views.MarginCustomerView.as_view(), name="margins-customer"),
    # The operator dashboard (pages for signed-in members).
    path("dashboard/", pages.margins_page, name="dashboard-margins"),
    path("dashboard/mappings", pages.mappings_page, name="dashboard-mappings"),
    path("dashboard/usage", pages.usage_page, name="dashboard-usage"),
    path("dashboard/customers/<path:customer>", pages.customer_page, name="dashboard-customer"),
]
