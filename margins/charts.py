"""Charts as inline SVG, drawn on the server by pure functions (no database, no JavaScript).

Why on the server: the numbers are exact integers of microdollars, already computed by the
selectors; drawing them here keeps one formatting path (`costcalc.money`), needs no charting
library, build step or CDN, renders before any script runs, prints, and is unit-testable as text.

Every chart is an ``<svg>`` with ``data-points`` = the number of data points drawn, each point a
``<rect>``/``<circle>`` of class ``pt`` with a ``<title>`` tooltip, and an ``aria-label``.
Coordinates use a fixed ``viewBox``; the SVG scales to its container's width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from django.utils.html import escape

from costcalc.money import MICRODOLLARS_PER_DOLLAR, format_money

SPARK_MIN_SPAN = Decimal(10)


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]  # microdollars, one per category
    css_class: str  # "revenue" | "cost" | ...


@dataclass(frozen=True)
class SparkValue:
    label: str
    value: Decimal | None  # a margin percent; None = undefined (no revenue)
    projected: bool = False


def _num(value: Fraction | int | float) -> str:
    """A coordinate with at most one decimal (SVG text stays short and stable)."""
    return f"{float(value):.1f}".rstrip("0").rstrip(".")


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten microdollar amount ≥ ``value`` (at least one cent), so axis
    ticks at quarters of it are round amounts."""
    if value <= 0:
        return 10_000
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, Fraction(5, 2), 5, 10):
        candidate = int(step * magnitude)
        if candidate >= value:
            return max(candidate, 10_000)
    return max(magnitude * 10, 10_000)


def _axis_label(microdollars: int) -> str:
    """An axis tick: dollars and cents below $1,000, thousands of dollars from there ($2.5k, $1,250k).
    Ticks are quarters of a nice ceiling, so three decimals of a thousand are exact."""
    if microdollars >= 1_000 * MICRODOLLARS_PER_DOLLAR:
        thousands = Decimal(microdollars) / (1_000 * MICRODOLLARS_PER_DOLLAR)
        return f"${thousands:,.3f}".rstrip("0").rstrip(".") + "k"
    return format_money(microdollars)


def columns(
    *,
    categories: Sequence[str],
    series: Sequence[Series],
    title: str,
    projected: Sequence[bool] | None = None,
    width: int = 960,
    height: int = 260,
    max_labels: int = 12,
) -> str:
    """Grouped columns: one group per category, one column per series (e.g. revenue and cost per month).

    ``projected[i]`` draws category i hatched (a projection, not a measurement). Categories'
    labels are thinned to at most ``max_labels`` so a month of days stays legible.
    """
    count = len(categories)
    for one in series:
        if len(one.values) != count:
            raise ValueError(f"series {one.name!r} has {len(one.values)} values for {count} categories")
    projected = list(projected or [False] * count)
    left, right, top, bottom = 84, 8, 12, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_ceiling(max((v for one in series for v in one.values), default=0))
    points = count * len(series)
    parts = [
        f'<svg class="chart columns" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}" data-points="{points}" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
    ]
    for quarter in range(5):
        amount = top_value * quarter // 4
        y = top + plot_h - Fraction(plot_h * quarter, 4)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_num(y)}" y2="{_num(y)}"/>')
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{_num(y + 4)}" text-anchor="end">'
            f"{escape(_axis_label(amount))}</text>"
        )
    if count:
        slot = Fraction(plot_w, count)
        bar_w = slot * Fraction(4, 5) / max(1, len(series))
        every = max(1, -(-count // max_labels))
        for index, label in enumerate(categories):
            x0 = left + slot * index + slot / 10
            for position, one in enumerate(series):
                value = one.values[index]
                bar_h = Fraction(plot_h * max(value, 0), top_value)
                x = x0 + bar_w * position
                css = f"pt bar {one.css_class}" + (" projected" if projected[index] else "")
                note = " (projected)" if projected[index] else ""
                parts.append(
                    f'<rect class="{css}" x="{_num(x)}" y="{_num(top + plot_h - bar_h)}" width="{_num(bar_w)}" '
                    f'height="{_num(bar_h)}" data-value="{value}"><title>{escape(label)} · {escape(one.name)}'
                    f"{note}: {escape(format_money(value))}</title></rect>"
                )
            if index % every == 0:
                parts.append(
                    f'<text class="axis" x="{_num(left + slot * index + slot / 2)}" y="{height - 8}" '
                    f'text-anchor="middle">{escape(label)}</text>'
                )
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: Sequence[SparkValue], *, width: int = 120, height: int = 32) -> str:
    """Margin percent over months: a line through the measured months, a dashed segment to the
    projected month (hollow dot). Undefined months (no revenue) are a gap, drawn as a grey tick
    on the base line so the point count stays visible."""
    pad = 4
    defined = [v.value for v in values if v.value is not None]
    # The line's own range, at least 10 points tall, so a drift of a few points shows.
    low, high = (min(defined), max(defined)) if defined else (Decimal(0), Decimal(100))
    if high - low < SPARK_MIN_SPAN:
        middle = (high + low) / 2
        low, high = middle - SPARK_MIN_SPAN / 2, middle + SPARK_MIN_SPAN / 2
    span = high - low
    step = Fraction(width - 2 * pad, max(1, len(values) - 1))

    def y_of(value: Decimal) -> Fraction:
        return pad + (Fraction(high - value) / Fraction(span)) * (height - 2 * pad)

    coords = []
    for index, point in enumerate(values):
        x = pad + step * index
        coords.append((x, None if point.value is None else y_of(point.value)))
    label = ", ".join(
        f"{v.label}{' (projected)' if v.projected else ''}: {'—' if v.value is None else f'{v.value}%'}"
        for v in values
    )
    parts = [
        f'<svg class="chart sparkline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="Margin trend: {escape(label)}" data-points="{len(values)}">'
    ]
    base = height - pad  # undefined months sit on the base line
    if low <= 0 <= high:
        zero = y_of(Decimal(0))
        parts.append(f'<line class="zero" x1="{pad}" x2="{width - pad}" y1="{_num(zero)}" y2="{_num(zero)}"/>')
    measured = [(x, y) for (x, y), v in zip(coords, values, strict=True) if not v.projected and y is not None]
    if len(measured) > 1:
        path = " ".join(f"{_num(x)},{_num(y)}" for x, y in measured)
        parts.append(f'<polyline class="line" points="{path}"/>')
    last_measured = next(
        ((x, y) for (x, y), v in reversed(list(zip(coords, values, strict=True))) if not v.projected and y is not None),
        None,
    )
    for (x, y), point in zip(coords, values, strict=True):
        if point.projected and y is not None and last_measured is not None:
            parts.append(
                f'<line class="projection" x1="{_num(last_measured[0])}" y1="{_num(last_measured[1])}" '
                f'x2="{_num(x)}" y2="{_num(y)}"/>'
            )
    for (x, y), point in zip(coords, values, strict=True):
        css = "pt" + (" projected" if point.projected else "") + (" undefined" if y is None else "")
        text = f"{point.label}{' (projected)' if point.projected else ''}: " + (
            "no revenue" if point.value is None else f"{point.value}%"
        )
        cy = base if y is None else y
        parts.append(
            f'<circle class="{css}" cx="{_num(x)}" cy="{_num(cy)}" r="{2 if y is None else 2.5}">'
            f"<title>{escape(text)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def bars(*, items: Sequence[tuple[str, int]], title: str, css_class: str = "cost", width: int = 640) -> str:
    """Horizontal bars, one per item (label, microdollars), largest scale first as given."""
    row_h, label_w, value_w = 22, 220, 90
    height = max(1, len(items)) * row_h + 4
    top_value = max((value for _, value in items), default=0) or 1
    plot_w = width - label_w - value_w
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'data-points="{len(items)}" preserveAspectRatio="xMinYMin meet">',
        f"<title>{escape(title)}</title>",
    ]
    for index, (label, value) in enumerate(items):
        y = 2 + index * row_h
        bar_w = Fraction(plot_w * max(value, 0), top_value)
        short = label if len(label) <= 24 else label[:23] + "…"
        parts.append(f'<text class="axis" x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(short)}</text>')
        parts.append(
            f'<rect class="pt bar {css_class}" x="{label_w}" y="{y + 3}" width="{_num(bar_w)}" height="{row_h - 6}" '
            f'data-value="{value}"><title>{escape(label)}: {escape(format_money(value))}</title></rect>'
        )
        parts.append(
            f'<text class="value" x="{_num(label_w + bar_w + 6)}" y="{y + 15}">{escape(format_money(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
