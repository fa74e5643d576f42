"""Invoices: drafts per contract period, recomputed from rollups; finalization; status changes.

- A contract has one invoice per billing period (`billing.periods`), created as a draft when the
  period starts (contract creation, finalization of the previous period, or the first recompute).
- `customer_drafts_recompute` rebuilds every draft of a customer from the hourly rollups: the
  cost depends on hours x groups x products, not on the number of raw events. It is idempotent.
- `invoices_finalize_due` (beat) finalizes drafts whose period ended more than
  INVOICE_FINALIZE_GRACE_HOURS ago, assigns a number from a database sequence and opens the next
  period's draft. Usage that arrives later for a finalized period is billed on the current draft
  (see billing.metering: billing hour); when the contract has ended, on a correction invoice
  (`contract_corrections_ensure`).
- Invoice adjusters (`register_invoice_adjuster`) may apply credits: amount_due = total - credits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from events import selectors as event_selectors

from . import periods, rating
from .definitions import override_version, product_definition, rate_version
from .metering import accumulate, hour_floor, lock_organization_exclusive, rebuild_running
from .models import Contract, ContractOverride, Invoice, InvoiceLine, Product, Rate, RollupRebuild, UsageRollup
from .recompute import (
    RECOMPUTE_CHUNK,
    schedule_draft_recompute,
    schedule_drafts_recompute,
    stale_draft_customers,
    stale_marks_take,
)
from .selectors import UsageRequest, usage_cells, usage_cells_many

logger = logging.getLogger(__name__)

InvoiceAdjuster = Callable[..., int]  # adjuster(invoice=Invoice, lines=[InvoiceLine]) -> credits applied (cents)
AdjusterScope = Callable[[set], Iterable]  # scope(customer ids) -> the ones the adjuster may change
_adjusters: list[InvoiceAdjuster] = []
_adjuster_scopes: dict[InvoiceAdjuster, AdjusterScope] = {}


def register_invoice_adjuster(adjuster: InvoiceAdjuster, *, scope: AdjusterScope | None = None) -> InvoiceAdjuster:
    """Register a function that applies credits to a draft (inside the recompute transaction).

    ``scope``, given the customers of a recompute, returns those the adjuster may change (in one
    query): the others' drafts are not passed to it and get no credits. Without one, every draft is."""
    if adjuster not in _adjusters:
        _adjusters.append(adjuster)
    if scope is not None:
        _adjuster_scopes[adjuster] = scope
    return adjuster


DraftPreparer = Callable[..., None]  # preparer(drafts=[unsaved Invoice]): sets their fields, one query for all
_draft_preparers: list[DraftPreparer] = []


def register_draft_preparer(preparer: DraftPreparer) -> DraftPreparer:
    """Register a function that fills in new period drafts before they are inserted (in bulk, so no
    post_save is sent for them): e.g. the customer's billing currency."""
    if preparer not in _draft_preparers:
        _draft_preparers.append(preparer)
    return preparer


# --- Pricing of one contract ---------------------------------------------------------------------


Pricing = tuple[list[rating.ProductDefinition], rating.PricingBook, dict]


def contracts_pricing(contracts: Sequence[Contract]) -> dict[object, Pricing]:
    """Per contract id: the products priced by its rate card, their rates and its overrides.

    A constant number of queries for any number of contracts (rates with their products and
    metrics, tiers, overrides, composite references): a rate card's products and rates are loaded
    once and shared by every contract on it; only the overrides are the contract's own.
    """
    contracts = list({contract.pk: contract for contract in contracts}.values())
    if not contracts:
        return {}
    rates = list(
        Rate.objects.filter(rate_card_id__in={contract.rate_card_id for contract in contracts})
        .select_related("product__billable_metric")
        .prefetch_related("tiers")
    )
    products: dict[object, Product] = {}
    card_products: dict[object, dict[object, Product]] = {}
    card_rates: dict[object, dict[object, list[rating.RateVersion]]] = {}
    for rate in rates:
        products.setdefault(rate.product_id, rate.product)
        card_products.setdefault(rate.rate_card_id, {}).setdefault(rate.product_id, products[rate.product_id])
        card_rates.setdefault(rate.rate_card_id, {}).setdefault(rate.product_id, []).append(rate_version(rate))
    composite_ids: dict[object, list] = {}
    if products:
        through = Product.composite_products.through.objects.filter(from_product_id__in=list(products))
        for from_id, to_id in through.values_list("from_product_id", "to_product_id"):
            composite_ids.setdefault(from_id, []).append(to_id)
    definitions = {pk: product_definition(product, composite_ids.get(pk, ())) for pk, product in products.items()}
    overrides: dict[object, dict[object, list[rating.Override]]] = {}
    for override in ContractOverride.objects.filter(contract_id__in=[contract.pk for contract in contracts]):
        overrides.setdefault(override.contract_id, {}).setdefault(override.product_id, []).append(
            override_version(override)
        )
    pricing: dict[object, Pricing] = {}
    for contract in contracts:
        priced = card_products.get(contract.rate_card_id, {})
        book = rating.PricingBook(
            rates=dict(card_rates.get(contract.rate_card_id, {})), overrides=overrides.get(contract.pk, {})
        )
        pricing[contract.pk] = ([definitions[pk] for pk in priced], book, dict(priced))
    return pricing


def contract_pricing(contract: Contract) -> Pricing:
    """The products priced by the contract's rate card, their rates and the contract's overrides."""
    return contracts_pricing([contract])[contract.pk]


def invoice_lines_compute(invoice: Invoice) -> tuple[list[rating.Line], dict]:
    """The lines a draft would have now (``invoice.contract`` loaded), and its products by id."""
    return _drafts_lines([invoice])[invoice.pk]


def _drafts_lines(drafts: Sequence[Invoice]) -> dict[object, tuple[list[rating.Line], dict]]:
    """Per draft id: its lines from the rollups, and the products by id. Pricing is loaded once for all
    the drafts' contracts and usage read in one query for every draft and product (see
    selectors.usage_cells_many); rating itself is pure (billing.rating). Corrections rate the few late
    events of their ended contract (read per correction: they are rare)."""
    pricing = contracts_pricing([draft.contract for draft in drafts])
    plans: list[tuple[Invoice, rating.InvoiceWindow]] = []
    requests: list[UsageRequest] = []
    keys: list[tuple[object, object]] = []
    for draft in drafts:
        if draft.kind == Invoice.Kind.CORRECTION:
            continue
        definitions, book, _ = pricing[draft.contract_id]
        window = rating.InvoiceWindow(
            start=draft.period_start, end=draft.period_end, contract_starting_at=draft.contract.starting_at
        )
        plans.append((draft, window))
        for product in definitions:  # the products rate_invoice asks usage of
            if product.type is rating.ProductType.USAGE and product.metric is not None:
                plan = book.plan(product.id, window)
                if any(segment.billable for segment in plan):
                    requests.append(UsageRequest(customer_id=draft.customer_id, product=product, plan=plan))
                    keys.append((draft.pk, product.id))
    cells = dict(zip(keys, usage_cells_many(requests), strict=True))
    result: dict[object, tuple[list[rating.Line], dict]] = {}
    for draft, window in plans:
        definitions, book, products = pricing[draft.contract_id]

        def usage(product: rating.ProductDefinition, plan: Sequence[rating.Segment], draft_id=draft.pk):
            return cells[(draft_id, product.id)]

        result[draft.pk] = (rating.rate_invoice(window=window, products=definitions, book=book, usage=usage), products)
    for draft in drafts:
        if draft.kind == Invoice.Kind.CORRECTION:
            result[draft.pk] = _correction_lines(draft, pricing[draft.contract_id])
    return result


def _rollup_usage(customer_id: int) -> rating.UsageLookup:
    """Rating's usage lookup for one customer: its hourly rollups (selectors.usage_cells)."""

    def usage(product: rating.ProductDefinition, plan: Sequence[rating.Segment]):
        return usage_cells(customer_id=customer_id, product=product, plan=plan)

    return usage


# --- Usage charges in a window (spending limits) -------------------------------------------------

USAGE_CHARGE_TYPES = (rating.ProductType.USAGE, rating.ProductType.COMPOSITE)


def _hour_ceiling(instant: datetime) -> datetime:
    floor = instant.replace(minute=0, second=0, microsecond=0)
    return floor if floor == instant else floor + timedelta(hours=1)


def contract_usage_charges(*, customer_ids, start: datetime, end: datetime) -> dict[int, int]:
    """Cents each customer's contracts charge for usage billed in [start, end), by customer id.

    Read from the hourly rollups and rated with the contract's rates by `billing.rating`, the way
    the drafts are: usage products and composites (a percentage of usage); fixed and subscription
    charges are not usage. Whole hours: ``start`` and ``end`` are rounded up to the hour, so a
    window ending now includes the current hour. Per billing period the window overlaps, the charge
    is the period rated up to the window's end minus the period rated up to its start, so graduated
    tiers go on from where the period already is instead of starting over with the window.
    """
    start, end = _hour_ceiling(start), _hour_ceiling(end)
    charges: dict[int, int] = {}
    if end <= start:
        return charges
    # No usage billed in the window: nothing to rate (tiers only move with usage). One cheap query
    # spares rating for every customer whose limit is checked after each ingest but who is idle.
    active = (
        UsageRollup.objects.filter(customer_id__in=list(customer_ids), hour__gte=start, hour__lt=end)
        .values_list("customer_id", flat=True)
        .distinct()
    )
    contracts = (
        Contract.objects.filter(customer_id__in=list(active), starting_at__lt=end).exclude(ending_before__lte=start)
    )
    contracts = list(contracts)
    pricing = contracts_pricing(contracts)
    for contract in contracts:
        definitions, book, _ = pricing[contract.pk]
        usage_products = [definition for definition in definitions if definition.type in USAGE_CHARGE_TYPES]
        if not usage_products:
            continue
        total = 0
        for period_start, period_end in periods.periods(
            contract_start=contract.starting_at,
            contract_end=contract.ending_before,
            schedule=contract.usage_statement_day,
            until=end,
        ):
            if period_end <= start:
                continue
            total += _rated_cents(contract, usage_products, book, period_start, min(period_end, end))
            total -= _rated_cents(contract, usage_products, book, period_start, max(period_start, start))
        charges[contract.customer_id] = charges.get(contract.customer_id, 0) + total
    return charges


def _rated_cents(contract: Contract, products, book: rating.PricingBook, start: datetime, end: datetime) -> int:
    """The total of ``products``' lines for the contract's usage in [start, end) (0 for an empty window)."""
    if end <= start:
        return 0
    window = rating.InvoiceWindow(start=start, end=end, contract_starting_at=contract.starting_at)
    usage = _rollup_usage(contract.customer_id)
    return rating.invoice_total(rating.rate_invoice(window=window, products=products, book=book, usage=usage))


# --- Drafts --------------------------------------------------------------------------------------


def contract_drafts_ensure(*, contract: Contract, now: datetime | None = None) -> list[Invoice]:
    """Create a draft for every period of the contract that has started and has no invoice yet.

    Drafts whose window is no longer one of the contract's periods (its dates were edited) are
    removed; closed invoices are never touched. Returns the drafts this call created.
    """
    return _contracts_drafts_ensure([contract], now=now or timezone.now())


def _contracts_drafts_ensure(contracts: Sequence[Contract], *, now: datetime) -> list[Invoice]:
    """`contract_drafts_ensure` for many contracts in a constant number of queries: one read of their
    regular invoices, one delete of the stale drafts (and their lines), one insert of the missing ones
    (prepared by the `register_draft_preparer` hooks first: billing.collection's currency). A draft
    created concurrently wins (the unique contract, period and kind; ON CONFLICT DO NOTHING)."""
    if not contracts:
        return []
    rows = Invoice.objects.filter(contract__in=[contract.pk for contract in contracts], kind=Invoice.Kind.REGULAR)
    by_contract: dict[object, list[tuple]] = {}
    for row in rows.values_list("pk", "contract_id", "status", "period_start", "period_end"):
        by_contract.setdefault(row[1], []).append(row)
    stale: list = []
    missing: list[Invoice] = []
    for contract in contracts:
        expected = periods.periods(
            contract_start=contract.starting_at,
            contract_end=contract.ending_before,
            schedule=contract.usage_statement_day,
            until=now,
        )
        windows = set(expected)
        mine = by_contract.get(contract.pk, [])
        gone = {
            pk for pk, _, status, start, end in mine if status == Invoice.Status.DRAFT and (start, end) not in windows
        }
        stale += gone
        existing = {start for pk, _, _, start, _ in mine if pk not in gone}
        missing += [
            Invoice(
                organization_id=contract.organization_id,
                customer_id=contract.customer_id,
                contract=contract,
                period_start=start,
                period_end=end,
            )
            for start, end in expected
            if start not in existing
        ]
    if stale:
        InvoiceLine.objects.filter(invoice_id__in=stale).delete()
        Invoice.objects.filter(pk__in=stale, status=Invoice.Status.DRAFT).delete()
    if not missing:
        return []
    for prepare in _draft_preparers:
        prepare(drafts=missing)
    Invoice.objects.bulk_create(missing, ignore_conflicts=True)
    inserted = set(Invoice.objects.filter(pk__in=[draft.pk for draft in missing]).values_list("pk", flat=True))
    return [draft for draft in missing if draft.pk in inserted]  # uuids made here: present means ours


def customers_with_drafts(*, organization_id=None, rate_card_id=None) -> list[int]:
    """Customers with a draft invoice (of the organization, or on contracts using the rate card)."""
    drafts = Invoice.objects.filter(status=Invoice.Status.DRAFT)
    if organization_id is not None:
        drafts = drafts.filter(organization_id=organization_id)
    if rate_card_id is not None:
        drafts = drafts.filter(contract__rate_card_id=rate_card_id)
    return sorted(set(drafts.values_list("customer_id", flat=True)))


def drafts_refresh_later(*, organization_id=None, rate_card_id=None) -> None:
    """After commit, queue a recompute of the drafts a pricing change affects."""

    def queue():
        schedule_drafts_recompute(customers_with_drafts(organization_id=organization_id, rate_card_id=rate_card_id))

    transaction.on_commit(queue)


def customers_drafts_ensure(*, customer_ids, now: datetime | None = None) -> list[Contract]:
    """Make sure every started contract of these customers has its drafts (periods and corrections).
    Returns those contracts."""
    now = now or timezone.now()
    contracts = list(Contract.objects.filter(customer_id__in=list(customer_ids), starting_at__lte=now))
    _contracts_drafts_ensure(contracts, now=now)
    _corrections_ensure(contracts, now=now)
    return contracts


def customer_drafts_ensure(*, customer_id: int, now: datetime | None = None) -> None:
    customers_drafts_ensure(customer_ids=[customer_id], now=now)


# --- Corrections: late usage of an ended contract ------------------------------------------------


def _late_usage(contract: Contract, others: Sequence[Contract] | None = None) -> list[tuple[datetime, object]]:
    """(billing month, event) of the usage an ended contract's finalized periods missed: events that
    occurred in the contract and arrived once its last period was finalized, billed in the month
    they arrived in (their billing hour: billing.metering) unless another contract of the customer
    covers that hour (then they are on its draft already)."""
    end = contract.ending_before
    if end is None:
        return []
    last = (
        Invoice.objects.filter(contract=contract, kind=Invoice.Kind.REGULAR, period_end=end, finalized_at__isnull=False)
        .exclude(status=Invoice.Status.DRAFT)
        .first()
    )
    if last is None:  # its last period is still a draft: late usage lands there
        return []
    others = [
        other
        for other in (others or Contract.objects.filter(customer_id=contract.customer_id))
        if other.pk != contract.pk
    ]
    result = []
    for event in event_selectors.late_event_rows(
        customer_id=contract.customer_id,
        occurred_from=contract.starting_at,
        occurred_before=end,
        received_from=last.finalized_at,
        after_event_id=last.ledger_watermark,
    ):
        hour = max(hour_floor(event.received_at), end)
        if any(
            other.starting_at <= hour and (other.ending_before is None or hour < other.ending_before)
            for other in others
        ):
            continue
        result.append((hour.replace(day=1, hour=0), event))
    return result


def _corrections_ensure(contracts: Sequence[Contract], *, now: datetime) -> None:
    """`contract_corrections_ensure` for the ended contracts among ``contracts`` whose last period is
    closed (one query finds them; late usage can only be missed by a closed period)."""
    ended = [contract for contract in contracts if contract.ending_before is not None and contract.ending_before <= now]
    if not ended:
        return
    closed = set(
        Invoice.objects.filter(
            contract__in=[contract.pk for contract in ended],
            kind=Invoice.Kind.REGULAR,
            finalized_at__isnull=False,
            period_end=F("contract__ending_before"),
        )
        .exclude(status=Invoice.Status.DRAFT)
        .values_list("contract_id", flat=True)
    )
    for contract in ended:
        if contract.pk in closed:
            others = [other for other in contracts if other.customer_id == contract.customer_id]
            contract_corrections_ensure(contract=contract, others=others, now=now)


def contract_corrections_ensure(*, contract: Contract, others=None, now: datetime | None = None) -> list[Invoice]:
    """A correction draft for each month in which late usage of the ended contract arrived."""
    now = now or timezone.now()
    if contract.ending_before is None or contract.ending_before > now:
        return []
    created = []
    for month in sorted({month for month, _ in _late_usage(contract, others)}):
        if Invoice.objects.filter(contract=contract, kind=Invoice.Kind.CORRECTION, period_start=month).exists():
            continue
        try:
            with transaction.atomic():
                created.append(
                    Invoice.objects.create(
                        organization_id=contract.organization_id,
                        customer_id=contract.customer_id,
                        contract=contract,
                        kind=Invoice.Kind.CORRECTION,
                        period_start=month,
                        period_end=month + relativedelta(months=1),
                    )
                )
        except IntegrityError:  # created concurrently
            continue
    return created


def _correction_lines(invoice: Invoice, pricing: Pricing) -> tuple[list[rating.Line], dict]:
    """The late usage that arrived in the correction's month, rated in the contract's own periods
    with the rates in force when it occurred; usage and composite products only (the fixed and
    subscription charges were billed with the periods)."""
    contract = invoice.contract
    definitions, book, products = pricing
    usage_products = [definition for definition in definitions if definition.type in USAGE_CHARGE_TYPES]
    events = [event for month, event in _late_usage(contract) if month == invoice.period_start]
    lines: list[rating.Line] = []
    for start, end in periods.periods(
        contract_start=contract.starting_at,
        contract_end=contract.ending_before,
        schedule=contract.usage_statement_day,
        until=contract.ending_before,
    ):
        mine = [event for event in events if start <= event.occurred_at < end]
        if not mine:
            continue
        window = rating.InvoiceWindow(start=start, end=end, contract_starting_at=contract.starting_at)
        lines += rating.rate_invoice(window=window, products=usage_products, book=book, usage=_event_usage(mine))
    return lines, products


def _event_usage(events) -> rating.UsageLookup:
    """Rating's usage lookup over a few events (a correction's), measured as ingest measures them."""

    def usage(product: rating.ProductDefinition, plan: Sequence[rating.Segment]):
        measured = accumulate(
            [product.metric], events, lambda customer, occurred_at, received_at: hour_floor(occurred_at)
        )
        partials: dict = {}
        distinct: dict = {}
        for (_, _, hour, group), partial in measured.partials.items():
            index = rating.segment_index(plan, hour)
            if index is not None:
                key = (rating.regroup(group, product.presentation_group_key), index)
                partials[key] = partials.get(key, rating.Partial()).merge(partial)
        for (_, _, hour, group), value in measured.distinct:
            index = rating.segment_index(plan, hour)
            if index is not None:
                distinct.setdefault((rating.regroup(group, product.presentation_group_key), index), set()).add(value)
        return [
            rating.UsageCell(
                group=group,
                segment_index=index,
                quantity=rating.final_quantity(
                    product.metric.aggregation_type, partial, len(distinct.get((group, index), ()))
                ),
                tokens=partial.tokens,
            )
            for (group, index), partial in partials.items()
        ]

    return usage


class InvoiceTooLarge(ValidationError):
    """A line does not fit the invoice's columns: a quantity or unit price of 10^26 / 10^18 or more
    (12 decimal places kept), or an amount beyond a 64-bit count of cents. The draft keeps its last
    lines; the message names the product, so the usage or price at fault can be corrected."""


QUANTITY_LIMIT = Decimal(10) ** 26  # InvoiceLine.quantity, tier bounds: 38 digits, 12 after the point
UNIT_PRICE_LIMIT = Decimal(10) ** 18  # InvoiceLine.unit_price: 30 digits, 12 after the point
CENTS_LIMIT = 2**63  # bigint


def _storage_problem(lines: Sequence[rating.Line], products: dict) -> str:
    for line in lines:
        name = products[line.product_id].name
        bounds = [line.quantity, line.tier_floor or 0, line.tier_ceiling or 0]
        if any(abs(value) >= QUANTITY_LIMIT for value in bounds):
            return f"{name}: a quantity of {line.quantity:.6E} is beyond what an invoice line holds (10^26)."
        if abs(line.unit_price) >= UNIT_PRICE_LIMIT:
            return f"{name}: a unit price of {line.unit_price:.6E} cents is beyond what an invoice line holds."
        if abs(line.amount_cents) >= CENTS_LIMIT:
            return f"{name}: an amount of {line.amount_cents:.6E} cents is beyond what an invoice holds."
    if abs(rating.invoice_total(lines)) >= CENTS_LIMIT:
        return "The total is beyond what an invoice holds."
    return ""


def _recompute_locked(invoice: Invoice) -> Invoice:
    """Recompute one locked draft (``invoice.contract`` loaded); InvoiceTooLarge when a line does not fit."""
    return _drafts_recompute_locked([invoice], strict=True)[0]


def _drafts_recompute_locked(drafts: Sequence[Invoice], *, strict: bool = False) -> list[Invoice]:
    """Recompute locked drafts (each with its ``contract`` loaded) set-based: their lines computed
    together (`_drafts_lines`), one delete of their old lines, one insert of the new ones, the
    adjusters of the customers they concern, one update of the totals. Returns the drafts
    recomputed. A draft whose lines do not fit an invoice is logged and keeps its last lines while
    the others are recomputed; with ``strict`` (one draft: the admin's recompute, finalization) it
    raises InvoiceTooLarge instead."""
    computed = _drafts_lines(drafts)
    done: list[tuple[Invoice, list[rating.Line]]] = []
    for invoice in drafts:
        lines, products = computed[invoice.pk]
        problem = _storage_problem(lines, products)
        if problem:
            logger.error("draft %s of customer %s not recomputed: %s", invoice.pk, invoice.customer_id, problem)
            if strict:
                raise InvoiceTooLarge({"lines": f"The draft cannot be recomputed. {problem}"})
            continue
        done.append((invoice, lines))
    if not done:
        return []
    _lines_delete([invoice.pk for invoice, _ in done])
    adjusted = _adjusted_customers({invoice.customer_id for invoice, _ in done})
    in_scope = set().union(*adjusted.values())
    rows: list[InvoiceLine] = []  # of drafts an adjuster sees: saved with their ids (credits point at lines)
    plain_rows: list[InvoiceLine] = []
    for invoice, lines in done:
        products = computed[invoice.pk][1]
        (rows if invoice.customer_id in in_scope else plain_rows).extend(
            _line_row(invoice, position, line, products[line.product_id]) for position, line in enumerate(lines, 1)
        )
    saved_by_invoice: dict[object, list[InvoiceLine]] = {}
    for row in InvoiceLine.objects.bulk_create(rows, batch_size=2000):
        saved_by_invoice.setdefault(row.invoice_id, []).append(row)
    _lines_insert(plain_rows)
    now = timezone.now()
    plain: list[Invoice] = []
    # Adjusters run draft by draft in (customer, period, id) order, each draft saved before the next:
    # a customer's credit is shared by its drafts in that order (billing.credits.invoicing).
    for invoice, lines in sorted(done, key=lambda item: _draft_order(item[0])):
        invoice.total_cents = rating.invoice_total(lines)
        invoice.computed_at = now
        applicable = [adjuster for adjuster in _adjusters if invoice.customer_id in adjusted[adjuster]]
        credits = sum(
            int(adjuster(invoice=invoice, lines=saved_by_invoice.get(invoice.pk, []))) for adjuster in applicable
        )
        invoice.credits_applied_cents = max(0, min(credits, max(invoice.total_cents, 0)))
        invoice.amount_due_cents = invoice.total_cents - invoice.credits_applied_cents
        if applicable:
            invoice.save(update_fields=[*_TOTALS, "updated_at"])
        else:
            invoice.updated_at = now
            plain.append(invoice)
    if plain:
        _totals_update(plain, now)
    return [invoice for invoice, _ in done]


def _lines_delete(invoice_ids: list) -> None:
    """Delete the drafts' lines in one statement per table: their line credits (billing.credits,
    cascaded from the lines) then the lines. Django's collector would read the lines back and delete
    them 100 at a time."""
    credit = InvoiceLine._meta.get_field("credit").related_model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {credit} WHERE invoice_id = ANY(%s::uuid[])", [invoice_ids])  # noqa: S608
        cursor.execute(f"DELETE FROM {InvoiceLine._meta.db_table} WHERE invoice_id = ANY(%s::uuid[])", [invoice_ids])  # noqa: S608


def _lines_insert(rows: list[InvoiceLine]) -> None:
    """Insert invoice lines in one INSERT ... SELECT FROM unnest(one array per column), without
    reading their ids back: Django's bulk_create renders every value of every row as SQL text,
    which dominated a batch of a few hundred lines. The rows are complete as `_line_row` builds
    them (no field of InvoiceLine is filled in on save)."""
    if not rows:
        return
    model = InvoiceLine
    fields = [field for field in model._meta.concrete_fields if not field.primary_key]
    columns, arrays = [], []
    for field in fields:  # the attribute values as they are: uuid, int, str, Decimal, datetime, None
        values = [getattr(row, field.attname) for row in rows]
        if field.get_internal_type() == "JSONField":
            values = [json.dumps(value) for value in values]
        columns.append(f"%s::{field.db_type(connection)}[]")
        arrays.append(values)
    names = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)} ({names}) "  # noqa: S608
            f"SELECT * FROM unnest({', '.join(columns)})",
            arrays,
        )


def _totals_update(invoices: list[Invoice], now: datetime) -> None:
    """One UPDATE of the drafts' totals from arrays (Django's bulk_update builds a CASE per row and
    field, which costs more Python than the whole rating of a batch)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Invoice._meta.db_table} AS i SET total_cents = v.total, "  # noqa: S608
            "credits_applied_cents = v.credits, amount_due_cents = v.due, computed_at = %s, updated_at = %s "
            "FROM unnest(%s::uuid[], %s::bigint[], %s::bigint[], %s::bigint[]) AS v(id, total, credits, due) "
            "WHERE i.id = v.id",
            [
                now,
                now,
                [invoice.pk for invoice in invoices],
                [invoice.total_cents for invoice in invoices],
                [invoice.credits_applied_cents for invoice in invoices],
                [invoice.amount_due_cents for invoice in invoices],
            ],
        )


_TOTALS = ["total_cents", "credits_applied_cents", "amount_due_cents", "computed_at"]


def _adjusted_customers(customer_ids: set) -> dict[InvoiceAdjuster, set]:
    """Per adjuster, the customers among ``customer_ids`` it may change (its scope: one query), or all."""
    result = {}
    for adjuster in _adjusters:
        scope = _adjuster_scopes.get(adjuster)
        result[adjuster] = set(customer_ids) if scope is None else set(scope(customer_ids)) & customer_ids
    return result


def _line_row(invoice: Invoice, position: int, line: rating.Line, product: Product) -> InvoiceLine:
    return InvoiceLine(
        invoice=invoice,
        position=position,
        product_id=line.product_id,
        product_name=product.name,
        product_type=product.type,
        group_values=dict(line.group),
        presentation_group=rating.group_label(line.group),
        period_start=line.period_start,
        period_end=line.period_end,
        quantity=_fit(line.quantity, 12),
        quantity_unit=_quantity_unit(line, product),
        unit_price=_fit(line.unit_price, 12),
        rate_type=line.rate_type,
        tier_index=line.tier_index,
        tier_floor=line.tier_floor,
        tier_ceiling=line.tier_ceiling,
        amount_cents=line.amount_cents,
        model=dict(line.group).get("model") or "" if line.cost_microdollars is not None else "",
        cost_microdollars=line.cost_microdollars,
        markup=line.markup,
        tokens=line.tokens,
        allowance_cents=None if line.allowance_cents is None else _fit(line.allowance_cents, 12),
    )


def _quantity_unit(line: rating.Line, product: Product) -> str:
    if line.rate_type == rating.RateType.COST_PLUS:
        return "cents of cost" if line.tier_index is None else "cents marked up"
    return product.conversion_name


def _fit(value: Decimal, places: int) -> Decimal:
    """Stored quantities and unit prices keep 12 decimal places (amounts were computed exactly before).
    Quantized with rating's precision: the default 28 digits would refuse a quantity above 10^16."""
    with localcontext() as ctx:
        ctx.prec = rating.PRECISION
        return value.quantize(Decimal(1).scaleb(-places), rounding=rating.ROUNDING)


@transaction.atomic
def invoice_recompute(*, invoice: Invoice) -> Invoice:
    """Recompute a draft's lines and totals from rollups. Closed invoices are left as they are."""
    invoice = Invoice.objects.select_for_update().select_related("contract").get(pk=invoice.pk)
    if not invoice.is_draft:
        return invoice
    return _recompute_locked(invoice)


def customer_drafts_recompute(*, customer_id: int, now: datetime | None = None) -> list[Invoice]:
    """`customers_drafts_recompute` of one customer."""
    return customers_drafts_recompute(customer_ids=[customer_id], now=now)


def _draft_order(invoice: Invoice) -> tuple:
    """The order drafts are returned in: by customer, period and id."""
    return invoice.customer_id, invoice.period_start, str(invoice.pk)


def customers_drafts_recompute(*, customer_ids, now: datetime | None = None) -> list[Invoice]:
    """Make sure the customers' current drafts exist, then recompute them all in one set-based pass.
    Idempotent. Returns the drafts recomputed, by customer, period and id.

    The queries do not grow with the number of customers (an ingest batch over 100 contracted
    customers costs about what one customer does): drafts ensured together, pricing loaded once
    per rate card, the usage of every draft and product in one rollup query, one delete and one
    insert of lines, one update of the totals; adjusters (credits) run only for the customers in
    their scope (billing.credits: those with credit or an auto top-up).

    The drafts are locked (SELECT ... FOR UPDATE, in id order, so two passes never deadlock and a
    finalization, which locks one draft, waits or is waited for). While a rollup rebuild of an
    organization runs, its drafts keep their lines (its rollups are incomplete): the rebuild
    recomputes them when it is done. A draft whose lines do not fit (InvoiceTooLarge) keeps its
    last lines and the other drafts are recomputed.

    Should the pass fail otherwise (anything but a database OperationalError, which the task retries
    whole), the customers are recomputed one by one, each in its own transaction, so one customer's
    failure does not keep the batch's other drafts stale; the first failure is raised at the end."""
    customer_ids = sorted({int(customer_id) for customer_id in customer_ids})
    if not customer_ids:
        return []
    try:
        return _customers_drafts_recompute(customer_ids, now)
    except OperationalError:
        raise
    except Exception:
        if len(customer_ids) == 1:
            raise
        logger.exception("recompute of %d customers' drafts failed; recomputing them one by one", len(customer_ids))
    recomputed: list[Invoice] = []
    failures: list[Exception] = []
    for customer_id in customer_ids:
        try:
            recomputed += _customers_drafts_recompute([customer_id], now)
        except OperationalError:
            raise
        except Exception as error:
            logger.exception("drafts of customer %s not recomputed", customer_id)
            failures.append(error)
    if failures:
        raise failures[0]
    return sorted(recomputed, key=_draft_order)


def _customers_drafts_recompute(customer_ids: list[int], now: datetime | None) -> list[Invoice]:
    contracts = {contract.pk: contract for contract in customers_drafts_ensure(customer_ids=customer_ids, now=now)}
    rebuilding = RollupRebuild.objects.filter(
        status__in=[RollupRebuild.Status.QUEUED, RollupRebuild.Status.RUNNING]
    ).values("organization_id")
    with transaction.atomic():
        stale_marks_take(customer_ids)
        drafts = list(
            Invoice.objects.select_for_update()
            .filter(customer_id__in=customer_ids, status=Invoice.Status.DRAFT)
            .exclude(organization_id__in=rebuilding)
            .order_by("pk")
        )
        unknown = {draft.contract_id for draft in drafts} - set(contracts)  # not started at ``now``
        contracts.update(Contract.objects.in_bulk(unknown) if unknown else {})
        for draft in drafts:
            draft.contract = contracts[draft.contract_id]
        recomputed = _drafts_recompute_locked(drafts)
    return sorted(recomputed, key=_draft_order)


def customers_adjusted_drafts_recompute(*, customer_ids) -> list[Invoice]:
    """Of ``customer_ids``, recompute now the drafts of the customers an invoice adjuster acts on
    (credits: the customers with credit or an auto top-up, whose balance and top-up follow their
    drafts); the other customers' drafts stay marked stale for their next read. What ingest runs
    without a worker (billing.recompute.queue_draft_recompute)."""
    ids = {int(customer_id) for customer_id in customer_ids}
    acting = set().union(*_adjusted_customers(ids).values()) if ids else set()
    return customers_drafts_recompute(customer_ids=acting) if acting else []


def drafts_refresh(*, organization_id=None, customer_ids=None) -> int:
    """Before drafts are read: recompute those marked stale (`StaleDrafts`) of the customers shown
    (of the organization, or of every organization without one), RECOMPUTE_CHUNK customers per
    set-based pass. One indexed read when nothing is stale. A customer whose recompute fails is
    logged and stays marked; the read shows its drafts as stored. Returns the customers refreshed."""
    stale = stale_draft_customers(organization_id=organization_id, customer_ids=customer_ids)
    refreshed = 0
    for start in range(0, len(stale), RECOMPUTE_CHUNK):
        chunk = stale[start : start + RECOMPUTE_CHUNK]
        # Inside a caller's transaction, a savepoint keeps a failure from breaking it; outside one,
        # each customer's drafts commit on their own (`customers_drafts_recompute` isolates failures).
        try:
            with transaction.atomic() if connection.in_atomic_block else nullcontext():
                customers_drafts_recompute(customer_ids=chunk)
        except Exception:
            logger.exception("stale drafts of %d customers not refreshed before a read", len(chunk))
            continue
        refreshed += len(chunk)
    return refreshed


# --- Finalization and status -----------------------------------------------------------------------


def _next_number() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('billing_invoice_number_seq')")
        (value,) = cursor.fetchone()
    return f"INV-{value:06d}"


@transaction.atomic
def invoice_finalize(*, invoice: Invoice, now: datetime | None = None) -> Invoice:
    """Close a draft whose period has ended: last recompute, number, status finalized; open the next draft.

    Holds the organization's exclusive billing lock, so every ingest that started before it is
    counted and every ingest after it sees the period as closed.
    """
    now = now or timezone.now()
    lock_organization_exclusive(invoice.organization_id)
    invoice = Invoice.objects.select_for_update().select_related("contract").get(pk=invoice.pk)
    if not invoice.is_draft:
        return invoice
    if rebuild_running(invoice.organization_id):
        raise ValidationError(
            {"status": "Usage rollups of this organization are being rebuilt; finalize once the rebuild is done."}
        )
    if invoice.period_end > now:
        raise ValidationError({"status": "The period has not ended yet; a draft is finalized after its period."})
    _recompute_locked(invoice)
    invoice.number = _next_number()
    invoice.status = Invoice.Status.FINALIZED
    invoice.finalized_at = now
    invoice.ledger_watermark = event_selectors.latest_event_id(organization=invoice.organization_id)
    invoice.save(update_fields=["number", "status", "finalized_at", "ledger_watermark", "updated_at"])
    contract_drafts_ensure(contract=invoice.contract, now=now)
    customer_id = invoice.customer_id
    transaction.on_commit(lambda: schedule_draft_recompute(customer_id))
    return invoice


def invoices_finalize_due(*, now: datetime | None = None) -> list[Invoice]:
    """Finalize every draft whose period ended at least INVOICE_FINALIZE_GRACE_HOURS ago."""
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.INVOICE_FINALIZE_GRACE_HOURS)
    rebuilding = RollupRebuild.objects.filter(
        status__in=[RollupRebuild.Status.QUEUED, RollupRebuild.Status.RUNNING]
    ).values("organization_id")
    due = (
        Invoice.objects.filter(status=Invoice.Status.DRAFT, period_end__lte=cutoff)
        .exclude(organization_id__in=rebuilding)  # finalized on a later run, from complete rollups
        .order_by("period_end")
    )
    finalized = []
    for invoice in due:
        try:
            finalized.append(invoice_finalize(invoice=invoice, now=now))
        except InvoiceTooLarge:  # logged; it stays a draft, and the other due drafts are finalized
            continue
    return finalized


_TRANSITIONS = {
    Invoice.Status.FINALIZED: {Invoice.Status.PAID, Invoice.Status.VOID, Invoice.Status.UNCOLLECTIBLE},
    Invoice.Status.UNCOLLECTIBLE: {Invoice.Status.PAID, Invoice.Status.VOID},
}


@transaction.atomic
def invoice_set_status(*, invoice: Invoice, status: str) -> Invoice:
    """Mark a finalized invoice paid, void or uncollectible (drafts are finalized first)."""
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if status not in _TRANSITIONS.get(invoice.status, set()):
        raise ValidationError({"status": f"A {invoice.status} invoice cannot become {status}."})
    invoice.status = status
    invoice.save(update_fields=["status", "updated_at"])
    return invoice
