from django.urls import include, path
from rest_framework.routers import SimpleRouter

from . import pages, views

app_name = "billing"

SEED_004 = "api/v1/customers/<str:customer_id>/billing"

router = SimpleRouter(trailing_slash=False)
router.register("api/v1/billable-metrics", views.BillableMetricViewSet, basename="billable-metric")
router.register("api/v1/products", views.ProductViewSet, basename="product")
router.register("api/v1/rate-cards", views.RateCardViewSet, basename="rate-card")
router.register("api/v1/contracts", views.ContractViewSet, basename="contract")
router.register(
    r"api/v1/customers/(?P<customer_id>[^/]+)/invoices", views.CustomerInvoiceViewSet, basename="customer-invoice"
)

urlpatterns = [
    *router.urls,
    # Seed 004 (Cloudflare AI Gateway billing) dialect, per customer: bare seed objects, no envelope.
    path(f"{SEED_004}/invoice-preview", views.InvoicePreviewView.as_view(), name="invoice-preview"),
    path(f"{SEED_004}/invoice-history", views.InvoiceHistoryView.as_view(), name="invoice-history"),
    path(f"{SEED_004}/usage-history", views.UsageHistoryView.as_view(), name="usage-history"),
    path("invoices/view/<str:token>", pages.invoice_page, name="invoice-page"),
    path("", include("billing.credits.urls")),  # prepaid credits, top-ups, spending limits
    path("", include("billing.compat.urls")),  # vendors' own paths (Cloudflare AI Gateway billing)
    path("", include("billing.collection.urls")),  # collection through Stripe, reconciliation
]
