"""Pure rating: metering semantics, effective dating, pricing, rounding. No database."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import rating as r

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
WINDOW = r.InvoiceWindow(start=JAN, end=FEB, contract_starting_at=JAN)


def flat(cents) -> r.Price:
    return r.Price(rate_type=r.RateType.FLAT, price=Decimal(cents))


def rate(price, start=JAN, end=None, entitled=True, quantity=Decimal(1)) -> r.RateVersion:
    return r.RateVersion(starting_at=start, ending_before=end, entitled=entitled, price=price, quantity=quantity)


def metric(kind=r.AggregationType.SUM, key="tokens", **kwargs) -> r.MetricDefinition:
    return r.MetricDefinition(id="m", aggregation_type=kind, aggregation_key=key, **kwargs)


def event(seq, props, at=None, event_type="completion") -> r.RawEvent:
    return r.RawEvent(seq=seq, event_type=event_type, occurred_at=at or JAN + timedelta(hours=seq), properties=props)


def lines_for(product, book, events):
    return r.rate_invoice(
        window=WINDOW,
        products=[product],
        book=book,
        usage=lambda p, plan: r.aggregate_events(p, plan, events),
    )


# --- the seed's worked example ---------------------------------------------------------------


def test_one_million_lang_model4_tokens_at_50_cents_per_million_is_a_50_cent_line():
    tokens = r.MetricDefinition(
        id="m",
        aggregation_type=r.AggregationType.SUM,
        aggregation_key="tokens",
        event_types_in=frozenset({"langModel4"}),
    )
    product = r.ProductDefinition(
        id="p",
        name="Language Model 4 Tokens (millions)",
        type=r.ProductType.USAGE,
        metric=tokens,
        quantity_conversion=r.QuantityConversion(Decimal(1_000_000), r.ConversionOperation.DIVIDE),
    )
    book = r.PricingBook(rates={"p": [rate(flat(50))]})
    events = [
        event(1, {"tokens": 600_000}, event_type="langModel4"),
        event(2, {"tokens": "400000"}, event_type="langModel4"),
        event(3, {"tokens": 5_000_000}, event_type="otherModel"),
    ]

    lines = lines_for(product, book, events)

    assert [(line.quantity, line.unit_price, line.amount_cents) for line in lines] == [(Decimal(1), Decimal(50), 50)]
    assert r.invoice_total(lines) == 50


# --- metering --------------------------------------------------------------------------------


def test_event_type_filter_in_and_not_in():
    only_chat = metric(event_types_in=frozenset({"chat", "embed"}), event_types_not_in=frozenset({"embed"}))

    assert r.measure(only_chat, event_type="chat", properties={"tokens": 1}) is not None
    assert r.measure(only_chat, event_type="embed", properties={"tokens": 1}) is None
    assert r.measure(only_chat, event_type="image", properties={"tokens": 1}) is None
    assert r.measure(metric(event_types_not_in=frozenset({"x"})), event_type="y", properties={"tokens": 1})


@pytest.mark.parametrize(
    ("flt", "props", "matches"),
    [
        (r.PropertyFilter("region", exists=True), {"region": "eu"}, True),
        (r.PropertyFilter("region", exists=True), {}, False),
        (r.PropertyFilter("region", exists=True), {"region": None}, False),
        (r.PropertyFilter("region", exists=False), {}, True),
        (r.PropertyFilter("region", exists=False), {"region": "eu"}, False),
        (r.PropertyFilter("region", in_values=frozenset({"eu", "us"})), {"region": "us"}, True),
        (r.PropertyFilter("region", in_values=frozenset({"eu", "us"})), {"region": "ap"}, False),
        (r.PropertyFilter("region", in_values=frozenset({"eu"})), {}, False),
        (r.PropertyFilter("region", not_in_values=frozenset({"eu"})), {"region": "eu"}, False),
        (r.PropertyFilter("region", not_in_values=frozenset({"eu"})), {"region": "us"}, True),
        (r.PropertyFilter("region", not_in_values=frozenset({"eu"})), {}, True),
        (r.PropertyFilter("tier", in_values=frozenset({"1", "true"})), {"tier": 1.0}, True),
        (r.PropertyFilter("tier", in_values=frozenset({"true"})), {"tier": True}, True),
    ],
)
def test_property_filters(flt, props, matches):
    definition = metric(r.AggregationType.COUNT, key=None, property_filters=(flt,))

    assert (r.measure(definition, event_type="e", properties=props) is not None) is matches


def test_numeric_aggregations_need_a_numeric_value_and_unique_needs_the_key():
    assert r.measure(metric(), event_type="e", properties={"tokens": "lots"}) is None
    assert r.measure(metric(), event_type="e", properties={"tokens": True}) is None
    assert r.measure(metric(), event_type="e", properties={}) is None
    assert r.measure(metric(r.AggregationType.UNIQUE, key="user"), event_type="e", properties={}) is None
    assert r.measure(metric(r.AggregationType.COUNT, key=None), event_type="e", properties={}).value == 1
    assert r.measure(metric(), event_type="e", properties={"tokens": 0.1}).value == Decimal("0.1")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (r.AggregationType.SUM, Decimal("17.5")),
        (r.AggregationType.COUNT, Decimal(4)),
        (r.AggregationType.MAX, Decimal(9)),
        (r.AggregationType.LATEST, Decimal(3)),  # the event with the latest occurred_at
        (r.AggregationType.UNIQUE, Decimal(2)),  # "u1" and "u2"
    ],
)
def test_aggregation_semantics(kind, expected):
    definition = metric(kind, key="user" if kind is r.AggregationType.UNIQUE else "value")
    product = r.ProductDefinition(id="p", name="P", type=r.ProductType.USAGE, metric=definition)
    events = [
        event(1, {"value": 5, "user": "u1"}, at=JAN + timedelta(hours=3)),
        event(2, {"value": 9, "user": "u2"}, at=JAN + timedelta(hours=1)),
        event(3, {"value": 0.5, "user": "u1"}, at=JAN + timedelta(hours=2)),
        event(4, {"value": 3, "user": "u1"}, at=JAN + timedelta(hours=4)),
    ]
    cells = r.aggregate_events(product, r.segment_plan(JAN, FEB, [rate(flat(1))]), events)

    assert [cell.quantity for cell in cells] == [expected]


def test_latest_breaks_ties_by_the_later_stored_event():
    a = r.Partial.of(Decimal(1), at=JAN, seq=7)
    b = r.Partial.of(Decimal(2), at=JAN, seq=9)

    assert a.merge(b).latest_value == b.merge(a).latest_value == Decimal(2)


def test_group_keys_split_lines_by_presentation_group():
    definition = metric(group_keys=("user_id", "region"))
    product = r.ProductDefinition(
        id="p", name="Tokens", type=r.ProductType.USAGE, metric=definition, presentation_group_key=("user_id",)
    )
    book = r.PricingBook(rates={"p": [rate(flat(2))]})
    events = [
        event(1, {"tokens": 10, "user_id": "alice", "region": "eu"}),
        event(2, {"tokens": 5, "user_id": "alice", "region": "us"}),
        event(3, {"tokens": 7, "user_id": "bob", "region": "eu"}),
        event(4, {"tokens": 1}),
    ]

    lines = lines_for(product, book, events)

    assert [(r.group_label(line.group), line.quantity, line.amount_cents) for line in lines] == [
        ("user_id: (none)", 1, 2),
        ("user_id: alice", 15, 30),
        ("user_id: bob", 7, 14),
    ]


# --- prices ----------------------------------------------------------------------------------


TIERS = r.Price(
    rate_type=r.RateType.TIERED,
    tiers=(
        r.Tier(size=Decimal(1000), price=Decimal(5)),
        r.Tier(size=Decimal(9000), price=Decimal(3)),
        r.Tier(price=Decimal("1.5")),
    ),
)


@pytest.mark.parametrize(
    ("quantity", "charges"),
    [
        (0, [(0, 5)]),
        (1, [(1, 5)]),
        (1000, [(1000, 5)]),
        (1001, [(1000, 5), (1, 3)]),
        (10_000, [(1000, 5), (9000, 3)]),
        (10_001, [(1000, 5), (9000, 3), (1, Decimal("1.5"))]),
    ],
)
def test_graduated_tier_boundaries(quantity, charges):
    result = r.price_quantity(Decimal(quantity), TIERS)

    assert [(c.quantity, c.unit_price) for c in result] == [(Decimal(q), Decimal(p)) for q, p in charges]
    assert [c.tier_index for c in result] == list(range(1, len(charges) + 1))


def test_tiers_must_be_ordered_with_only_the_last_unbounded():
    with pytest.raises(ValueError, match="last tier"):
        r.Price(rate_type=r.RateType.TIERED, tiers=(r.Tier(size=Decimal(10), price=Decimal(1)),))
    with pytest.raises(ValueError, match="positive size"):
        r.Price(rate_type=r.RateType.TIERED, tiers=(r.Tier(price=Decimal(1)), r.Tier(price=Decimal(1))))
    with pytest.raises(ValueError, match="at least one"):
        r.Price(rate_type=r.RateType.TIERED, tiers=())


def test_quantity_conversion_multiply_and_divide_are_exact():
    divide = r.QuantityConversion(Decimal(3), r.ConversionOperation.DIVIDE)
    multiply = r.QuantityConversion(Decimal("0.001"), r.ConversionOperation.MULTIPLY)

    assert r.convert_quantity(Decimal(1), divide) * 3 == Decimal(1)
    assert r.convert_quantity(Decimal(1500), multiply) == Decimal("1.5")
    with pytest.raises(ValueError):
        r.QuantityConversion(Decimal(0), r.ConversionOperation.DIVIDE)


def test_half_a_cent_rounds_up_once_per_line():
    assert r.price_quantity(Decimal(1), flat("0.5"))[0].amount_cents == 1
    assert r.price_quantity(Decimal(1), flat("0.49999"))[0].amount_cents == 0
    # three lines of 0.4 cents each: rounding per line gives 0, not round(1.2) = 1
    lines = [r.price_quantity(Decimal(1), flat("0.4"))[0] for _ in range(3)]
    assert sum(c.amount_cents for c in lines) == 0


# --- effective dating, entitlement and overrides ---------------------------------------------


def test_rates_are_chosen_by_usage_time():
    mid = JAN + timedelta(days=15)
    product = r.ProductDefinition(id="p", name="T", type=r.ProductType.USAGE, metric=metric())
    book = r.PricingBook(rates={"p": [rate(flat(10), end=mid), rate(flat(20), start=mid)]})
    events = [event(1, {"tokens": 1}, at=mid - timedelta(hours=1)), event(2, {"tokens": 1}, at=mid)]

    lines = lines_for(product, book, events)

    assert [(line.period_start, line.period_end, line.amount_cents) for line in lines] == [
        (JAN, mid, 10),
        (mid, FEB, 20),
    ]


def test_non_entitled_rates_bill_only_when_a_contract_override_entitles_them():
    product = r.ProductDefinition(id="p", name="T", type=r.ProductType.USAGE, metric=metric())
    events = [event(1, {"tokens": 3})]
    hidden = r.PricingBook(rates={"p": [rate(flat(10), entitled=False)]})
    entitled = r.PricingBook(
        rates={"p": [rate(flat(10), entitled=False)]},
        overrides={"p": [r.Override(starting_at=JAN, ending_before=None, entitled=True)]},
    )
    removed = r.PricingBook(
        rates={"p": [rate(flat(10))]},
        overrides={"p": [r.Override(starting_at=JAN, ending_before=None, entitled=False)]},
    )

    assert lines_for(product, hidden, events) == []
    assert [line.amount_cents for line in lines_for(product, entitled, events)] == [30]
    assert lines_for(product, removed, events) == []


def test_price_overrides_overwrite_or_multiply():
    product = r.ProductDefinition(id="p", name="T", type=r.ProductType.USAGE, metric=metric())
    events = [event(1, {"tokens": 2000})]
    overwrite = r.PricingBook(
        rates={"p": [rate(TIERS)]}, overrides={"p": [r.Override(JAN, None, overwrite_price=Decimal(2))]}
    )
    multiplied = r.PricingBook(
        rates={"p": [rate(TIERS)]}, overrides={"p": [r.Override(JAN, None, multiplier=Decimal("0.5"))]}
    )

    assert [line.amount_cents for line in lines_for(product, overwrite, events)] == [4000]
    # 1000 x 2.5 + 1000 x 1.5
    assert [line.amount_cents for line in lines_for(product, multiplied, events)] == [2500, 1500]


def test_entitled_product_without_usage_shows_a_zero_line():
    product = r.ProductDefinition(id="p", name="T", type=r.ProductType.USAGE, metric=metric())
    lines = lines_for(product, r.PricingBook(rates={"p": [rate(flat(10))]}), [])

    assert [(line.quantity, line.amount_cents) for line in lines] == [(0, 0)]


def test_composite_product_charges_a_percentage_of_other_usage_products():
    usage_a = r.ProductDefinition(id="a", name="A", type=r.ProductType.USAGE, metric=metric())
    usage_b = r.ProductDefinition(id="b", name="B", type=r.ProductType.USAGE, metric=metric(key="other"))
    support = r.ProductDefinition(id="c", name="Support", type=r.ProductType.COMPOSITE, composite_product_ids=("a",))
    book = r.PricingBook(rates={"a": [rate(flat("33.3"))], "b": [rate(flat(100))], "c": [rate(flat("0.1"))]})
    events = [event(1, {"tokens": 10, "other": 5})]

    lines = r.rate_invoice(
        window=WINDOW,
        products=[usage_a, usage_b, support],
        book=book,
        usage=lambda p, plan: r.aggregate_events(p, plan, events),
    )

    by_product = {line.product_id: line for line in lines}
    assert by_product["a"].amount_cents == 333
    assert by_product["c"].quantity == 333  # cents of the referenced lines
    assert by_product["c"].amount_cents == 33  # 10 % of 333, rounded half up once
    assert r.invoice_total(lines) == 333 + 500 + 33


def test_fixed_products_charge_once_and_subscriptions_every_period():
    fee = r.ProductDefinition(id="f", name="Setup", type=r.ProductType.FIXED)
    seats = r.ProductDefinition(id="s", name="Seats", type=r.ProductType.SUBSCRIPTION)
    book = r.PricingBook(rates={"f": [rate(flat(10_000))], "s": [rate(flat(2_000), quantity=Decimal(5))]})

    def lines(window):
        return r.rate_invoice(window=window, products=[fee, seats], book=book, usage=lambda p, plan: [])

    first = lines(WINDOW)
    second = lines(r.InvoiceWindow(start=FEB, end=datetime(2026, 3, 1, tzinfo=UTC), contract_starting_at=JAN))

    assert sorted((line.product_id, line.amount_cents) for line in first) == [("f", 10_000), ("s", 10_000)]
    assert [(line.product_id, line.quantity, line.amount_cents) for line in second] == [("s", 5, 10_000)]


# --- properties ------------------------------------------------------------------------------

cents = st.decimals(min_value=Decimal(0), max_value=Decimal(10_000), places=6, allow_nan=False, allow_infinity=False)
quantities = st.decimals(
    min_value=Decimal(0), max_value=Decimal(10**9), places=4, allow_nan=False, allow_infinity=False
)
sizes = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(10**6), places=2, allow_nan=False, allow_infinity=False)


@st.composite
def tiered_prices(draw):
    bounded = draw(st.lists(st.tuples(sizes, cents), min_size=0, max_size=4))
    last = draw(cents)
    return r.Price(
        rate_type=r.RateType.TIERED,
        tiers=(*(r.Tier(size=size, price=price) for size, price in bounded), r.Tier(price=last)),
    )


@settings(max_examples=300)
@given(quantity=quantities, price=tiered_prices())
def test_graduated_charges_partition_the_quantity_and_respect_tier_sizes(quantity, price):
    charges = r.price_quantity(quantity, price)

    assert sum(c.quantity for c in charges) == quantity
    for charge, tier in zip(charges, price.tiers, strict=False):
        assert charge.unit_price == tier.price
        assert tier.size is None or charge.quantity <= tier.size
    for charge, tier in zip(charges[:-1], price.tiers, strict=False):
        assert charge.quantity == tier.size  # every tier before the last used one is full
    for charge in charges:
        assert abs(Decimal(charge.amount_cents) - charge.exact_amount) <= Decimal("0.5")


@settings(max_examples=300)
@given(
    quantity=quantities,
    price=tiered_prices(),
    extra=st.decimals(min_value=Decimal(0), max_value=Decimal(1000), places=3),
)
def test_graduated_amount_never_decreases_with_more_usage(quantity, price, extra):
    def exact(q):
        return sum(c.exact_amount for c in r.price_quantity(q, price))

    assert exact(quantity + extra) >= exact(quantity)


@settings(max_examples=300)
@given(
    raw=quantities,
    factor=st.decimals(min_value=Decimal("0.000001"), max_value=Decimal(10**7), places=6),
    operation=st.sampled_from(list(r.ConversionOperation)),
    unit=cents,
)
def test_converted_flat_line_rounds_once_half_up(raw, factor, operation, unit):
    conversion = r.QuantityConversion(factor, operation)
    quantity = r.convert_quantity(raw, conversion)
    (charge,) = r.price_quantity(quantity, r.Price(rate_type=r.RateType.FLAT, price=unit))

    exact = raw * unit * factor if operation is r.ConversionOperation.MULTIPLY else raw * unit / factor
    difference = Decimal(charge.amount_cents) - exact
    assert -Decimal("0.5") < difference <= Decimal("0.5") + Decimal("1e-40")
    back = quantity / factor if operation is r.ConversionOperation.MULTIPLY else quantity * factor
    assert abs(back - raw) < Decimal("1e-40")


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(
        st.tuples(st.integers(min_value=0, max_value=743), st.sampled_from(["alice", "bob", None]), quantities),
        max_size=40,
    ),
    price=st.one_of(tiered_prices(), cents.map(lambda c: r.Price(rate_type=r.RateType.FLAT, price=c))),
    change_hour=st.integers(min_value=1, max_value=743),
)
def test_invoice_total_is_exactly_the_sum_of_the_rounded_lines(values, price, change_hour):
    definition = metric(group_keys=("user",))
    product = r.ProductDefinition(
        id="p", name="T", type=r.ProductType.USAGE, metric=definition, presentation_group_key=("user",)
    )
    change = JAN + timedelta(hours=change_hour)
    book = r.PricingBook(rates={"p": [rate(price, end=change), rate(flat(7), start=change)]})
    events = [
        event(i, {"tokens": str(q), **({"user": user} if user else {})}, at=JAN + timedelta(hours=hour))
        for i, (hour, user, q) in enumerate(values)
    ]

    lines = lines_for(product, book, events)

    assert r.invoice_total(lines) == sum(line.amount_cents for line in lines)
    for line in lines:
        assert isinstance(line.amount_cents, int)
        assert abs(Decimal(line.amount_cents) - line.quantity * line.unit_price) <= Decimal("0.5")
    billed = sum(line.quantity for line in lines)
    assert billed == sum(q for _, _, q in values)
