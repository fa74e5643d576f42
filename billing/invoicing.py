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

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from events import selectors as event_selectors

from . import periods, rating
from .definitions import override_version, product_definition, rate_version
from .metering import accumulate, hour_floor, lock_organization_exclusive, rebuild_running
from .models import Contract, Invoice, InvoiceLine, Product, Rate, RollupRebuild, UsageRollup
from .recompute import schedule_draft_recompute, schedule_drafts_recompute
from .selectors import usage_cells

logger = logging.getLogger(__name__)

InvoiceAdjuster = Callable[..., int]  # adjuster(invoice=Invoice, lines=[InvoiceLine]) -> credits applied (cents)
_adjusters: list[InvoiceAdjuster] = []


def register_invoice_adjuster(adjuster: InvoiceAdjuster) -> InvoiceAdjuster:
    """Register a function that applies credits to a draft (inside the recompute transaction)."""
    if adjuster not in _adjusters:
        _adjusters.append(adjuster)
    return adjuster


# --- Pricing of one contract ---------------------------------------------------------------------


def contract_pricing(contract: Contract) -> tuple[list[rating.ProductDefinition], rating.PricingBook, dict]:
    """The products priced by the contract's rate card, their rates and the contract's overrides."""
    rates = list(
        Rate.objects.filter(rate_card_id=contract.rate_card_id)
        .select_related("product__billable_metric")
        .prefetch_related("tiers")
    )
    book = rating.PricingBook()
    products: dict[object, Product] = {}
    for rate in rates:
        products[rate.product_id] = rate.product
        book.rates.setdefault(rate.product_id, []).append(rate_version(rate))
    for override in contract.overrides.all():
        book.overrides.setdefault(override.product_id, []).append(override_version(override))
    composite_ids: dict[object, list] = {}
    through = Product.composite_products.through.objects.filter(from_product_id__in=list(products))
    for from_id, to_id in through.values_list("from_product_id", "to_product_id"):
        composite_ids.setdefault(from_id, []).append(to_id)
    definitions = [product_definition(product, composite_ids.get(pk, ())) for pk, product in products.items()]
    return definitions, book, products


def invoice_lines_compute(invoice: Invoice) -> tuple[list[rating.Line], dict]:
    if invoice.kind == Invoice.Kind.CORRECTION:
        return _correction_lines(invoice)
    contract = invoice.contract
    definitions, book, products = contract_pricing(contract)
    window = rating.InvoiceWindow(
        start=invoice.period_start, end=invoice.period_end, contract_starting_at=contract.starting_at
    )
    usage = _rollup_usage(invoice.customer_id)
    return rating.rate_invoice(window=window, products=definitions, book=book, usage=usage), products


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
        Contract.objects.filter(customer_id__in=list(active), starting_at__lt=end)
        .exclude(ending_before__lte=start)
        .prefetch_related("overrides")
    )
    for contract in contracts:
        definitions, book, _ = contract_pricing(contract)
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


def _create_draft(contract: Contract, start: datetime, end: datetime) -> Invoice:
    try:
        with transaction.atomic():
            return Invoice.objects.create(
                organization_id=contract.organization_id,
                customer_id=contract.customer_id,
                contract=contract,
                period_start=start,
                period_end=end,
            )
    except IntegrityError:  # created concurrently: the unique (contract, period_start, kind) row wins
        return Invoice.objects.get(contract=contract, period_start=start, kind=Invoice.Kind.REGULAR)


def contract_drafts_ensure(*, contract: Contract, now: datetime | None = None) -> list[Invoice]:
    """Create a draft for every period of the contract that has started and has no invoice yet.

    Drafts whose window is no longer one of the contract's periods (its dates were edited) are
    removed; closed invoices are never touched.
    """
    now = now or timezone.now()
    expected = periods.periods(
        contract_start=contract.starting_at,
        contract_end=contract.ending_before,
        schedule=contract.usage_statement_day,
        until=now,
    )
    windows = set(expected)
    invoices = Invoice.objects.filter(contract=contract, kind=Invoice.Kind.REGULAR)
    stale = invoices.filter(status=Invoice.Status.DRAFT).exclude(
        pk__in=[
            pk
            for pk, start, end in invoices.values_list("pk", "period_start", "period_end")
            if (start, end) in windows
        ]
    )
    InvoiceLine.objects.filter(invoice__in=stale).delete()
    stale.delete()
    existing = set(invoices.values_list("period_start", flat=True))
    return [_create_draft(contract, start, end) for start, end in expected if start not in existing]


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


def customer_drafts_ensure(*, customer_id: int, now: datetime | None = None) -> None:
    now = now or timezone.now()
    contracts = list(Contract.objects.filter(customer_id=customer_id, starting_at__lte=now))
    for contract in contracts:
        contract_drafts_ensure(contract=contract, now=now)
        contract_corrections_ensure(contract=contract, others=contracts, now=now)


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
    ):
        hour = max(hour_floor(event.received_at), end)
        if any(
            other.starting_at <= hour and (other.ending_before is None or hour < other.ending_before)
            for other in others
        ):
            continue
        result.append((hour.replace(day=1, hour=0), event))
    return result


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


def _correction_lines(invoice: Invoice) -> tuple[list[rating.Line], dict]:
    """The late usage that arrived in the correction's month, rated in the contract's own periods
    with the rates in force when it occurred; usage and composite products only (the fixed and
    subscription charges were billed with the periods)."""
    contract = invoice.contract
    definitions, book, products = contract_pricing(contract)
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
    lines, products = invoice_lines_compute(invoice)
    problem = _storage_problem(lines, products)
    if problem:
        logger.error("draft %s of customer %s not recomputed: %s", invoice.pk, invoice.customer_id, problem)
        raise InvoiceTooLarge({"lines": f"The draft cannot be recomputed. {problem}"})
    InvoiceLine.objects.filter(invoice=invoice).delete()
    rows = []
    for position, line in enumerate(lines, start=1):
        product = products[line.product_id]
        rows.append(
            InvoiceLine(
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
        )
    saved = InvoiceLine.objects.bulk_create(rows)
    invoice.total_cents = rating.invoice_total(lines)
    credits = sum(int(adjuster(invoice=invoice, lines=saved)) for adjuster in _adjusters)
    invoice.credits_applied_cents = max(0, min(credits, max(invoice.total_cents, 0)))
    invoice.amount_due_cents = invoice.total_cents - invoice.credits_applied_cents
    invoice.computed_at = timezone.now()
    invoice.save(
        update_fields=["total_cents", "credits_applied_cents", "amount_due_cents", "computed_at", "updated_at"]
    )
    return invoice


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
    """Make sure the customer's current drafts exist, then recompute each. Idempotent.

    While a rollup rebuild of the organization runs, drafts keep their lines (its rollups are
    incomplete): the rebuild recomputes them when it is done."""
    customer_drafts_ensure(customer_id=customer_id, now=now)
    organization_id = Contract.objects.filter(customer_id=customer_id).values_list("organization_id", flat=True).first()
    if organization_id is None or rebuild_running(organization_id):  # no contract: no drafts
        return []
    drafts = Invoice.objects.filter(customer_id=customer_id, status=Invoice.Status.DRAFT).order_by("period_start")
    recomputed = []
    for invoice in drafts:
        try:
            recomputed.append(invoice_recompute(invoice=invoice))
        except InvoiceTooLarge:  # logged; the customer's other drafts still follow their usage
            continue
    return recomputed


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
    invoice.save(update_fields=["number", "status", "finalized_at", "updated_at"])
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
