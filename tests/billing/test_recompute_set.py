"""The set-based draft recompute (`invoicing.customers_drafts_recompute`): recomputing many customers
in one pass gives exactly the lines and totals of recomputing each alone, and of the per-customer
path it replaced (one rollup query per customer and product, kept here as the reference), over mixed
contracts; its queries do not grow with the number of customers; a draft that does not fit and a
rebuilding organization are isolated without losing the others."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing import invoicing, rating, services
from billing.collection.models import CustomerBillingConfig
from billing.credits.models import CreditEntry
from billing.credits.services import credit_add
from billing.models import Invoice, RollupRebuild
from billing.selectors import _group
from events.models import Customer
from tests.billing.tokens import call, create_catalog, draft, send

FEBRUARY = datetime(2026, 2, 1, tzinfo=UTC)
MARCH = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 20, 9, 0, tzinfo=UTC)

pytestmark = pytest.mark.clock


@pytest.fixture(autouse=True)
def _frozen(settings):
    settings.BILLING_MAX_BACKDATE_MONTHS = 10_000  # contracts in 2026 whatever today is
    with time_machine.travel(NOW, tick=False):
        yield


def _pricing(organization):
    """Two rate cards over usage (SUM per user, COUNT, UNIQUE), COST_PLUS per model, a composite,
    a fixed fee and a subscription; tiers, a mid-month rate change and an entitlement gap."""
    create_catalog()
    tokens = services.billable_metric_create(
        organization=organization, name="tokens", aggregation_type="SUM", aggregation_key="tokens",
        event_type_filter={"in_values": ["chat"]}, group_keys=["user_id", "region"],
    )
    searches = services.billable_metric_create(
        organization=organization, name="searches", aggregation_type="COUNT",
        event_type_filter={"in_values": ["search"]},
    )
    users = services.billable_metric_create(
        organization=organization, name="users", aggregation_type="UNIQUE", aggregation_key="user_id",
    )
    cost = services.billable_metric_create(
        organization=organization, name="call cost", aggregation_type="SUM", aggregation_key="cost_microdollars",
        property_filters=[{"name": "model", "exists": True}], group_keys=["model"],
    )
    product = {
        "tokens": services.product_create(
            organization=organization, name="Tokens", billable_metric=tokens, presentation_group_key=["user_id"],
            quantity_conversion={"conversion_factor": Decimal(1000), "operation": "DIVIDE", "name": "k tokens"},
        ),
        "searches": services.product_create(organization=organization, name="Searches", billable_metric=searches),
        "users": services.product_create(organization=organization, name="Active users", billable_metric=users),
        "calls": services.product_create(
            organization=organization, name="Model calls", billable_metric=cost, presentation_group_key=["model"]
        ),
        "fee": services.product_create(organization=organization, name="Setup", type="fixed"),
        "seat": services.product_create(organization=organization, name="Platform", type="subscription"),
    }
    product["support"] = services.product_create(
        organization=organization, name="Support", type="composite",
        composite_products=[product["tokens"], product["searches"]],
    )
    since = datetime(2026, 1, 1, tzinfo=UTC)
    standard = services.rate_card_create(organization=organization, name="Standard")
    services.rate_create(rate_card=standard, product=product["tokens"], starting_at=since, price=Decimal("0.7"))
    services.rate_create(
        rate_card=standard, product=product["searches"], starting_at=since, rate_type="TIERED",
        tiers=[{"price": Decimal(3), "size": Decimal(2)}, {"price": Decimal("1.5")}],
    )
    services.rate_create(rate_card=standard, product=product["users"], starting_at=since, price=Decimal(25))
    services.rate_create(rate_card=standard, product=product["support"], starting_at=since, price=Decimal("0.1"))
    services.rate_create(rate_card=standard, product=product["fee"], starting_at=since, price=Decimal(5000))
    services.rate_create(rate_card=standard, product=product["seat"], starting_at=since, price=Decimal(999))
    growth = services.rate_card_create(organization=organization, name="Growth")
    change = datetime(2026, 3, 10, tzinfo=UTC)
    services.rate_create(
        rate_card=growth, product=product["tokens"], starting_at=since, ending_before=change, rate_type="TIERED",
        tiers=[{"price": Decimal(1), "size": Decimal(3)}, {"price": Decimal("0.5")}],
    )
    services.rate_create(rate_card=growth, product=product["tokens"], starting_at=change, price=Decimal("0.25"))
    services.rate_create(
        rate_card=growth, product=product["calls"], starting_at=since, rate_type="COST_PLUS", markup=Decimal("0.3"),
        model_markups={"anthropic/claude-3-haiku": Decimal("0.5")}, minimum_cents=Decimal(40),
    )
    services.rate_create(
        rate_card=growth, product=product["searches"], starting_at=since,
        ending_before=datetime(2026, 3, 5, tzinfo=UTC), price=Decimal(2),
    )
    services.rate_create(rate_card=growth, product=product["seat"], starting_at=since, price=Decimal(1500))
    return product, standard, growth


def _customers(organization):
    """Eight contracted customers over both cards (one with two periods of drafts, overrides, a
    second contract, credits) and one without a contract."""
    product, standard, growth = _pricing(organization)
    names = [f"c{n}" for n in range(9)]
    rows = {name: Customer.objects.create(organization=organization, external_id=name) for name in names}
    terms = {
        "c0": (standard, FEBRUARY, []),
        "c1": (standard, MARCH, [{"product": product["tokens"], "type": "MULTIPLIER", "multiplier": Decimal("1.5")}]),
        "c2": (growth, FEBRUARY, []),
        "c3": (growth, MARCH, [{"product": product["calls"], "type": "OVERWRITE", "price": Decimal(7)}]),
        "c4": (standard, MARCH, [{"product": product["users"], "entitled": False}]),
        "c5": (growth, datetime(2026, 2, 15, tzinfo=UTC), []),
        "c6": (standard, MARCH, []),
        "c7": (growth, MARCH, []),
    }
    switch = datetime(2026, 3, 12, tzinfo=UTC)
    for name, (card, start, overrides) in terms.items():
        services.contract_create(
            organization=organization, customer=rows[name], rate_card=card, starting_at=start, overrides=overrides,
            ending_before=switch if name == "c6" else None,
        )
    services.contract_create(  # a second contract of c6, on the other card, from mid-March
        organization=organization, customer=rows["c6"], rate_card=growth, starting_at=switch
    )
    for name, amount in (("c2", 3_000_000), ("c6", 150_000_000)):  # $3 and $150 of credit
        credit_add(customer=rows[name], kind=CreditEntry.Kind.GRANT, amount_microdollars=amount, reference=f"g-{name}")
    return rows


def _usage(organization, names):
    """Usage in February and March, different per customer (regions, users, models, searches)."""
    drafts = []
    for number, name in enumerate(names):
        for day in (3, 9, 14, 18):
            for month in (2, 3):
                at = datetime(2026, month, day, 10 + number % 5, 15, tzinfo=UTC)
                drafts += [
                    draft(name, at, event_type="chat",
                          properties={"tokens": 1000 * (number + 1) + day, "user_id": f"u{day % 3}",
                                      "region": "eu" if day % 2 else "us"}),
                    draft(name, at, event_type="search", properties={"user_id": f"u{number}"}),
                    draft(name, at, [call("anthropic/claude-3-haiku", 40_000 * (number + 1), 9_000)]),
                    draft(name, at, [call("openai/gpt-4o", 3_000 + day, 700 * number)]),
                ]
    send(organization, drafts, now=NOW)


def _snapshot(customer_ids):
    """Every draft of the customers with its totals and lines, as stored."""
    invoices = Invoice.objects.filter(customer_id__in=customer_ids, status=Invoice.Status.DRAFT)
    return {
        invoice.pk: (
            invoice.total_cents, invoice.credits_applied_cents, invoice.amount_due_cents,
            [
                (line.position, line.product_id, line.presentation_group, line.period_start, line.period_end,
                 line.quantity, line.unit_price, line.rate_type, line.tier_index, line.amount_cents, line.model,
                 line.cost_microdollars, line.markup, line.tokens, line.allowance_cents,
                 getattr(getattr(line, "credit", None), "amount_cents", None))
                for line in invoice.lines.order_by("position")
            ],
        )
        for invoice in invoices
    }


# The per-customer read the set-based pass replaced: one query per customer and product.
_REFERENCE_CELLS = """
SELECT (group_values - %(drop)s::text[])::text, width_bucket(hour, %(bounds)s::timestamptz[]),
       sum(total), sum(event_count), max(maximum),
       (array_agg(latest_value ORDER BY latest_at DESC, latest_event_id DESC))[1], sum(tokens)
FROM billing_usagerollup
WHERE customer_id = %(customer)s AND metric_id = %(metric)s AND hour >= %(start)s AND hour < %(end)s
GROUP BY 1, 2
"""
_REFERENCE_UNIQUE = """
SELECT (group_values - %(drop)s::text[])::text, width_bucket(hour, %(bounds)s::timestamptz[]), count(DISTINCT value)
FROM billing_uniquevaluerollup
WHERE customer_id = %(customer)s AND metric_id = %(metric)s AND hour >= %(start)s AND hour < %(end)s
GROUP BY 1, 2
"""


def _reference_usage(customer_id):
    def usage(product, plan):
        metric, keys = product.metric, product.presentation_group_key
        params = {
            "drop": [key for key in metric.group_keys if key not in keys],
            "bounds": [segment.start for segment in plan] + [plan[-1].end],
            "customer": customer_id, "metric": metric.id, "start": plan[0].start, "end": plan[-1].end,
        }
        unique = metric.aggregation_type is rating.AggregationType.UNIQUE
        with connection.cursor() as cursor:
            cursor.execute(_REFERENCE_UNIQUE if unique else _REFERENCE_CELLS, params)
            rows = cursor.fetchall()
        cells = []
        for group, segment, *values in rows:
            if unique:
                quantity, tokens = Decimal(values[0]), 0
            else:
                total, count, maximum, latest, tokens = values
                partial = rating.Partial(total=total, count=int(count), maximum=maximum, latest_value=latest)
                quantity = rating.final_quantity(metric.aggregation_type, partial)
            cells.append(rating.UsageCell(_group(group, keys), segment - 1, quantity, int(tokens)))
        return cells

    return usage


def _reference_lines(invoice):
    definitions, book, _ = invoicing.contract_pricing(invoice.contract)
    window = rating.InvoiceWindow(invoice.period_start, invoice.period_end, invoice.contract.starting_at)
    usage = _reference_usage(invoice.customer_id)
    return rating.rate_invoice(window=window, products=definitions, book=book, usage=usage)


def test_one_pass_over_many_customers_equals_each_alone_and_the_per_customer_reference(organization):
    rows = _customers(organization)
    _usage(organization, list(rows)[:8])
    ids = [customer.pk for customer in rows.values()]

    together = invoicing.customers_drafts_recompute(customer_ids=ids)
    batch = _snapshot(ids)
    Invoice.objects.filter(customer_id__in=ids).update(total_cents=0, credits_applied_cents=0, amount_due_cents=0)
    for customer_id in ids:
        invoicing.customer_drafts_recompute(customer_id=customer_id)
    alone = _snapshot(ids)

    assert batch == alone
    assert len(together) == len(batch) == 12  # c0, c2, c5: February and March; c6: two contracts; c8: none
    assert {invoice.pk for invoice in together} == set(batch)
    # Every kind of line is there, and credit was applied on the drafts of c2 and c6 only.
    rate_types = {line[7] for _, _, _, lines in batch.values() for line in lines}
    assert rate_types == {"FLAT", "TIERED", "COST_PLUS", "COMPOSITE"}
    credited = {Invoice.objects.get(pk=pk).customer.external_id for pk, value in batch.items() if value[1] > 0}
    assert credited == {"c2", "c6"}
    for invoice in Invoice.objects.filter(customer_id__in=ids, status="draft").select_related("contract"):
        expected = _reference_lines(invoice)
        stored = batch[invoice.pk]
        assert stored[0] == rating.invoice_total(expected) > 0
        assert [(line[1], line[9]) for line in stored[3]] == [(line.product_id, line.amount_cents) for line in expected]


def test_recompute_is_idempotent_and_keeps_the_credit_share_of_several_drafts(organization):
    rows = _customers(organization)
    _usage(organization, list(rows)[:8])
    ids = [customer.pk for customer in rows.values()]

    invoicing.customers_drafts_recompute(customer_ids=ids)
    first = _snapshot(ids)
    invoicing.customers_drafts_recompute(customer_ids=list(reversed(ids)))

    assert _snapshot(ids) == first
    c6 = Invoice.objects.filter(customer=rows["c6"], status="draft")
    assert sum(invoice.credits_applied_cents for invoice in c6) == min(15_000, sum(i.total_cents for i in c6))


def _many(organization, count):
    _, standard, growth = _pricing(organization)
    customers = Customer.objects.bulk_create(
        [Customer(organization=organization, external_id=f"m{n:03d}") for n in range(count)]
    )
    for number, customer in enumerate(customers):
        services.contract_create(
            organization=organization, customer=customer, rate_card=(standard, growth)[number % 2], starting_at=MARCH
        )
    send(
        organization,
        [draft(f"m{n:03d}", NOW - timedelta(hours=2), event_type="chat",
               properties={"tokens": 5000 + n, "user_id": "u1", "region": "eu"}) for n in range(count)]
        + [draft(f"m{n:03d}", NOW - timedelta(hours=1), [call("openai/gpt-4o", 10_000, 2_000)]) for n in range(count)],
        now=NOW,
    )
    return [customer.pk for customer in customers]


def _queries(ids):
    invoicing.customers_drafts_recompute(customer_ids=ids)  # drafts exist: the steady state of ingest
    with CaptureQueriesContext(connection) as queries:
        recomputed = invoicing.customers_drafts_recompute(customer_ids=ids)
    assert len(recomputed) == len(ids)
    return len(queries)


def test_queries_do_not_grow_with_the_number_of_customers(organization):
    ids = _many(organization, 100)

    ten, hundred = _queries(ids[:10]), _queries(ids)

    assert hundred == ten <= 20


def test_creating_the_drafts_of_many_customers_takes_a_constant_number_of_queries(organization):
    ids = _many(organization, 60)
    Invoice.objects.filter(customer_id__in=ids).delete()
    euro = ids[7]  # new drafts take the customer's billing currency (billing.collection), inserted in bulk
    CustomerBillingConfig.objects.create(organization=organization, customer_id=euro, currency="EUR")

    def creating(part):
        with CaptureQueriesContext(connection) as queries:
            invoicing.customers_drafts_recompute(customer_ids=part)
        assert Invoice.objects.filter(customer_id__in=part, status="draft").count() == len(part)
        return len(queries)

    assert creating(ids[:5]) == creating(ids[5:])
    assert Invoice.objects.filter(customer_id__in=ids, currency="USD").count() == 59
    assert Invoice.objects.get(customer_id=euro).currency == "EUR"


def test_a_draft_too_large_keeps_its_lines_and_the_other_customers_are_recomputed(organization):
    rows = _customers(organization)
    _usage(organization, ["c0", "c1"])
    ids = [rows["c0"].pk, rows["c1"].pk]
    invoicing.customers_drafts_recompute(customer_ids=ids)
    before = _snapshot([rows["c1"].pk])
    send(organization, [draft("c1", NOW - timedelta(hours=1), event_type="chat",
                              properties={"tokens": str(10**29), "user_id": "u1"})], now=NOW)
    send(organization, [draft("c0", NOW - timedelta(hours=1), event_type="search")], now=NOW)
    c0_total = Invoice.objects.get(customer=rows["c0"], period_start=MARCH).total_cents

    recomputed = invoicing.customers_drafts_recompute(customer_ids=ids)

    assert {invoice.customer_id for invoice in recomputed} == {rows["c0"].pk}
    assert _snapshot([rows["c1"].pk]) == before
    assert Invoice.objects.get(customer=rows["c0"], period_start=MARCH).total_cents > c0_total


def test_a_customer_whose_recompute_fails_does_not_keep_the_others_stale(organization, monkeypatch, caplog):
    """A bug met by one customer's data (here: computing its lines raises) fails that customer only:
    the pass falls back to one customer at a time, the others are recomputed, the error is raised."""
    rows = _customers(organization)
    _usage(organization, ["c0", "c1"])
    ids = [rows["c0"].pk, rows["c1"].pk]
    invoicing.customers_drafts_recompute(customer_ids=ids)
    before = _snapshot([rows["c1"].pk])
    send(organization, [draft("c0", NOW - timedelta(hours=1), event_type="search")], now=NOW)
    send(organization, [draft("c1", NOW - timedelta(hours=1), event_type="search")], now=NOW)
    c0_total = Invoice.objects.get(customer=rows["c0"], period_start=MARCH).total_cents
    lines = invoicing._drafts_lines

    def failing_for_c1(drafts):
        if any(draft.customer_id == rows["c1"].pk for draft in drafts):
            raise ZeroDivisionError("a bug met by c1's data")
        return lines(drafts)

    monkeypatch.setattr(invoicing, "_drafts_lines", failing_for_c1)

    with pytest.raises(ZeroDivisionError):
        invoicing.customers_drafts_recompute(customer_ids=ids)

    assert Invoice.objects.get(customer=rows["c0"], period_start=MARCH).total_cents > c0_total
    assert _snapshot([rows["c1"].pk]) == before
    assert "not recomputed" in caplog.text


def test_drafts_of_an_organization_being_rebuilt_are_left_as_they_are(organization):
    rows = _customers(organization)
    _usage(organization, ["c0"])
    invoicing.customers_drafts_recompute(customer_ids=[rows["c0"].pk])
    before = _snapshot([rows["c0"].pk])
    send(organization, [draft("c0", NOW - timedelta(hours=1), event_type="search")], now=NOW)
    metric = services.billable_metric_create(organization=organization, name="x", aggregation_type="COUNT")
    RollupRebuild.objects.create(organization=organization, metric=metric, status=RollupRebuild.Status.RUNNING)

    assert invoicing.customers_drafts_recompute(customer_ids=[rows["c0"].pk]) == []
    assert _snapshot([rows["c0"].pk]) == before


def test_the_drafts_are_locked_in_id_order(organization):
    ids = _many(organization, 3)
    with CaptureQueriesContext(connection) as queries:
        invoicing.customers_drafts_recompute(customer_ids=ids)
    (locking,) = [query["sql"] for query in queries if "FOR UPDATE" in query["sql"]]
    assert locking.endswith('ORDER BY "billing_invoice"."id" ASC FOR UPDATE')
