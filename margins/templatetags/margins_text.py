"""How the dashboard names a revenue figure's source: `{{ row.revenue_source|source_badge }}`."""

from django import template
from django.utils.html import format_html

from margins import selectors

register = template.Library()

SOURCES = {
    selectors.STRIPE: ("Stripe", "Stripe: paid invoices of the mapped Stripe customer, plus revenue on usage events"),
    selectors.INVOICES: ("Invoices", "TokenLedger invoices of the month (the live draft, or finalized)"),
    selectors.EVENTS: ("Events", "Revenue carried on usage events"),
    selectors.NO_REVENUE: ("No revenue", "No Stripe mapping, invoice or revenue on events"),
}


@register.filter
def source_badge(source: str):
    label, title = SOURCES.get(source, (source, source))
    return format_html('<span class="source" title="{}">{}</span>', title, label)


@register.filter
def source_label(source: str) -> str:
    return SOURCES.get(source, (source, source))[0]
