"""Template filters over `costcalc.money`, so every page writes money and quantities the same way.

    {% load money %}  {{ row.cost|money }}  {{ tokens|quantity }}  {{ row.margin_percent|percent }}
"""

from decimal import Decimal

from django import template

from costcalc import money as money_text

register = template.Library()


@register.filter
def money(microdollars):
    """Integer microdollars → '$1,234.57' / '$0.0045' (see `costcalc.money.format_money`)."""
    return money_text.format_money(None if microdollars in (None, "") else int(microdollars))


@register.filter
def quantity(value):
    return "—" if value in (None, "") else money_text.format_quantity(value)


@register.filter
def percent(value):
    """A margin percent (Decimal, one place) → '42.5%'; None (no revenue) → '—'."""
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):.1f}%"
