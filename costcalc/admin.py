from django.contrib import admin
from django.db import transaction

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


@admin.register(ModelPrice)
class ModelPriceAdmin(CatalogChangeMixin, admin.ModelAdmin):
    list_display = [
        "slug",
        "vendor",
        "input_per_mtok",
        "output_per_mtok",
        "cache_read_per_mtok",
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
class OrganizationPriceOverrideAdmin(CatalogChangeMixin, admin.ModelAdmin):
    list_display = ["organization", "slug", "input_per_mtok", "output_per_mtok", "effective_from", "effective_until"]
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

    list_display = ["slug", "organization", "event_count", "first_seen_at", "last_seen_at"]
    list_filter = ["organization"]
    search_fields = ["slug", "organization__name"]
    ordering = ["-last_seen_at"]
    readonly_fields = ["organization", "slug", "event_count", "first_seen_at", "last_seen_at"]

    def has_add_permission(self, request) -> bool:
        return False  # rows come from ingest
