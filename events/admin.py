from django.contrib import admin

from .models import Customer, UsageEvent, VendorResponse


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
        "id", "customer", "event_type", "occurred_at", "cost_microdollars", "revenue_microdollars", "source",
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
