"""Vendor-dialect routes over billing, included from billing/urls.py."""

from django.urls import path

from billing.compat import cloudflare

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
