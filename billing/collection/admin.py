"""Admin for collection through Stripe: customers' billing configuration, each invoice's Stripe twin
(state, error, links, a "retry" action) and the reconciliation page (Stripe invoices → Reconciliation).

Writes go through the services, so admin obeys the API's rules."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework.exceptions import APIException

from accounts.models import Organization
from billing.collection import reconciliation, selectors, services
from billing.collection.models import CustomerBillingConfig, ExternalInvoice
from billing.presentation import dollars


class CustomerBillingConfigForm(forms.ModelForm):
    stripe_customer_id = forms.CharField(
        required=False, max_length=255,
        help_text="An existing Stripe customer (cus_…); empty: created on the first invoice (kept if already linked)",
    )

    class Meta:
        model = CustomerBillingConfig
        fields = [
            "customer", "bill_through_stripe", "currency", "collection_method", "days_until_due", "auto_advance",
            "send_zero_amount_invoices",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["customer"].disabled = True
            self.fields["stripe_customer_id"].initial = self.instance.customer.stripe_customer_id

    def clean(self):
        data = super().clean()
        try:
            data.update(services.billing_config_clean({
                "currency": data.get("currency"), "collection_method": data.get("collection_method"),
                "days_until_due": data.get("days_until_due"), "stripe_customer_id": data.get("stripe_customer_id"),
            }))
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                self.add_error(field, problems)
        return data


@admin.register(CustomerBillingConfig)
class CustomerBillingConfigAdmin(admin.ModelAdmin):
    form = CustomerBillingConfigForm
    list_display = ["customer", "bill_through_stripe", "currency", "collection_method", "days_until_due",
                    "auto_advance", "send_zero_amount_invoices", "updated_at"]
    list_filter = ["bill_through_stripe", "collection_method", "organization"]
    search_fields = ["customer__external_id", "customer__name"]
    autocomplete_fields = ["customer"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        config = services.billing_config_set(
            customer=data.get("customer") or obj.customer,
            bill_through_stripe=data["bill_through_stripe"],
            currency=data["currency"],
            collection_method=data["collection_method"],
            days_until_due=data["days_until_due"],
            auto_advance=data["auto_advance"],
            send_zero_amount_invoices=data["send_zero_amount_invoices"],
            stripe_customer_id=data.get("stripe_customer_id") or None,
        )
        obj.pk = config.pk


def retry_pushes(modeladmin, request, invoices) -> None:
    """Push the selected invoices to Stripe again (after a permanent error, or never sent)."""
    done = 0
    for invoice in invoices:
        try:
            services.external_invoice_retry(invoice=invoice)
            done += 1
        except APIException as exc:
            modeladmin.message_user(request, f"{invoice}: {exc.detail}", level=messages.ERROR)
    modeladmin.message_user(request, f"Queued the Stripe push of {done} invoice(s).")


class ExternalInvoiceInline(admin.StackedInline):
    """The invoice's Stripe twin on the invoice page."""

    model = ExternalInvoice
    can_delete = False
    extra = 0
    max_num = 0
    verbose_name = "Stripe invoice"
    fields = readonly_fields = [
        "state", "error", "attempts", "stripe_link", "stripe_status", "currency", "sent_total", "stripe_total",
        "amount_paid", "amount_remaining", "due_at", "paid_at", "payment_failed_at", "last_payment_error",
        "updated_at",
    ]

    @admin.display(description="Stripe invoice")
    def stripe_link(self, row: ExternalInvoice) -> str:
        if not row.stripe_invoice_id:
            return "-"
        if row.hosted_invoice_url:
            return format_html('{} (<a href="{}">hosted page</a>)', row.stripe_invoice_id, row.hosted_invoice_url)
        return row.stripe_invoice_id


@admin.register(ExternalInvoice)
class ExternalInvoiceAdmin(admin.ModelAdmin):
    list_display = ["invoice", "customer", "state", "stripe_invoice_id", "stripe_status", "has_error", "updated_at"]
    list_filter = ["state", "stripe_status", "organization"]
    search_fields = ["stripe_invoice_id", "invoice__number", "customer__external_id"]
    list_select_related = ["invoice", "customer"]
    readonly_fields = [field.name for field in ExternalInvoice._meta.fields]
    actions = ["retry"]

    @admin.display(boolean=True, description="error")
    def has_error(self, row: ExternalInvoice) -> bool:
        return bool(row.error)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Retry the Stripe push of the selected invoices")
    def retry(self, request, queryset):
        from billing.models import Invoice

        retry_pushes(self, request, Invoice.objects.filter(pk__in=queryset.values("invoice_id")))

    def get_urls(self):
        extra = [
            path(
                "reconciliation/",
                self.admin_site.admin_view(self.reconciliation_view),
                name="billing_externalinvoice_reconciliation",
            )
        ]
        return extra + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        url = reverse("admin:billing_externalinvoice_reconciliation")
        extra_context = {**(extra_context or {}), "reconciliation_url": url}
        return super().changelist_view(request, extra_context)

    def reconciliation_view(self, request):
        organizations = list(Organization.objects.order_by("name"))
        wanted = request.GET.get("organization")
        organization = next((org for org in organizations if str(org.pk) == wanted), None)
        if organization is None and organizations:
            organization = organizations[0]
        period = request.GET.get("period") or f"{timezone.now():%Y-%m}"
        error = ""
        rows = []
        try:
            selectors.period_bounds(period)
        except ValueError:
            error = "The period must be YYYY-MM."
        else:
            if organization is not None:
                rows = selectors.reconciliation_rows(organization=organization, period=period)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Reconciliation {period}",
            "opts": self.model._meta,
            "organizations": organizations,
            "organization": organization,
            "period": period,
            "error": error,
            "rows": [
                {
                    "row": row,
                    "metered": _money(row.metered_cents, row.currency),
                    "credits": _money(row.credits_cents, row.currency),
                    "due": _money(row.due_cents, row.currency),
                    "invoiced": _money(row.invoiced_cents, row.currency),
                    "collected": _money(row.collected_cents, row.currency),
                    "outstanding": _money(row.outstanding_cents, row.currency),
                }
                for row in rows
            ],
            "flag_counts": reconciliation.flag_counts(rows),
        }
        return TemplateResponse(request, "admin/billing/externalinvoice/reconciliation.html", context)


def _money(cents: int, currency: str) -> str:
    if currency == "USD":
        return dollars(cents)
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole:,}.{part:02d} {currency}"
