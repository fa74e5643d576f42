from django.contrib import admin
from django.db import transaction

from .admin_display import DefaultOrganizationMixin, quantity_column, usd_price_column
from .models import ModelPrice, OrganizationPriceOverride, UnpricedModel
from .selectors import catalog_changed

PRICE_FIELDSETS = (
    (
        "Prices (USD per million tokens; empty = billed as plain input/output)",
        {
            "fields": (
                ("input_per_mtok", "output_per_mtok"),
                ("cache_read_per_mtok", "cache_write_per_mtok", "reasoning_per_mtok"),
                "request_fee_usd",
                "tiers",
            )
        },
    ),
    ("In force", {"fields": (("effective_from", "effective_until"),)}),
)


class CatalogChangeMixin:
    """Edits made here reach this process's pricing snapshot at once (others notice on their next check)."""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        transaction.on_commit(catalog_changed)

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        transaction.on_commit(catalog_changed)

    def delete_queryset(self, request, queryset):
        super().delete_queryset(request, queryset)
        transaction.on_commit(catalog_changed)


class PriceColumns:
    """Prices as dollars, exact, with their unit: '$2.50 / M tokens', '$0.001 per request'."""

    input_price = usd_price_column("input_per_mtok", "input", per="/ M tokens")
    output_price = usd_price_column("output_per_mtok", "output", per="/ M tokens")
    cache_read_price = usd_price_column("cache_read_per_mtok", "cache read", per="/ M tokens")
    request_fee = usd_price_column("request_fee_usd", "request fee", per="per request")


@admin.register(ModelPrice)
class ModelPriceAdmin(PriceColumns, CatalogChangeMixin, admin.ModelAdmin):
    list_display = [
        "slug",
        "vendor",
        "input_price",
        "output_price",
        "cache_read_price",
        "request_fee",
        "effective_from",
        "effective_until",
        "source",
    ]
    list_filter = ["source", "vendor", ("effective_until", admin.EmptyFieldListFilter)]
    search_fields = ["slug", "display_name", "vendor"]
    ordering = ["slug", "effective_from"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = (
        (None, {"fields": ("slug", "vendor", "display_name", "source")}),
        *PRICE_FIELDSETS,
        ("Record", {"fields": (("created_at", "updated_at"),)}),
    )
    list_per_page = 100


@admin.register(OrganizationPriceOverride)
class OrganizationPriceOverrideAdmin(PriceColumns, DefaultOrganizationMixin, CatalogChangeMixin, admin.ModelAdmin):
    list_display = ["organization", "slug", "input_price", "output_price", "effective_from", "effective_until"]
    list_filter = ["organization"]
    search_fields = ["slug", "organization__name", "note"]
    autocomplete_fields = ["organization"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = (
        (None, {"fields": ("organization", "slug", "note")}),
        *PRICE_FIELDSETS,
        ("Record", {"fields": (("created_at", "updated_at"),)}),
    )


@admin.register(UnpricedModel)
class UnpricedModelAdmin(admin.ModelAdmin):
    """Model slugs seen in events that no price covered: nothing is silently costed at $0."""

    events = quantity_column("event_count", "events")
    list_display = ["slug", "organization", "events", "first_seen_at", "last_seen_at"]
    list_filter = ["organization"]
    search_fields = ["slug", "organization__name"]
    ordering = ["-last_seen_at"]
    readonly_fields = ["organization", "slug", "event_count", "first_seen_at", "last_seen_at"]

    def has_add_permission(self, request) -> bool:
        return False  # rows come from ingest
