"""Vendor-dialect routes over billing, included from billing/urls.py."""

from django.urls import path

from billing.compat import cloudflare, metronome

# Cloudflare's SDK appends `/accounts/{account_id}/...` to its base URL, which conventionally ends in
# `/client/v4`: both prefixes answer, so either base URL works.
CLOUDFLARE_ROUTES = [
    ("credit-balance", cloudflare.CreditBalanceView, "credit-balance"),
    ("invoice-history", cloudflare.InvoiceHistoryView, "invoice-history"),
    ("invoice-preview", cloudflare.InvoicePreviewView, "invoice-preview"),
    ("usage-history", cloudflare.UsageHistoryView, "usage-history"),
    ("topup", cloudflare.TopupView, "topup"),
    ("topup/status", cloudflare.TopupStatusView, "topup-status"),
    ("topup/config", cloudflare.TopupConfigView, "topup-config"),
    ("spending-limit", cloudflare.SpendingLimitView, "spending-limit"),
]

urlpatterns = [
    path(f"{prefix}accounts/<str:account_id>/ai-gateway/billing/{suffix}", view.as_view(),
         name=f"cloudflare{'-v4' if prefix else ''}-{name}")
    for prefix in ("", "client/v4/")
    for suffix, view, name in CLOUDFLARE_ROUTES
]  # fmt: skip

# Metronome's SDK calls `/v1/...` under its base URL (the server's root here).
urlpatterns += [
    path("v1/ingest", metronome.IngestView.as_view(), name="metronome-v1-ingest"),
    path("v1/customers", metronome.CustomerCreateView.as_view(), name="metronome-customer-create"),
    path(
        "v1/customers/<str:customer_id>/invoices",
        metronome.CustomerInvoiceListView.as_view(),
        name="metronome-customer-invoices",
    ),
    path("v1/billable-metrics/create", metronome.BillableMetricCreateView.as_view(), name="metronome-metric-create"),
    path(
        "v1/contract-pricing/products/create", metronome.ProductCreateView.as_view(), name="metronome-product-create"
    ),
    path(
        "v1/contract-pricing/rate-cards/create",
        metronome.RateCardCreateView.as_view(),
        name="metronome-rate-card-create",
    ),
    path("v1/contract-pricing/rate-cards/addRate", metronome.RateAddView.as_view(), name="metronome-rate-add"),
    path("v1/contracts/create", metronome.ContractCreateView.as_view(), name="metronome-contract-create"),
]
