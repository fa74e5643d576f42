from decimal import Decimal

from django import forms
from django.contrib import admin

from accounts.deletion import BulkOwnerAdminMixin
from costcalc.admin_display import (
    MONEY,
    DefaultOrganizationMixin,
    TotalsMixin,
    money_column,
    quantity_column,
    usd_price_column,
)
from costcalc.money import microdollars_to_usd, usd_to_microdollars

from .models import (
    BlocklistState,
    Budget,
    BudgetAlert,
    Customer,
    Feature,
    IngestSettings,
    LedgerMonth,
    UsageEvent,
    VendorResponse,
)
from .services import blocklist_recompute
from .services.deletion import customer_delete


@admin.register(Customer)
class CustomerAdmin(BulkOwnerAdminMixin, DefaultOrganizationMixin, admin.ModelAdmin):
    """Deleting a customer deletes its ledger in slices first (events.services.deletion)."""

    list_display = ["external_id", "name", "email", "organization", "stripe_customer_id", "created_at"]
    list_filter = ["organization"]
    search_fields = ["external_id", "name", "email", "stripe_customer_id", "uuid"]
    readonly_fields = ["uuid", "created_at"]

    def delete_object(self, obj) -> None:
        customer_delete(customer=obj)


class VendorResponseInline(admin.TabularInline):
    model = VendorResponse
    extra = 0
    can_delete = False
    input = quantity_column("input_tokens", "input tokens")
    output = quantity_column("output_tokens", "output tokens")
    cached = quantity_column("cached_input_tokens", "cached input")
    cache_write = quantity_column("cache_write_tokens", "cache write")
    reasoning = quantity_column("reasoning_tokens", "reasoning")
    cost = money_column("cost_microdollars", "cost")
    fields = ["model", "input", "output", "cached", "cache_write", "reasoning", "cost", "price", "price_override"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(UsageEvent)
class UsageEventAdmin(TotalsMixin, admin.ModelAdmin):
    """The ledger is append-only: events are read here, never edited nor deleted (a deleted event would
    leave events' daily rollups and billing's hourly rollups counting it, and a finalized invoice
    billed for it). To take usage out anyway, delete it in SQL, then run `rebuild_usage_rollups
    --organization ID` and `billing_rebuild_rollups --organization ID` (README, "Usage rollups")."""

    cost = money_column("cost_microdollars", "cost")
    revenue = money_column("revenue_microdollars", "revenue")
    list_display = ["id", "customer", "event_type", "occurred_at", "cost", "revenue", "unpriced", "source"]
    totals = [("cost_microdollars", "cost", MONEY), ("revenue_microdollars", "revenue", MONEY)]
    list_filter = ["source", "unpriced", "organization"]
    search_fields = ["idempotency_key", "customer__external_id", "event_type"]
    date_hierarchy = "occurred_at"
    list_select_related = ["customer"]
    inlines = [VendorResponseInline]

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # also takes away the bulk delete action
        return False


@admin.register(IngestSettings)
class IngestSettingsAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    list_display = ["organization", "accept_unpriced_models", "updated_at"]


@admin.register(Feature)
class FeatureAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    cost_per_unit = usd_price_column("cost_per_unit_usd", "cost per unit", per="per unit")
    price_per_unit = usd_price_column("price_per_unit_usd", "price per unit", per="per unit")
    list_display = ["key", "name", "organization", "cost_per_unit", "price_per_unit"]
    list_filter = ["organization"]
    search_fields = ["key", "name", "uuid"]
    readonly_fields = ["uuid", "created_at"]


class BudgetForm(forms.ModelForm):
    """The limit is entered in dollars (up to the microdollar) and stored in microdollars."""

    limit_usd = forms.DecimalField(
        label="Limit (USD)", min_value=Decimal(0), max_digits=18, decimal_places=6,
        help_text="Cost limit per period in dollars, e.g. 250 or 0.25.",
    )

    class Meta:
        model = Budget
        fields = ["organization", "name", "scope", "scope_value", "limit_usd", "period", "action", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["limit_usd"] = microdollars_to_usd(self.instance.limit_microdollars).normalize()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("limit_usd") is not None:
            self.instance.limit_microdollars = usd_to_microdollars(cleaned["limit_usd"])
        return cleaned


@admin.register(Budget)
class BudgetAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    """Budget edits here go through the services, so the blocklist is recomputed at once."""

    form = BudgetForm
    limit = money_column("limit_microdollars", "limit")
    list_display = ["__str__", "organization", "scope", "scope_value", "limit", "period", "action", "enabled"]
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
    spent = money_column("spent_microdollars", "spent")
    limit = money_column("limit_microdollars", "limit")
    list_display = ["budget", "subject", "action", "period_start", "spent", "limit", "created_at"]
    list_filter = ["organization", "action"]
    readonly_fields = [
        "organization", "budget", "period_start", "subject", "action", "spent", "limit", "created_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(BlocklistState)
class BlocklistStateAdmin(admin.ModelAdmin):
    list_display = ["organization", "version", "blocked", "changed_at", "computed_at"]
    # All derived by the evaluation: an edited headroom would let it skip decisions it must make.
    readonly_fields = [
        "organization", "version", "blocked", "changed_at", "computed_at", "budget_customer_ids",
        "headroom_microdollars", "month_spend_microdollars",
    ]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(LedgerMonth)
class LedgerMonthAdmin(admin.ModelAdmin):
    """Months detached from the ledger (`manage.py ledger_partitions --detach`). Delete a row only
    after re-attaching its table (README, "Ledger partitions"): rollup rebuilds then reach it again."""

    list_display = ["month", "table_name", "event_count", "detached_at"]
    readonly_fields = list_display
    fields = list_display

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
