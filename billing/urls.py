from django.urls import path

from . import pages

app_name = "billing"

urlpatterns = [
    path("invoices/view/<str:token>", pages.invoice_page, name="invoice-page"),
]
