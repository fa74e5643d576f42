"""How the admin of every app writes money and quantities, in one place (text from `costcalc.money`).
The column helpers are assigned as ModelAdmin (or inline) attributes: `cost = money_column(...)`.

- `money_column("cost_microdollars", "cost")`: an integer microdollar field as '$0.0045' / '$12.35'.
- `usd_price_column("input_per_mtok", "input", per="M tokens")`: a Decimal USD price, exact: '$2.50 / M tokens'.
- `quantity_column("input_tokens", "input tokens")`: '1,500,000', no trailing zeros.
- `TotalsMixin`: totals of the filtered rows under a change list (`totals = [(field, label, kind)]`).
- `DefaultOrganizationMixin`: a new object's organization defaults to the user's (oldest) membership.
"""

from django.contrib import admin
from django.db.models import Count, Sum

from accounts.models import Membership

from . import money


def money_column(field: str, description: str):
    @admin.display(description=description, ordering=field)
    def column(_admin, obj):
        return money.format_money(getattr(obj, field))

    column.__name__ = f"{field}_text"
    return column


def usd_price_column(field: str, description: str, *, per: str = ""):
    @admin.display(description=description, ordering=field)
    def column(_admin, obj):
        value = getattr(obj, field)
        if value is None:
            return "—"
        return money.format_usd_price(value) + (f" {per}" if per else "")

    column.__name__ = f"{field}_text"
    return column


def quantity_column(field: str, description: str):
    @admin.display(description=description, ordering=field)
    def column(_admin, obj):
        value = getattr(obj, field)
        return "—" if value is None else money.format_quantity(value)

    column.__name__ = f"{field}_text"
    return column


MONEY, QUANTITY = "money", "quantity"


class TotalsMixin:
    """Adds a totals line under the change list: the sums of ``totals`` over every row the current
    search and filters select (all pages), and their count. One aggregate query."""

    totals: list[tuple[str, str, str]] = []  # (field, label, MONEY | QUANTITY)
    change_list_template = "admin/change_list_with_totals.html"

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        change_list = context.get("cl") if context else None
        if change_list is not None:
            sums = change_list.queryset.order_by().aggregate(
                rows=Count("pk"), **{f"sum_{field}": Sum(field) for field, _, _ in self.totals}
            )
            lines = [("rows", money.format_quantity(sums["rows"]))]
            for field, label, kind in self.totals:
                value = sums[f"sum_{field}"] or 0
                lines.append((label, money.format_money(value) if kind == MONEY else money.format_quantity(value)))
            context["totals"] = lines
        return response


class DefaultOrganizationMixin:
    """The organization field of a new object starts at the signed-in user's organization."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "organization" and "initial" not in kwargs:
            membership = (
                Membership.objects.filter(user_id=request.user.pk).order_by("created_at").values("organization_id")
            ).first()
            if membership is not None:
                kwargs["initial"] = membership["organization_id"]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
