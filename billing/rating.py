"""Pure rating: Metronome-style metering and pricing over plain data (no Django, no database).

Everything here is deterministic arithmetic on `Decimal`; the services around it load rows, call
these functions and store the result. The pieces, in the order an invoice is built:

1. Metering. `measure()` decides whether one event matches a billable metric (`event_type_filter`
   in / not in, `property_filters` exists / in_values / not_in_values) and what it contributes
   (the `aggregation_key` value, its group values). `Partial` is the mergeable per-bucket state
   that billing keeps per customer, metric, group and hour (sum, count, max, latest value); UNIQUE
   keeps the distinct values themselves. `final_quantity()` turns the merged state into the metric
   value (SUM, COUNT, MAX, UNIQUE distinct count, LATEST).
2. Effective dating. `segment_plan()` cuts an invoice window at every rate, override and contract
   boundary and resolves, per segment, the rate card rate in force (at most one per product at a
   time) with its contract override (price overwrite or multiplier, entitlement). Usage is priced
   with the rate in force at the hour it was billed.
3. Pricing. `convert_quantity()` applies the product's quantity conversion (multiply or divide by
   a Decimal factor); `price_quantity()` prices a quantity with a FLAT price or graduated TIERED
   prices (one charge per tier used). Prices are cents as Decimal.
4. Lines. `rate_invoice()` produces the invoice lines: usage lines per product, presentation
   group value and segment; composite lines (a percentage of other usage products' line amounts);
   fixed (one-time, in the contract's first period) and subscription (every period) charges.

Rounding happens exactly once per line: the exact Decimal amount of the line becomes integer cents
with ROUND_HALF_UP (`round_to_cents`). The invoice total is the exact sum of the rounded lines.
Worked example (seed 001): 1,000,000 tokens of `langModel4`, price 50 cents, quantity conversion
DIVIDE by 1,000,000 → quantity 1 → a 50-cent ($0.50) line.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation, localcontext
from enum import StrEnum

from costcalc.money import MICRODOLLARS_PER_CENT, ROUNDING

# Enough digits that quantity conversions and tier arithmetic are exact for any realistic input;
# the only rounding that changes money is the per-line rounding to the cent.
PRECISION = 60
ZERO = Decimal(0)
ONE = Decimal(1)

Group = tuple[tuple[str, str | None], ...]  # ((key, value-as-text or None), ...) in key order


class AggregationType(StrEnum):
    SUM = "SUM"
    COUNT = "COUNT"
    MAX = "MAX"
    UNIQUE = "UNIQUE"
    LATEST = "LATEST"


class RateType(StrEnum):
    FLAT = "FLAT"
    TIERED = "TIERED"
    COST_PLUS = "COST_PLUS"


class ProductType(StrEnum):
    USAGE = "usage"
    FIXED = "fixed"
    COMPOSITE = "composite"
    SUBSCRIPTION = "subscription"


class ConversionOperation(StrEnum):
    MULTIPLY = "MULTIPLY"
    DIVIDE = "DIVIDE"


# --- Property values -------------------------------------------------------------------------


def property_text(value: object) -> str | None:
    """The text a property value is compared and grouped by (None: missing or JSON null).

    Strings are themselves; booleans are "true"/"false"; numbers are their canonical decimal text
    (1, 1.0 and "1" are not all alike: the numbers 1 and 1.0 both give "1"); objects and arrays
    are compact JSON with sorted keys.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        number = numeric_value(value)
        return None if number is None else _canonical(number)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


# Metric values are kept to 18 decimal places and must be below 10^40 in magnitude; anything else
# is not a usable number (the event then does not match SUM, MAX and LATEST metrics).
VALUE_PLACES = Decimal("1e-18")
VALUE_LIMIT = Decimal("1e40")


def numeric_value(value: object) -> Decimal | None:
    """A property value as a Decimal (18 decimal places), or None when it is not a usable number.

    JSON numbers parsed as floats go through their shortest repr ("0.1", not the binary
    expansion), which is the number the client wrote. Numeric strings are accepted too.
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            number = Decimal(repr(value)) if math.isfinite(value) else None
        elif isinstance(value, Decimal):
            number = value
        elif isinstance(value, str):
            number = Decimal(value.strip())
        else:
            return None
    except InvalidOperation:
        return None
    if number is None or not number.is_finite() or abs(number) >= VALUE_LIMIT:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return (
            number.quantize(VALUE_PLACES, rounding=ROUNDING).normalize(ctx)
            if number.as_tuple().exponent < -18
            else number
        )


def _canonical(number: Decimal) -> str:
    if number == 0:
        return "0"
    text = format(number.normalize(), "f")
    return text


# --- Metering --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PropertyFilter:
    """Metronome `property_filters` entry. All given conditions must hold."""

    name: str
    exists: bool | None = None
    in_values: frozenset[str] | None = None
    not_in_values: frozenset[str] | None = None

    def matches(self, properties: Mapping[str, object]) -> bool:
        text = property_text(properties.get(self.name))
        present = text is not None
        if self.exists is not None and present != self.exists:
            return False
        if self.in_values is not None and (not present or text not in self.in_values):
            return False
        return not (self.not_in_values is not None and present and text in self.not_in_values)


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    id: object
    aggregation_type: AggregationType
    aggregation_key: str | None = None
    event_types_in: frozenset[str] | None = None  # None: every event type
    event_types_not_in: frozenset[str] = frozenset()
    property_filters: tuple[PropertyFilter, ...] = ()
    group_keys: tuple[str, ...] = ()
    per_call: bool = False  # measured once per model call (it names a model-call field: billing.meterable)


@dataclass(frozen=True, slots=True)
class Measurement:
    """What one event contributes to one metric."""

    group: Group
    value: Decimal  # the aggregation_key value (SUM, MAX, LATEST); 1 for COUNT and UNIQUE
    distinct: str | None = None  # UNIQUE: the value counted once


def measure(metric: MetricDefinition, *, event_type: str, properties: Mapping[str, object]) -> Measurement | None:
    """The event's contribution to ``metric``, or None when the metric does not match it.

    SUM, MAX and LATEST need a numeric aggregation_key value and UNIQUE needs the key present;
    an event without it does not match (as if `exists: true` were implied). COUNT counts events.
    """
    if metric.event_types_in is not None and event_type not in metric.event_types_in:
        return None
    if event_type in metric.event_types_not_in:
        return None
    if not all(flt.matches(properties) for flt in metric.property_filters):
        return None
    group = tuple((key, property_text(properties.get(key))) for key in metric.group_keys)
    kind = metric.aggregation_type
    if kind is AggregationType.COUNT:
        return Measurement(group=group, value=ONE)
    raw = properties.get(metric.aggregation_key) if metric.aggregation_key else None
    if kind is AggregationType.UNIQUE:
        distinct = property_text(raw)
        return None if distinct is None else Measurement(group=group, value=ONE, distinct=distinct)
    number = numeric_value(raw)
    return None if number is None else Measurement(group=group, value=number)


@dataclass(frozen=True, slots=True)
class Partial:
    """Mergeable aggregation state of one bucket (an hour, a segment, ...)."""

    total: Decimal = ZERO
    count: int = 0
    maximum: Decimal | None = None
    latest_value: Decimal | None = None
    latest_at: datetime | None = None
    latest_seq: int = 0  # tie-break between events at the same instant: the later stored one wins
    tokens: int = 0  # input + output tokens of the model calls measured (per-call metrics)

    @classmethod
    def of(cls, value: Decimal, *, at: datetime, seq: int, tokens: int = 0) -> Partial:
        return cls(
            total=value, count=1, maximum=value, latest_value=value, latest_at=at, latest_seq=seq, tokens=tokens
        )

    def merge(self, other: Partial) -> Partial:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        maximum = max(x for x in (self.maximum, other.maximum) if x is not None)
        mine, theirs = (self.latest_at, self.latest_seq), (other.latest_at, other.latest_seq)
        latest = self if mine >= theirs else other
        with localcontext() as ctx:
            ctx.prec = PRECISION
            total = self.total + other.total
        return Partial(
            total=total,
            count=self.count + other.count,
            maximum=maximum,
            latest_value=latest.latest_value,
            latest_at=latest.latest_at,
            latest_seq=latest.latest_seq,
            tokens=self.tokens + other.tokens,
        )


def final_quantity(aggregation_type: AggregationType, partial: Partial, distinct_count: int = 0) -> Decimal:
    """The metric value of a merged bucket. Empty buckets are 0 whatever the aggregation."""
    if aggregation_type is AggregationType.UNIQUE:
        return Decimal(distinct_count)
    if partial.count == 0:
        return ZERO
    if aggregation_type is AggregationType.SUM:
        return partial.total
    if aggregation_type is AggregationType.COUNT:
        return Decimal(partial.count)
    if aggregation_type is AggregationType.MAX:
        return partial.maximum if partial.maximum is not None else ZERO
    return partial.latest_value if partial.latest_value is not None else ZERO


def regroup(group: Group, keys: Sequence[str]) -> Group:
    """Project a metric group onto a product's presentation group key (a subset of its keys)."""
    wanted = dict(group)
    return tuple((key, wanted.get(key)) for key in keys)


# --- Quantities and prices -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantityConversion:
    factor: Decimal
    operation: ConversionOperation

    def __post_init__(self):
        if not self.factor.is_finite() or self.factor <= 0:
            raise ValueError("conversion factor must be a positive number")


def convert_quantity(quantity: Decimal, conversion: QuantityConversion | None) -> Decimal:
    """The invoiced quantity: usage multiplied or divided by the conversion factor (exact to 60 digits)."""
    if conversion is None:
        return quantity
    with localcontext() as ctx:
        ctx.prec = PRECISION
        if conversion.operation is ConversionOperation.MULTIPLY:
            return quantity * conversion.factor
        return quantity / conversion.factor


@dataclass(frozen=True, slots=True)
class Tier:
    """A graduated tier: ``size`` units (None: unbounded, last tier only) at ``price`` cents each."""

    price: Decimal
    size: Decimal | None = None


@dataclass(frozen=True, slots=True)
class CostPlus:
    """A COST_PLUS price: the priced cost of the model calls x (1 + markup).

    The product's metric sums `cost_microdollars` (as priced at ingest); a line's exact amount is
    cost (cents) x (1 + the line model's markup) x ``scale`` (a contract MULTIPLIER override).
    ``model_markups``: (catalog slug, markup) pairs that replace ``markup`` for that model's lines.
    The period's allowance (``included_cents`` of marked-up amount, or ``included_tokens`` of
    input + output tokens) is drawn down first, line by line in presentation order. What is left
    is charged through ``tiers`` when given (graduated, sizes in cents of marked-up amount, each
    tier's price the fraction charged: 1 = in full, 0.8 = 20 % off), else as one amount raised to
    ``minimum_cents`` when the line charges anything at all. Rounded once per line (ROUND_HALF_UP).
    """

    markup: Decimal
    model_markups: tuple[tuple[str, Decimal], ...] = ()
    minimum_cents: Decimal | None = None
    included_cents: Decimal | None = None
    included_tokens: int | None = None
    tiers: tuple[Tier, ...] = ()
    scale: Decimal = ONE

    def __post_init__(self):
        if self.tiers:
            validate_tiers(self.tiers)

    def markup_for(self, model: str | None) -> Decimal:
        for slug, markup in self.model_markups:
            if slug == model:
                return markup
        return self.markup


@dataclass(frozen=True, slots=True)
class Price:
    rate_type: RateType
    price: Decimal | None = None  # FLAT: cents per unit
    tiers: tuple[Tier, ...] = ()  # TIERED
    cost_plus: CostPlus | None = None  # COST_PLUS

    def __post_init__(self):
        if self.rate_type is RateType.FLAT and self.price is None:
            raise ValueError("a FLAT price needs a price")
        if self.rate_type is RateType.TIERED:
            validate_tiers(self.tiers)
        if self.rate_type is RateType.COST_PLUS and self.cost_plus is None:
            raise ValueError("a COST_PLUS price needs its markup")

    def scaled(self, multiplier: Decimal) -> Price:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            if self.rate_type is RateType.FLAT:
                return replace(self, price=self.price * multiplier)
            if self.rate_type is RateType.COST_PLUS:
                return replace(self, cost_plus=replace(self.cost_plus, scale=self.cost_plus.scale * multiplier))
            return replace(self, tiers=tuple(Tier(price=t.price * multiplier, size=t.size) for t in self.tiers))


def validate_tiers(tiers: Sequence[Tier]) -> None:
    """Tiers are ordered; every tier but the last has a positive size, the last has none."""
    if not tiers:
        raise ValueError("a TIERED price needs at least one tier")
    for index, tier in enumerate(tiers):
        last = index == len(tiers) - 1
        if last and tier.size is not None:
            raise ValueError(f"tier {index + 1} is the last tier and must not have a size (it is unbounded)")
        if not last and (tier.size is None or tier.size <= 0):
            raise ValueError(f"tier {index + 1} needs a positive size; only the last tier is unbounded")


@dataclass(frozen=True, slots=True)
class Charge:
    """A priced quantity: ``quantity`` x ``unit_price`` cents, rounded once to ``amount_cents``."""

    quantity: Decimal
    unit_price: Decimal
    amount_cents: int
    tier_index: int | None = None  # 1-based, TIERED only
    tier_floor: Decimal | None = None  # first unit of the tier (exclusive lower bound)
    tier_ceiling: Decimal | None = None  # last unit of the tier (None: unbounded)

    @property
    def exact_amount(self) -> Decimal:
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return self.quantity * self.unit_price


def round_to_cents(amount: Decimal) -> int:
    """The one rounding of money in billing: an exact cent amount → integer cents, ROUND_HALF_UP."""
    return int(amount.quantize(ONE, rounding=ROUNDING))


def price_quantity(quantity: Decimal, price: Price) -> list[Charge]:
    """Price ``quantity``. FLAT: one charge. TIERED (graduated): one charge per tier the quantity
    reaches, each tier's units at that tier's price. Zero usage gives one zero charge (so an
    entitled product still shows on a draft); a negative quantity (refund events) is priced at
    the first tier."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        if price.rate_type is RateType.FLAT:
            return [
                Charge(quantity=quantity, unit_price=price.price, amount_cents=round_to_cents(quantity * price.price))
            ]
        if quantity <= 0:
            first = price.tiers[0]
            return [
                Charge(
                    quantity=quantity,
                    unit_price=first.price,
                    amount_cents=round_to_cents(quantity * first.price),
                    tier_index=1,
                    tier_floor=ZERO,
                    tier_ceiling=first.size,
                )
            ]
        charges: list[Charge] = []
        floor = ZERO
        remaining = quantity
        for index, tier in enumerate(price.tiers, start=1):
            if remaining <= 0:
                break
            taken = remaining if tier.size is None else min(remaining, tier.size)
            ceiling = None if tier.size is None else floor + tier.size
            charges.append(
                Charge(
                    quantity=taken,
                    unit_price=tier.price,
                    amount_cents=round_to_cents(taken * tier.price),
                    tier_index=index,
                    tier_floor=floor,
                    tier_ceiling=ceiling,
                )
            )
            remaining -= taken
            floor = ceiling if ceiling is not None else floor
        return charges


# --- Effective dating ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateVersion:
    """A rate of a rate card for one product, in force on [starting_at, ending_before)."""

    starting_at: datetime
    ending_before: datetime | None
    entitled: bool
    price: Price
    quantity: Decimal = ONE  # fixed and subscription products: units charged per period
    id: object = None

    def covers(self, at: datetime) -> bool:
        return self.starting_at <= at and (self.ending_before is None or at < self.ending_before)


@dataclass(frozen=True, slots=True)
class Override:
    """A contract's override for one product on [starting_at, ending_before).

    ``entitled`` (when not None) replaces the rate's entitlement; ``overwrite_price`` replaces the
    price with a FLAT price in cents; ``multiplier`` multiplies the rate's price (FLAT or every tier).
    """

    starting_at: datetime
    ending_before: datetime | None
    entitled: bool | None = None
    overwrite_price: Decimal | None = None
    multiplier: Decimal | None = None
    id: object = None

    def covers(self, at: datetime) -> bool:
        return self.starting_at <= at and (self.ending_before is None or at < self.ending_before)


@dataclass(frozen=True, slots=True)
class EffectiveRate:
    entitled: bool
    price: Price
    quantity: Decimal = ONE


@dataclass(frozen=True, slots=True)
class Segment:
    """A slice [start, end) of an invoice window with one effective rate (None: nothing billable)."""

    start: datetime
    end: datetime
    rate: EffectiveRate | None

    @property
    def billable(self) -> bool:
        return self.rate is not None and self.rate.entitled


def effective_rate(rates: Sequence[RateVersion], overrides: Sequence[Override], at: datetime) -> EffectiveRate | None:
    """The rate in force at ``at`` with the contract's override applied (None when no rate covers it)."""
    rate = next((r for r in rates if r.covers(at)), None)
    if rate is None:
        return None
    override = next((o for o in overrides if o.covers(at)), None)
    if override is None:
        return EffectiveRate(entitled=rate.entitled, price=rate.price, quantity=rate.quantity)
    price = rate.price
    if override.overwrite_price is not None:
        price = Price(rate_type=RateType.FLAT, price=override.overwrite_price)
    elif override.multiplier is not None:
        price = price.scaled(override.multiplier)
    entitled = rate.entitled if override.entitled is None else override.entitled
    return EffectiveRate(entitled=entitled, price=price, quantity=rate.quantity)


def segment_plan(
    start: datetime, end: datetime, rates: Sequence[RateVersion], overrides: Sequence[Override] = ()
) -> list[Segment]:
    """Contiguous segments covering [start, end), cut where the effective rate changes."""
    cuts = {start, end}
    for item in (*rates, *overrides):
        for instant in (item.starting_at, item.ending_before):
            if instant is not None and start < instant < end:
                cuts.add(instant)
    bounds = sorted(cuts)
    segments: list[Segment] = []
    for left, right in itertools.pairwise(bounds):
        rate = effective_rate(rates, overrides, left)
        if segments and segments[-1].rate == rate:
            segments[-1] = Segment(segments[-1].start, right, rate)
        else:
            segments.append(Segment(left, right, rate))
    return segments


# --- Invoice lines ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProductDefinition:
    id: object
    name: str
    type: ProductType
    metric: MetricDefinition | None = None
    presentation_group_key: tuple[str, ...] = ()
    quantity_conversion: QuantityConversion | None = None
    composite_product_ids: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class UsageCell:
    """The metric value of one presentation group in one segment (index into the plan)."""

    group: Group
    segment_index: int
    quantity: Decimal
    tokens: int = 0  # input + output tokens of the calls measured (per-call metrics)


@dataclass(frozen=True, slots=True)
class Line:
    product_id: object
    product_type: ProductType
    group: Group
    period_start: datetime
    period_end: datetime
    quantity: Decimal
    unit_price: Decimal
    amount_cents: int
    rate_type: str  # FLAT, TIERED, COST_PLUS or COMPOSITE
    tier_index: int | None = None
    tier_floor: Decimal | None = None
    tier_ceiling: Decimal | None = None
    # COST_PLUS: the calls' priced cost, the markup applied, their tokens and the allowance drawn
    cost_microdollars: int | None = None
    markup: Decimal | None = None
    tokens: int | None = None
    allowance_cents: Decimal | None = None


# usage(product, plan) -> cells: how the caller supplies metered quantities (rollups in the
# database, or `aggregate_events` over raw events in tests).
UsageLookup = Callable[[ProductDefinition, Sequence[Segment]], Iterable[UsageCell]]


@dataclass(frozen=True, slots=True)
class InvoiceWindow:
    start: datetime
    end: datetime
    contract_starting_at: datetime  # fixed products are charged in the window that starts here


@dataclass
class PricingBook:
    """Rates and overrides per product id for one contract."""

    rates: dict[object, list[RateVersion]] = field(default_factory=dict)
    overrides: dict[object, list[Override]] = field(default_factory=dict)

    def plan(self, product_id: object, window: InvoiceWindow) -> list[Segment]:
        return segment_plan(
            window.start, window.end, self.rates.get(product_id, []), self.overrides.get(product_id, [])
        )


def usage_lines(product: ProductDefinition, plan: Sequence[Segment], cells: Iterable[UsageCell]) -> list[Line]:
    """Lines of a usage product: per presentation group and billable segment, one per charge."""
    by_key: dict[tuple[Group, int], UsageCell] = {}
    for cell in cells:
        if 0 <= cell.segment_index < len(plan) and plan[cell.segment_index].billable:
            by_key[(cell.group, cell.segment_index)] = cell
    empty_group: Group = tuple((key, None) for key in product.presentation_group_key)
    used = {index for _, index in by_key}
    for index, segment in enumerate(plan):
        if segment.billable and index not in used:  # an entitled product without usage shows as zero
            by_key[(empty_group, index)] = UsageCell(group=empty_group, segment_index=index, quantity=ZERO)
    lines: list[Line] = []
    allowance = _Allowance()
    # Presentation order (segment, then group), so a period's allowance is drawn down in a fixed order.
    for (group, index), cell in sorted(by_key.items(), key=lambda item: (item[0][1], group_label(item[0][0]))):
        segment = plan[index]
        price = segment.rate.price
        if price.rate_type is RateType.COST_PLUS:
            lines.extend(cost_plus_lines(product, group, segment, cell, price.cost_plus, allowance))
            continue
        quantity = convert_quantity(cell.quantity, product.quantity_conversion)
        lines.extend(_priced_lines(product, group, segment.start, segment.end, quantity, price))
    return lines


@dataclass
class _Allowance:
    """What a period's COST_PLUS allowance has given so far (marked-up cents, tokens)."""

    cents: Decimal = ZERO
    tokens: int = 0


def cost_plus_lines(
    product: ProductDefinition, group: Group, segment: Segment, cell: UsageCell, terms: CostPlus, allowance: _Allowance
) -> list[Line]:
    """The COST_PLUS line(s) of one usage cell (see CostPlus); ``allowance`` carries the period's drawdown."""
    model = dict(group).get("model")
    markup = terms.markup_for(model)
    cost = int(cell.quantity)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        cost_cents = cell.quantity / MICRODOLLARS_PER_CENT
        factor = (ONE + markup) * terms.scale
        marked = cost_cents * factor
        chargeable = marked
        if terms.included_cents is not None and marked > 0:
            taken = min(marked, max(terms.included_cents - allowance.cents, ZERO))
            allowance.cents += taken
            chargeable = marked - taken
        elif terms.included_tokens is not None and cell.tokens > 0 and marked > 0:
            covered = min(cell.tokens, max(terms.included_tokens - allowance.tokens, 0))
            allowance.tokens += covered
            chargeable = marked * (cell.tokens - covered) / cell.tokens
        drawn = marked - chargeable
    common = {
        "product_id": product.id,
        "product_type": product.type,
        "group": group,
        "period_start": segment.start,
        "period_end": segment.end,
        "rate_type": RateType.COST_PLUS.value,
        "cost_microdollars": cost,
        "markup": markup,
        "tokens": cell.tokens,
        "allowance_cents": drawn if drawn else None,
    }
    if terms.tiers:
        return [
            Line(
                quantity=charge.quantity,
                unit_price=charge.unit_price,
                amount_cents=charge.amount_cents,
                tier_index=charge.tier_index,
                tier_floor=charge.tier_floor,
                tier_ceiling=charge.tier_ceiling,
                **common,
            )
            for charge in price_quantity(chargeable, Price(rate_type=RateType.TIERED, tiers=terms.tiers))
        ]
    amount = chargeable
    if terms.minimum_cents is not None and ZERO < chargeable < terms.minimum_cents:
        amount = terms.minimum_cents
    return [Line(quantity=cost_cents, unit_price=factor, amount_cents=round_to_cents(amount), **common)]


def _priced_lines(
    product: ProductDefinition, group: Group, start: datetime, end: datetime, quantity: Decimal, price: Price
) -> list[Line]:
    """One line per charge of ``quantity`` at ``price`` (see price_quantity)."""
    return [
        Line(
            product_id=product.id,
            product_type=product.type,
            group=group,
            period_start=start,
            period_end=end,
            quantity=charge.quantity,
            unit_price=charge.unit_price,
            amount_cents=charge.amount_cents,
            rate_type=price.rate_type.value,
            tier_index=charge.tier_index,
            tier_floor=charge.tier_floor,
            tier_ceiling=charge.tier_ceiling,
        )
        for charge in price_quantity(quantity, price)
    ]


def composite_lines(product: ProductDefinition, plan: Sequence[Segment], lines: Sequence[Line]) -> list[Line]:
    """A composite product charges a percentage of other usage products' line amounts.

    Its rate's FLAT price is the fraction (0.1 = 10 %); the line quantity is the sum in cents of
    the referenced products' (already rounded) line amounts whose period starts in the segment.
    """
    referenced = set(product.composite_product_ids)
    result: list[Line] = []
    for segment in plan:
        if not segment.billable:
            continue
        base = sum(
            line.amount_cents
            for line in lines
            if line.product_id in referenced and segment.start <= line.period_start < segment.end
        )
        fraction = segment.rate.price.price if segment.rate.price.rate_type is RateType.FLAT else ZERO
        with localcontext() as ctx:
            ctx.prec = PRECISION
            amount = round_to_cents(Decimal(base) * fraction)
        result.append(
            Line(
                product_id=product.id,
                product_type=product.type,
                group=(),
                period_start=segment.start,
                period_end=segment.end,
                quantity=Decimal(base),
                unit_price=fraction,
                amount_cents=amount,
                rate_type="COMPOSITE",
            )
        )
    return result


def recurring_lines(product: ProductDefinition, window: InvoiceWindow, book: PricingBook) -> list[Line]:
    """Fixed products: once, in the window that starts at the contract start. Subscriptions: every
    window. Both charge the rate in force at the window's start: quantity x price, not prorated."""
    if product.type is ProductType.FIXED and window.start != window.contract_starting_at:
        return []
    rate = effective_rate(book.rates.get(product.id, []), book.overrides.get(product.id, []), window.start)
    if rate is None or not rate.entitled:
        return []
    return _priced_lines(product, (), window.start, window.end, rate.quantity, rate.price)


def rate_invoice(
    *, window: InvoiceWindow, products: Sequence[ProductDefinition], book: PricingBook, usage: UsageLookup
) -> list[Line]:
    """Every line of one invoice window, in presentation order."""
    lines: list[Line] = []
    for product in products:
        if product.type is ProductType.USAGE and product.metric is not None:
            plan = book.plan(product.id, window)
            if any(segment.billable for segment in plan):
                lines.extend(usage_lines(product, plan, usage(product, plan)))
    for product in products:
        if product.type is ProductType.COMPOSITE:
            lines.extend(composite_lines(product, book.plan(product.id, window), lines))
        elif product.type in {ProductType.FIXED, ProductType.SUBSCRIPTION}:
            lines.extend(recurring_lines(product, window, book))
    order = {product.id: (product.name, str(product.id)) for product in products}
    lines.sort(
        key=lambda line: (group_label(line.group), order[line.product_id], line.period_start, line.tier_index or 0)
    )
    return lines


def invoice_total(lines: Iterable[Line]) -> int:
    """Integer cents: the exact sum of the already rounded lines."""
    return sum(line.amount_cents for line in lines)


def group_label(group: Group) -> str:
    """'user_id: u1, region: eu' (empty for ungrouped lines; a missing value shows as '(none)')."""
    return ", ".join(f"{key}: {value if value is not None else '(none)'}" for key, value in group)


# --- Reference aggregation over raw events (used in tests and backfills) ---------------------


@dataclass(frozen=True, slots=True)
class RawEvent:
    seq: int
    event_type: str
    occurred_at: datetime
    properties: Mapping[str, object]


def segment_index(plan: Sequence[Segment], at: datetime) -> int | None:
    for index, segment in enumerate(plan):
        if segment.start <= at < segment.end:
            return index
    return None


def aggregate_events(
    product: ProductDefinition, plan: Sequence[Segment], events: Iterable[RawEvent]
) -> list[UsageCell]:
    """The reference semantics of metering: usage cells straight from raw events."""
    metric = product.metric
    partials: dict[tuple[Group, int], Partial] = {}
    distinct: dict[tuple[Group, int], set[str]] = {}
    for event in events:
        index = segment_index(plan, event.occurred_at)
        if index is None:
            continue
        measurement = measure(metric, event_type=event.event_type, properties=event.properties)
        if measurement is None:
            continue
        key = (regroup(measurement.group, product.presentation_group_key), index)
        partial = Partial.of(measurement.value, at=event.occurred_at, seq=event.seq)
        partials[key] = partials.get(key, Partial()).merge(partial)
        if measurement.distinct is not None:
            distinct.setdefault(key, set()).add(measurement.distinct)
    return [
        UsageCell(
            group=key[0],
            segment_index=key[1],
            quantity=final_quantity(metric.aggregation_type, partial, len(distinct.get(key, ()))),
        )
        for key, partial in partials.items()
    ]
