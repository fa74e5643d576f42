from django.contrib import admin

from .models import (
    BlocklistState,
    Budget,
    BudgetAlert,
    Customer,
    Feature,
    IngestSettings,
    UsageEvent,
    VendorResponse,
)
from .services import blocklist_recompute


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "email", "organization", "stripe_customer_id", "created_at"]
    list_filter = ["organization"]
    search_fields = ["external_id", "name", "email", "stripe_customer_id", "uuid"]
    readonly_fields = ["uuid", "created_at"]


class VendorResponseInline(admin.TabularInline):
    model = VendorResponse
    extra = 0
    can_delete = False
    readonly_fields = [
        "model", "input_tokens", "output_tokens", "cached_input_tokens", "cache_write_tokens",
        "reasoning_tokens", "cost_microdollars", "price", "price_override",
    ]
    exclude = ["organization"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(admin.ModelAdmin):
    """The ledger is append-only: events are read here, never edited."""

    list_display = [
        "id", "customer", "event_type", "occurred_at", "cost_microdollars", "revenue_microdollars", "unpriced",
        "source",
    ]
    list_filter = ["source", "unpriced", "organization"]
    search_fields = ["idempotency_key", "customer__external_id", "event_type"]
    date_hierarchy = "occurred_at"
    list_select_related = ["customer"]
    inlines = [VendorResponseInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(IngestSettings)
class IngestSettingsAdmin(admin.ModelAdmin):
    list_display = ["organization", "accept_unpriced_models", "updated_at"]


@admin.register(Feature)
class FeatureAdmin(admin.ModelAdmin):
    list_display = ["key", "name", "organization", "cost_per_unit_usd", "price_per_unit_usd"]
    list_filter = ["organization"]
    search_fields = ["key", "name", "uuid"]
    readonly_fields = ["uuid", "created_at"]


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Budget edits here go through the services, so the blocklist is recomputed at once."""

    list_display = [
        "__str__", "organization", "scope", "scope_value", "limit_microdollars", "period", "action", "enabled",
    ]
    list_filter = ["organization", "scope", "period", "action", "enabled"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        blocklist_recompute(organization=obj.organization)

    def delete_model(self, request, obj):
        organization = obj.organization
        super().delete_model(request, obj)
        blocklist_recompute(organization=organization)

    def delete_queryset(self, request, queryset):
        organizations = {budget.organization for budget in queryset}
        super().delete_queryset(request, queryset)
        for organization in organizations:
            blocklist_recompute(organization=organization)


@admin.register(BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = [
        "budget", "subject", "action", "period_start", "spent_microdollars", "limit_microdollars", "created_at",
    ]
    list_filter = ["organization", "action"]
    readonly_fields = [field.name for field in BudgetAlert._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BlocklistState)
class BlocklistStateAdmin(admin.ModelAdmin):
    list_display = ["organization", "version", "blocked", "changed_at", "computed_at"]
    readonly_fields = ["organization", "version", "blocked", "changed_at", "computed_at"]

    def has_add_permission(self, request) -> bool:
        return False
