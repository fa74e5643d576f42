from django import forms
from django.contrib import admin, messages

from costcalc.admin_display import DefaultOrganizationMixin
from costcalc.money import format_money, format_quantity

from . import services
from .models import (
    CustomerHealth,
    CustomerMapping,
    MarginSettings,
    StripeConnection,
    StripeCustomer,
    StripeInvoice,
    SyncRun,
    WebhookDelivery,
    WebhookEndpoint,
)
from .stripe_api import StripeSyncError
from .webhooks import WebhookDeliveryFailed, target_refusal, webhook_attempt, webhook_give_up


class ReadOnlyAdmin(admin.ModelAdmin):
    """Synced and logged rows are read here, never edited by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(StripeConnection)
class StripeConnectionAdmin(ReadOnlyAdmin):
    list_display = ["organization", "key_prefix", "status", "last_synced_at", "created_at"]
    list_filter = ["status"]
    search_fields = ["organization__name", "key_prefix"]
    fields = ["organization", "key_prefix", "status", "last_error", "invoices_synced_until", "last_synced_at",
              "created_at", "updated_at"]  # never the key itself
    actions = ["sync_now"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("secret_key")  # the list never needs (or shows) the key

    @admin.action(description="Sync revenue from Stripe now")
    def sync_now(self, request, queryset):
        for connection in queryset.select_related("organization"):
            try:
                result = services.revenue_sync(organization=connection.organization, trigger=SyncRun.Trigger.MANUAL)
            except StripeSyncError as exc:
                self.message_user(request, f"{connection.organization}: sync failed: {exc}", level=messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"{connection.organization}: {result.invoices_fetched} invoice(s), "
                    f"{result.customers_processed} customer(s), {result.auto_matches_created} new auto-match(es).",
                )


@admin.register(StripeCustomer)
class StripeCustomerAdmin(ReadOnlyAdmin):
    list_display = ["stripe_id", "name", "email", "organization", "synced_at"]
    list_filter = ["organization"]
    search_fields = ["stripe_id", "name", "email"]


@admin.register(StripeInvoice)
class StripeInvoiceAdmin(ReadOnlyAdmin):
    list_display = ["stripe_id", "stripe_customer_id", "status", "amount", "period", "organization"]
    list_filter = ["status", "currency", "organization"]
    search_fields = ["stripe_id", "stripe_customer_id"]

    @admin.display(description="amount paid", ordering="amount_paid")
    def amount(self, invoice: StripeInvoice) -> str:
        """Dollars for USD; other currencies in Stripe's minor units, as received (not counted as revenue)."""
        if invoice.amount_paid_microdollars is not None:
            return format_money(invoice.amount_paid_microdollars)
        if invoice.amount_paid is None:
            return "—"
        return f"{format_quantity(invoice.amount_paid)} {invoice.currency.upper()} minor units"


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "organization", "trigger", "status", "invoices_fetched", "invoices_skipped",
                    "auto_matches_created", "duration_ms"]
    list_filter = ["status", "trigger", "organization"]


@admin.register(CustomerMapping)
class CustomerMappingAdmin(admin.ModelAdmin):
    list_display = ["stripe_customer_id", "tag_key", "tag_value", "match_type", "status", "reason", "confidence",
                    "organization", "updated_at"]
    list_filter = ["status", "match_type", "reason", "organization"]
    search_fields = ["stripe_customer_id", "tag_value"]
    readonly_fields = ["reason", "confidence", "created_at", "updated_at"]
    actions = ["approve_selected", "reject_selected"]

    @admin.action(description="Approve selected pending auto-matches")
    def approve_selected(self, request, queryset):
        self._review(request, queryset, approve=True)

    @admin.action(description="Reject selected pending auto-matches")
    def reject_selected(self, request, queryset):
        self._review(request, queryset, approve=False)

    def _review(self, request, queryset, *, approve: bool) -> None:
        pending = list(queryset.filter(status=CustomerMapping.Status.PENDING))
        for mapping in pending:
            services.customer_mapping_review(mapping=mapping, approve=approve)
        skipped = queryset.count() - len(pending)
        verb = "Approved" if approve else "Rejected"
        self.message_user(request, f"{verb} {len(pending)} mapping(s).")
        if skipped:
            self.message_user(request, f"{skipped} selected mapping(s) were not pending.", level=messages.WARNING)


@admin.register(MarginSettings)
class MarginSettingsAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    list_display = ["organization", "healthy_min_percent", "at_risk_min_percent", "target_margin_percent"]


@admin.register(CustomerHealth)
class CustomerHealthAdmin(ReadOnlyAdmin):
    list_display = ["tag_value", "tier", "margin_percent", "period", "organization", "updated_at"]
    list_filter = ["tier", "organization"]


class WebhookEndpointAddForm(forms.ModelForm):
    url = forms.URLField(max_length=2000, assume_scheme="https")

    class Meta:
        model = WebhookEndpoint
        fields = ["organization", "url", "event_types"]

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        refusal = target_refusal(url)
        if refusal is not None:
            raise forms.ValidationError(f"The URL {refusal}.")
        return url


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    can_delete = False
    fields = ["created_at", "event_type", "status", "attempts", "response_status", "last_error"]
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    list_display = ["url", "organization", "is_active", "created_at"]
    list_filter = ["is_active", "organization"]
    inlines = [WebhookDeliveryInline]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = WebhookEndpointAddForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["organization", "url", "event_types"] + (["is_active"] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        endpoint, secret = services.webhook_endpoint_create(
            organization=form.cleaned_data["organization"], url=form.cleaned_data["url"],
            event_types=form.cleaned_data["event_types"],
        )
        obj.pk = endpoint.pk
        obj.refresh_from_db()
        messages.warning(request, f"Signing secret for {endpoint.url}: {secret} — copy it now, it is not shown again.")


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "response_status", "last_error"]
    list_filter = ["status", "event_type", "organization"]
    actions = ["retry_selected"]

    @admin.action(description="Send selected deliveries again now (one attempt each)")
    def retry_selected(self, request, queryset):
        sent = failed = 0
        for delivery in queryset.exclude(status=WebhookDelivery.Status.SUCCEEDED):
            try:
                webhook_attempt(delivery_id=delivery.pk)
            except WebhookDeliveryFailed:
                webhook_give_up(delivery_id=delivery.pk)
                failed += 1
            else:
                sent += 1
        self.message_user(request, f"Delivered {sent}; {failed} failed again (see last error).")
