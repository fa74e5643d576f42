"""Django admin: the operators' daily tool for billing configuration and invoices.

Validation lives in the models' clean() (shared with the API); the formsets here add the checks
that span several rows saved together (overlapping rates or overrides, tier order).
"""

import json
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe

from costcalc.admin_display import DefaultOrganizationMixin
from costcalc.money import format_cents_price

from . import invoicing, metering, services
from .collection.admin import ExternalInvoiceInline, retry_pushes
from .metering import lock_organization_exclusive
from .metric_rules import EVENT_TYPE_FILTER_EXAMPLES, PROPERTY_FILTER_EXAMPLES
from .models import (
    BillableMetric,
    Contract,
    ContractOverride,
    Invoice,
    InvoiceLine,
    Product,
    Rate,
    RateCard,
    RateTier,
    composite_references_errors,
    ranges_overlap,
)
from .presentation import dollars, quantity_text, unit_price_text
from .recompute import schedule_draft_recompute


class OverlapCheckedFormSet(forms.BaseInlineFormSet):
    """Rejects two rows for the same product whose [starting_at, ending_before) ranges overlap."""

    def _construct_form(self, i, **kwargs):
        form = super()._construct_form(i, **kwargs)
        form.instance.siblings_checked = True  # this formset compares the rows with each other
        return form

    def clean(self):
        super().clean()
        kept = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and form.cleaned_data.get("starting_at")
        ]
        for index, form in enumerate(kept):
            data = form.cleaned_data
            for other in kept[:index]:
                theirs = other.cleaned_data
                if theirs.get("product") == data.get("product") and ranges_overlap(
                    data["starting_at"], data.get("ending_before"), theirs["starting_at"], theirs.get("ending_before")
                ):
                    form.add_error("starting_at", f"Overlaps another row for {data.get('product')} in this list.")
                    break


# --- Billable metrics ----------------------------------------------------------------------------


def _examples(examples) -> str:
    return " or ".join(f"<code>{escape(json.dumps(example))}</code>" for example in examples)


class BillableMetricForm(forms.ModelForm):
    """The filters are JSON; the help texts show examples that the validation accepts (tested)."""

    class Meta:
        model = BillableMetric
        fields = [
            "organization", "name", "aggregation_type", "aggregation_key", "event_type_filter", "property_filters",
            "group_keys",
        ]
        help_texts = {
            "event_type_filter": mark_safe(  # noqa: S308 - examples are escaped constants
                "Which event types count. For example " + _examples(EVENT_TYPE_FILTER_EXAMPLES)
                + " (empty: every event type)."
            ),
            "property_filters": mark_safe(  # noqa: S308 - examples are escaped constants
                "Conditions on event properties, all of which must hold; each has a <code>name</code> and "
                "at least one of <code>exists</code>, <code>in_values</code>, <code>not_in_values</code>. "
                "For example " + _examples(PROPERTY_FILTER_EXAMPLES) + " (empty: no condition)."
            ),
        }


@admin.register(BillableMetric)
class BillableMetricAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    form = BillableMetricForm
    list_display = [
        "name",
        "aggregation_type",
        "aggregation_key",
        "group_keys_text",
        "organization",
        "rebuild_progress",
        "updated_at",
    ]
    list_filter = ["aggregation_type", "organization"]
    search_fields = ["name", "aggregation_key", "id"]
    readonly_fields = ["id", "created_at", "updated_at", "rebuild_progress"]
    fields = [
        "id",
        "organization",
        "name",
        "aggregation_type",
        "aggregation_key",
        "event_type_filter",
        "property_filters",
        "group_keys",
        "rebuild_progress",
        "created_at",
        "updated_at",
    ]
    actions = ["rebuild_rollups"]

    @admin.display(description="usage rollups")
    def rebuild_progress(self, metric: BillableMetric) -> str:
        return rebuild_progress_text(metric.rebuilds.first() if metric.pk else None)

    @admin.display(description="group keys")
    def group_keys_text(self, metric: BillableMetric) -> str:
        return ", ".join(metric.group_keys) or "—"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change or set(form.changed_data) & set(services.METRIC_DEFINITION_FIELDS):
            metering.rollup_rebuild_queue(metric=obj)
            self.message_user(
                request, f"The usage rollups of {obj} are being rebuilt from the ledger; ingest goes on meanwhile."
            )

    @admin.action(description="Rebuild usage rollups from the ledger")
    def rebuild_rollups(self, request, queryset):
        for metric in queryset:
            metering.rollup_rebuild_queue(metric=metric)
        self.message_user(
            request,
            f"Queued a rollup rebuild for {queryset.count()} metric(s); drafts are recomputed when each is done.",
        )


def rebuild_progress_text(rebuild) -> str:
    """'running: 40% (4,000 of 10,000 events)', 'done', or '—' when the metric was never rebuilt."""
    if rebuild is None:
        return "—"
    if rebuild.status == rebuild.Status.RUNNING:
        return f"running: {rebuild.percent}% ({rebuild.events_done:,} of {rebuild.events_total:,} events)"
    if rebuild.status == rebuild.Status.DONE:
        return f"rebuilt from {rebuild.events_done:,} events"
    return rebuild.get_status_display()


# --- Products ------------------------------------------------------------------------------------


class ProductForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = [
            "organization",
            "name",
            "type",
            "billable_metric",
            "presentation_group_key",
            "conversion_factor",
            "conversion_operation",
            "conversion_name",
            "composite_products",
            "external_id",
            "stripe_product_id",
        ]

    def clean(self):
        cleaned = super().clean()
        referenced = list(cleaned.get("composite_products") or [])
        probe = Product(type=cleaned.get("type"), organization=cleaned.get("organization"))
        for field, message in composite_references_errors(probe, referenced).items():
            self.add_error(field, message)
        if self.instance.pk and self.instance in referenced:
            self.add_error("composite_products", "A product cannot reference itself.")
        return cleaned


@admin.register(Product)
class ProductAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    form = ProductForm
    list_display = ["name", "type", "billable_metric", "presentation_keys", "conversion", "organization"]
    list_filter = ["type", "organization", "conversion_operation"]
    search_fields = ["name", "external_id", "stripe_product_id", "id", "billable_metric__name"]
    autocomplete_fields = ["billable_metric"]
    filter_horizontal = ["composite_products"]
    readonly_fields = ["id", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["id", "organization", "name", "type", "billable_metric", "presentation_group_key"]}),
        ("Quantity conversion", {"fields": ["conversion_factor", "conversion_operation", "conversion_name"]}),
        ("Composite", {"fields": ["composite_products"], "classes": ["collapse"]}),
        ("External ids", {"fields": ["external_id", "stripe_product_id"], "classes": ["collapse"]}),
        ("History", {"fields": ["created_at", "updated_at"]}),
    ]

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        if change:  # its metric, grouping or conversion may have changed: the drafts follow
            invoicing.drafts_refresh_later(organization_id=form.instance.organization_id)

    @admin.display(description="presentation group")
    def presentation_keys(self, product: Product) -> str:
        return ", ".join(product.presentation_group_key) or "—"

    @admin.display(description="quantity conversion")
    def conversion(self, product: Product) -> str:
        if product.conversion_factor is None:
            return "—"
        sign = "÷" if product.conversion_operation == Product.Operation.DIVIDE else "x"
        return f"{sign} {product.conversion_factor.normalize():f}"


# --- Rate cards and rates --------------------------------------------------------------------------


class RateInlineFormSet(OverlapCheckedFormSet):
    """Rates on the rate card page. Tiers are edited on a rate's own page, so a TIERED row here must be
    a rate that already has its tiers: a TIERED rate without tiers cannot price anything."""

    def clean(self):
        super().clean()
        for form in self.forms:
            data = form.cleaned_data
            if not data or data.get("DELETE") or data.get("rate_type") != Rate.RateType.TIERED:
                continue
            rate = form.instance
            if rate.pk is None or not rate.tiers.exists():
                form.add_error(
                    "rate_type",
                    "A TIERED rate needs its tiers: add it under Rates (with its tiers), or keep it FLAT here.",
                )


class RateInline(admin.TabularInline):
    model = Rate
    formset = RateInlineFormSet
    extra = 0
    fields = [
        "product",
        "entitled",
        "rate_type",
        "price",
        "markup",
        "quantity",
        "starting_at",
        "ending_before",
        "tiers_text",
    ]
    readonly_fields = ["tiers_text"]
    autocomplete_fields = ["product"]
    show_change_link = True

    @admin.display(description="tiers")
    def tiers_text(self, rate: Rate) -> str:
        if rate.rate_type == Rate.RateType.COST_PLUS and rate.pk and not rate.tiers.exists():
            return "—"
        if rate.rate_type not in (Rate.RateType.TIERED, Rate.RateType.COST_PLUS) or not rate.pk:
            return "—"
        tiers = list(rate.tiers.all())
        return (
            "; ".join(
                f"{quantity_text(tier.size)} at {format_cents_price(tier.price)}"
                if tier.size is not None
                else f"rest at {format_cents_price(tier.price)}"
                for tier in tiers
            )
            or "no tiers yet: edit the rate"
        )


@admin.register(RateCard)
class RateCardAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    list_display = ["name", "organization", "rate_count", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name", "description", "id"]
    readonly_fields = ["id", "created_at", "updated_at"]
    inlines = [RateInline]

    @admin.display(description="rates")
    def rate_count(self, rate_card: RateCard) -> int:
        return rate_card.rates.count()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        invoicing.drafts_refresh_later(rate_card_id=form.instance.pk)


class RateTierFormSet(forms.BaseInlineFormSet):
    def clean(self):
        super().clean()
        tiers = [
            RateTier(
                position=form.cleaned_data["position"],
                size=form.cleaned_data.get("size"),
                price=form.cleaned_data.get("price"),
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE") and "position" in form.cleaned_data
        ]
        positions = [tier.position for tier in tiers]
        if len(set(positions)) != len(positions):
            raise ValidationError("Two tiers have the same position.")
        errors = services.tier_errors(self.instance.rate_type, tiers)
        if errors:
            raise ValidationError(errors["tiers"])
        if tiers and self.instance.minimum_cents is not None:
            raise ValidationError("A COST_PLUS rate with tiers has no minimum (tiers price every cent).")


class RateTierInline(admin.TabularInline):
    model = RateTier
    formset = RateTierFormSet
    extra = 0
    fields = ["position", "size", "price"]


@admin.register(Rate)
class RateAdmin(admin.ModelAdmin):
    list_display = ["product", "rate_card", "rate_type", "price_text", "entitled", "starting_at", "ending_before"]
    list_filter = ["rate_type", "entitled", "rate_card__organization", "rate_card"]
    search_fields = ["product__name", "rate_card__name", "id"]
    autocomplete_fields = ["product", "rate_card"]
    date_hierarchy = "starting_at"
    inlines = [RateTierInline]
    list_select_related = ["product", "product__billable_metric", "rate_card"]

    @admin.display(description="price", ordering="price")
    def price_text(self, rate: Rate) -> str:
        """'$0.20 per request' (stored in cents); a composite rate's price is a fraction: '10% of usage'."""
        if rate.rate_type != Rate.RateType.FLAT or rate.price is None:
            return rate.get_rate_type_display()
        if rate.product.type == Product.Type.COMPOSITE:
            return f"{quantity_text(rate.price * 100)}% of usage"
        return f"{format_cents_price(rate.price)} per {rate.product.unit_name}"

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        invoicing.drafts_refresh_later(rate_card_id=form.instance.rate_card_id)


# --- Contracts -----------------------------------------------------------------------------------


class ContractOverrideInline(admin.TabularInline):
    model = ContractOverride
    formset = OverlapCheckedFormSet
    extra = 0
    fields = ["product", "starting_at", "ending_before", "entitled", "type", "price", "multiplier"]
    autocomplete_fields = ["product"]


@admin.register(Contract)
class ContractAdmin(DefaultOrganizationMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "customer",
        "rate_card",
        "starting_at",
        "ending_before",
        "usage_statement_day",
        "organization",
    ]
    list_filter = ["usage_statement_day", "organization", "rate_card"]
    search_fields = ["name", "customer__external_id", "customer__name", "rate_card__name", "id"]
    autocomplete_fields = ["customer", "rate_card"]
    readonly_fields = ["id", "created_at", "updated_at"]
    date_hierarchy = "starting_at"
    inlines = [ContractOverrideInline]
    list_select_related = ["customer", "rate_card"]

    def save_model(self, request, obj, form, change):
        if not change:  # as services.contract_create: open ingests of the organization commit first
            lock_organization_exclusive(obj.organization_id)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        contract = form.instance  # dates may have changed: drafts follow the contract's periods
        invoicing.contract_drafts_ensure(contract=contract)
        customer_id = contract.customer_id
        transaction.on_commit(lambda: schedule_draft_recompute(customer_id))


# --- Invoices ------------------------------------------------------------------------------------


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = [
        "product_name",
        "presentation_group",
        "period_start",
        "period_end",
        "quantity_display",
        "unit_price_display",
        "rate_type",
        "tier_index",
        "model",
        "cost_microdollars",
        "markup",
        "tokens",
        "allowance_cents",
        "amount",
    ]
    readonly_fields = fields

    @admin.display(description="quantity")
    def quantity_display(self, line: InvoiceLine) -> str:
        text = dollars(int(line.quantity)) if line.rate_type == "COMPOSITE" else quantity_text(line.quantity)
        return f"{text} {line.quantity_unit}".strip()

    @admin.display(description="unit price")
    def unit_price_display(self, line: InvoiceLine) -> str:
        return unit_price_text(line)

    @admin.display(description="amount")
    def amount(self, line: InvoiceLine) -> str:
        return dollars(line.amount_cents)

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Invoices are computed, not typed in: lines are read-only; actions move them through their lifecycle."""

    list_display = [
        "__str__",
        "customer",
        "status",
        "kind",
        "period_start",
        "period_end",
        "total",
        "amount_due",
        "computed_at",
    ]
    list_filter = ["status", "organization", "period_start"]
    search_fields = ["number", "customer__external_id", "customer__name", "id"]
    date_hierarchy = "period_start"
    list_select_related = ["customer"]
    inlines = [InvoiceLineInline, ExternalInvoiceInline]
    readonly_fields = [
        "id",
        "number",
        "organization",
        "customer",
        "contract",
        "status",
        "period_start",
        "period_end",
        "currency",
        "total",
        "credits_applied",
        "amount_due",
        "computed_at",
        "finalized_at",
        "created_at",
        "updated_at",
    ]
    fields = readonly_fields
    actions = [
        "recompute", "finalize", "mark_paid", "mark_void", "mark_uncollectible", "create_customer_link",
        "push_to_stripe",
    ]

    @admin.display(description="total")
    def total(self, invoice: Invoice) -> str:
        return dollars(invoice.total_cents)

    @admin.display(description="credits applied")
    def credits_applied(self, invoice: Invoice) -> str:
        return dollars(invoice.credits_applied_cents)

    @admin.display(description="amount due")
    def amount_due(self, invoice: Invoice) -> str:
        return dollars(invoice.amount_due_cents)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        invoicing.drafts_refresh()  # drafts ingest left stale (no worker) are exact in the list
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        invoice = self.get_object(request, unquote(object_id))
        if invoice is not None and invoice.is_draft:
            invoicing.drafts_refresh(organization_id=invoice.organization_id, customer_ids=[invoice.customer_id])
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.action(description="Recompute selected drafts from usage now")
    def recompute(self, request, queryset):
        drafts = list(queryset.filter(status=Invoice.Status.DRAFT))
        done = 0
        for invoice in drafts:
            try:
                invoicing.invoice_recompute(invoice=invoice)
                done += 1
            except ValidationError as error:
                self.message_user(request, f"{invoice}: {'; '.join(error.messages)}", level=messages.ERROR)
        self.message_user(request, f"Recomputed {done} draft(s); other invoices are closed and unchanged.")

    @admin.action(description="Finalize selected drafts (periods that have ended)")
    def finalize(self, request, queryset):
        done = 0
        for invoice in queryset.filter(status=Invoice.Status.DRAFT):
            try:
                invoicing.invoice_finalize(invoice=invoice)
                done += 1
            except ValidationError as error:
                self.message_user(request, f"{invoice}: {'; '.join(error.messages)}", level=messages.ERROR)
        self.message_user(request, f"Finalized {done} invoice(s).")

    @admin.action(description="Push selected invoices to Stripe (again)")
    def push_to_stripe(self, request, queryset):
        retry_pushes(self, request, queryset)

    def _set_status(self, request, queryset, status: str):
        changed = 0
        for invoice in queryset:
            try:
                invoicing.invoice_set_status(invoice=invoice, status=status)
                changed += 1
            except ValidationError as error:
                self.message_user(request, f"{invoice}: {'; '.join(error.messages)}", level=messages.ERROR)
        self.message_user(request, f"Marked {changed} invoice(s) {status}.")

    @admin.action(description="Mark selected invoices paid")
    def mark_paid(self, request, queryset):
        self._set_status(request, queryset, Invoice.Status.PAID)

    @admin.action(description="Void selected invoices")
    def mark_void(self, request, queryset):
        self._set_status(request, queryset, Invoice.Status.VOID)

    @admin.action(description="Mark selected invoices uncollectible")
    def mark_uncollectible(self, request, queryset):
        self._set_status(request, queryset, Invoice.Status.UNCOLLECTIBLE)

    @admin.action(description="Create customer links (signed, expiring) for the selected invoices")
    def create_customer_link(self, request, queryset):
        expires_at = timezone.now() + timedelta(days=settings.BILLING_INVOICE_LINK_DAYS)
        for invoice in queryset:
            token = services.invoice_link_token(invoice=invoice, expires_at=expires_at)
            url = request.build_absolute_uri(reverse("billing:invoice-page", args=[token]))
            self.message_user(
                request,
                format_html(
                    'Link for {} (valid until {} UTC): <a href="{}">{}</a>',
                    invoice,
                    f"{expires_at:%Y-%m-%d %H:%M}",
                    url,
                    url,
                ),
            )
