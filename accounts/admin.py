from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from .deletion import BulkOwnerAdminMixin, organization_delete
from .models import ApiKey, ApiKeyScope, Membership, Organization
from .services import api_key_create, api_key_revoke


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ["name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "scopes", "created_at", "last_used_at"]
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are created from the API key page, which shows the secret once


@admin.register(Organization)
class OrganizationAdmin(BulkOwnerAdminMixin, admin.ModelAdmin):
    """Deleting an organization deletes its ledger in slices first (accounts.deletion)."""

    list_display = ["name", "plan", "created_at"]
    list_filter = ["plan"]
    search_fields = ["name", "id"]
    inlines = [MembershipInline, ApiKeyInline]

    def delete_object(self, obj) -> None:
        organization_delete(organization=obj)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    search_fields = ["user__username", "user__email", "organization__name"]
    autocomplete_fields = ["user", "organization"]


def _scopes_field() -> forms.MultipleChoiceField:
    return forms.MultipleChoiceField(
        choices=ApiKeyScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKeyScope.ADMIN],
        help_text="ingest: ingest and the SDK blocklist; read: every GET; billing:write: every other write; "
        "admin: everything, including API keys and the Stripe account secret.",
    )


class ApiKeyAddForm(forms.ModelForm):
    scopes = _scopes_field()

    class Meta:
        model = ApiKey
        fields = ["organization", "name", "scopes"]


class ApiKeyChangeForm(forms.ModelForm):
    scopes = _scopes_field()

    class Meta:
        model = ApiKey
        fields = ["organization", "name", "scopes", "revoked_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "name", "organization", "scopes", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "organization__name"]
    readonly_fields = ["prefix", "created_by", "created_at", "last_used_at"]
    actions = ["revoke_selected"]

    def get_form(self, request, obj=None, **kwargs):
        kwargs["form"] = ApiKeyAddForm if obj is None else ApiKeyChangeForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "name", "scopes"]
        return [
            "organization", "name", "scopes", "prefix", "created_by", "created_at", "last_used_at", "revoked_at",
        ]

    def save_model(self, request, obj, form, change):
        if change:
            obj.scopes = [scope for scope in ApiKeyScope.values if scope in form.cleaned_data["scopes"]]
            super().save_model(request, obj, form, change)
            return
        api_key, raw_key = api_key_create(
            organization=form.cleaned_data["organization"],
            name=form.cleaned_data["name"],
            created_by=request.user,
            scopes=form.cleaned_data["scopes"],
        )
        obj.pk = api_key.pk
        obj.refresh_from_db()
        messages.warning(
            request, f"New API key for {api_key.organization}: {raw_key} — copy it now, it will not be shown again."
        )

    @admin.action(description="Revoke selected API keys")
    def revoke_selected(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key)
            count += 1
        self.message_user(request, f"Revoked {count} key(s) at {timezone.now():%Y-%m-%d %H:%M} UTC.")
