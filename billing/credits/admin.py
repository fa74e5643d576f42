"""Admin for prepaid credits: an append-only ledger you can read and add to, never edit.

Adding an entry goes through a form that calls the ledger services (a grant, or an adjustment of
either sign that draws from lots like any deduction), so admin writes obey the same rules as the API.
"""

import uuid
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.db.models import Sum
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from billing.credits import arithmetic
from billing.credits.models import (
    AutoTopUpAttempt,
    AutoTopUpConfig,
    CreditDraw,
    CreditEntry,
    SpendingLimit,
    StripePaymentAccount,
    StripeWebhookEvent,
    TopUp,
)
from billing.credits.services import InsufficientCredit, credit_add, credit_adjust, stripe_account_set
from costcalc.admin_display import money_column
from costcalc.money import cents_to_microdollars, format_money
from events.models import Customer


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class CreditEntryAddForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Customer.objects.select_related("organization"))
    kind = forms.ChoiceField(choices=[(CreditEntry.Kind.GRANT, "Grant"), (CreditEntry.Kind.ADJUSTMENT, "Adjustment")])
    amount_usd = forms.DecimalField(
        max_digits=18, decimal_places=6, help_text="USD, up to six decimals; adjustments may be negative."
    )
    expires_at = forms.DateTimeField(required=False, help_text="Optional, credit added only (UTC).")
    description = forms.CharField(max_length=500, required=False)

    def clean(self):
        data = super().clean()
        amount: Decimal | None = data.get("amount_usd")
        if amount is not None:
            if amount == 0:
                self.add_error("amount_usd", "Must not be zero.")
            elif data.get("kind") == CreditEntry.Kind.GRANT and amount < 0:
                self.add_error("amount_usd", "A grant must be positive; use an adjustment.")
            elif data.get("expires_at") and amount < 0:
                self.add_error("expires_at", "Only credit added can expire.")
        return data


class CreditDrawInline(admin.TabularInline):
    model = CreditDraw
    fk_name = "entry"
    amount = money_column("amount_microdollars", "amount")
    fields = ["lot", "amount", "line_key"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CreditEntry)
class CreditEntryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "customer", "kind", "amount_usd", "expires_at", "reference", "created_by"]
    list_filter = ["kind", "organization"]
    search_fields = ["customer__external_id", "customer__name", "reference", "description"]
    list_select_related = ["customer", "created_by"]
    readonly_fields = [
        "id", "organization", "customer", "kind", "amount_microdollars", "expires_at", "reference", "description",
        "created_by", "created_at",
    ]
    inlines = [CreditDrawInline]
    date_hierarchy = "created_at"

    @admin.display(description="amount (USD)")
    def amount_usd(self, entry: CreditEntry) -> str:
        return arithmetic.dollars(entry.amount_microdollars)

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # append-only: corrections are adjustments

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        customer_id = request.GET.get("customer__id__exact")
        if customer_id and hasattr(response, "context_data"):
            total = CreditEntry.objects.filter(customer_id=customer_id).aggregate(total=Sum("amount_microdollars"))
            response.context_data["title"] = f"Credit ledger, balance {arithmetic.dollars(total['total'] or 0)} USD"
        return response

    def add_view(self, request, form_url="", extra_context=None):
        form = CreditEntryAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            amount = arithmetic.dollars_to_microdollars(data["amount_usd"])
            reference = f"admin:{uuid.uuid4()}"
            try:
                if data["kind"] == CreditEntry.Kind.GRANT:
                    entry, _ = credit_add(
                        customer=data["customer"], kind=CreditEntry.Kind.GRANT, amount_microdollars=amount,
                        reference=reference, expires_at=data["expires_at"], description=data["description"],
                        created_by=request.user,
                    )
                else:
                    entry, _ = credit_adjust(
                        customer=data["customer"], amount_microdollars=amount, reference=reference,
                        expires_at=data["expires_at"], description=data["description"], created_by=request.user,
                    )
            except InsufficientCredit as exc:
                form.add_error("amount_usd", str(exc))
            else:
                self.message_user(request, f"Added {entry}.", messages.SUCCESS)
                url = reverse("admin:billing_creditentry_changelist") + f"?customer__id__exact={entry.customer_id}"
                return HttpResponseRedirect(url)
        context = {
            **self.admin_site.each_context(request),
            "title": "Add a credit grant or adjustment",
            "adminform": form,
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/billing/creditentry/add_form.html", context)


@admin.register(TopUp)
class TopUpAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "customer", "payment_intent_id", "amount", "origin", "status", "stripe_status"]

    @admin.display(description="amount", ordering="amount_cents")
    def amount(self, top_up: TopUp) -> str:
        return format_money(cents_to_microdollars(top_up.amount_cents))
    list_filter = ["status", "origin", "organization"]
    search_fields = ["payment_intent_id", "customer__external_id"]


@admin.register(AutoTopUpConfig)
class AutoTopUpConfigAdmin(ReadOnlyAdmin):
    amount = money_column("amount_microdollars", "amount")
    threshold = money_column("threshold_microdollars", "threshold")
    list_display = ["customer", "amount", "threshold", "consecutive_failures", "last_failed_at", "disabled_reason"]
    search_fields = ["customer__external_id"]


@admin.register(AutoTopUpAttempt)
class AutoTopUpAttemptAdmin(ReadOnlyAdmin):
    amount = money_column("amount_microdollars", "amount")
    balance = money_column("balance_microdollars", "balance")
    list_display = ["created_at", "customer", "amount", "balance", "status", "error"]
    list_filter = ["status"]


@admin.register(SpendingLimit)
class SpendingLimitAdmin(ReadOnlyAdmin):
    amount = money_column("amount_microdollars", "limit")
    list_display = ["customer", "amount", "duration", "strategy", "enabled"]
    list_filter = ["duration", "strategy", "enabled"]


@admin.register(StripeWebhookEvent)
class StripeWebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "type", "event_id", "status", "deliveries", "error"]
    list_filter = ["status", "type"]
    search_fields = ["event_id"]


class StripePaymentAccountForm(forms.ModelForm):
    """Secrets are write-only: the fields start empty and a blank one keeps the stored value."""

    secret_key = forms.CharField(
        widget=forms.PasswordInput, required=False,
        help_text="sk_live_… or sk_test_…; stored encrypted. Required for a new account; leave blank to keep the key.",
    )
    webhook_secret = forms.CharField(
        widget=forms.PasswordInput, required=False,
        help_text="Signing secret (whsec_…) of the webhook endpoint you add in this Stripe account, pointing at "
        "/api/stripe/webhooks/billing/<organization id>; stored encrypted. Leave blank to keep it.",
    )
    remove_webhook_secret = forms.BooleanField(
        required=False, help_text="Remove the signing secret (the organization's webhook endpoint then answers 404)."
    )

    class Meta:
        model = StripePaymentAccount
        fields = ["organization"]

    def clean_secret_key(self):
        value = self.cleaned_data["secret_key"]
        if not value and not self.instance.pk:
            raise forms.ValidationError("Required for a new account.")
        if value and not value.startswith("sk_"):
            raise forms.ValidationError("Must be a Stripe secret key (sk_…).")
        return value or None

    def clean_webhook_secret(self):
        value = self.cleaned_data["webhook_secret"]
        if value and not value.startswith("whsec_"):
            raise forms.ValidationError("Must be a Stripe webhook signing secret (whsec_…).")
        return value or None

    def clean(self):
        data = super().clean()
        if data.get("remove_webhook_secret") and data.get("webhook_secret"):
            self.add_error("remove_webhook_secret", "Either give a new signing secret or remove it, not both.")
        return data


@admin.register(StripePaymentAccount)
class StripePaymentAccountAdmin(admin.ModelAdmin):
    form = StripePaymentAccountForm
    list_display = ["organization", "key_hint", "livemode", "webhook_secret_set", "updated_at"]

    def get_readonly_fields(self, request, obj=None):
        return ["organization"] if obj is not None else []

    @admin.display(boolean=True, description="webhook secret set")
    def webhook_secret_set(self, account: StripePaymentAccount) -> bool:
        return account.has_webhook_secret

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        account = stripe_account_set(
            organization=obj.organization,
            secret_key=data["secret_key"],
            webhook_secret="" if data.get("remove_webhook_secret") else data["webhook_secret"],
        )
        obj.pk = account.pk
