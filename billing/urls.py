from django.urls import include, path

from . import pages

app_name = "billing"

urlpatterns = [
    path("invoices/view/<str:token>", pages.invoice_page, name="invoice-page"),
    path("", include("billing.credit_urls")),  # prepaid credits, top-ups, spending limits
]
