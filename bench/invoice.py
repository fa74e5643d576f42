"""Draft-invoice recompute time after 10k and after 1M ingested events, as a ratio (target <= 2x).

    .venv/bin/python bench/invoice.py [--small 10000] [--large 1000000] [--repeat 15]

1. Prepares a scratch database (`tokenledger_bench` on the embedded or configured PostgreSQL) and a
   fresh organization with a customer, two billable metrics (SUM of tokens grouped by user, COUNT of
   requests), four products (tiered usage with a quantity conversion and a presentation group, flat
   usage, a 10 % composite, a subscription), a rate card and a contract on last month.
2. Ingests `--small` events spread over last month: ledger rows by COPY, then the real ingest hook
   (`billing.metering.aggregate_usage`, the function events calls inside its transaction) on them.
3. Times `invoice_recompute` of last month's draft (median of `--repeat` runs after two warm-ups),
   after a VACUUM ANALYZE of the rollups, as autovacuum would have run after the ingest burst.
4. Ingests more events up to `--large` in total and times the recompute again.
5. Prints both times and their ratio. The recompute reads hourly rollups only, so its cost follows
   hours x groups x products, not the number of raw events: the ratio should stay near 1.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "tokenledger_bench"
USERS = 10
BATCH = 10_000


def setup_django():
    os.environ["DATABASE_NAME"] = BENCH_DB
    os.environ["REDIS_URL"] = ""  # self-contained: Celery eager, local cache
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def prepare():
    from django.core.management import call_command
    from django.utils import timezone

    from accounts.services import organization_get_or_create
    from billing import services
    from billing.models import Invoice
    from events.models import Customer

    call_command("migrate", verbosity=0, interactive=False)
    organization, _ = organization_get_or_create(name=f"Invoice Bench {uuid.uuid4().hex[:8]}", plan="pro")
    customer = Customer.objects.create(organization=organization, external_id="bench-customer", name="Bench Customer")
    tokens = services.billable_metric_create(
        organization=organization, name="tokens", aggregation_type="SUM", aggregation_key="tokens",
        event_type_filter={"in_values": ["completion"]}, group_keys=["user_id"],
    )
    requests = services.billable_metric_create(organization=organization, name="requests", aggregation_type="COUNT")
    token_product = services.product_create(
        organization=organization, name="Tokens (millions)", billable_metric=tokens, presentation_group_key=["user_id"],
        quantity_conversion={"conversion_factor": Decimal(1_000_000), "operation": "DIVIDE"},
    )
    request_product = services.product_create(organization=organization, name="Requests", billable_metric=requests)
    support = services.product_create(
        organization=organization, name="Support", type="composite", composite_products=[token_product, request_product]
    )
    platform = services.product_create(organization=organization, name="Platform", type="subscription")
    card = services.rate_card_create(organization=organization, name="Bench card")
    this_month = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    since = last_month - timedelta(days=365)
    services.rate_create(
        rate_card=card, product=token_product, starting_at=since, rate_type="TIERED",
        tiers=[{"size": Decimal(10), "price": Decimal(60)}, {"price": Decimal(45)}],
    )
    services.rate_create(rate_card=card, product=request_product, starting_at=since, price=Decimal("0.02"))
    services.rate_create(rate_card=card, product=support, starting_at=since, price=Decimal("0.1"))
    services.rate_create(rate_card=card, product=platform, starting_at=since, price=Decimal(9900))
    services.contract_create(organization=organization, customer=customer, rate_card=card, starting_at=last_month)
    draft = Invoice.objects.get(customer=customer, period_start=last_month)
    return organization, customer, draft


def ingest(organization, customer, draft, count: int, rng: random.Random) -> float:
    """COPY ``count`` ledger rows, then run the ingest hook on them in batches. Returns seconds taken."""
    from django.db import connection, transaction
    from django.utils import timezone

    from billing.metering import aggregate_usage
    from events.hooks import RecordedEvent

    span = int((draft.period_end - draft.period_start).total_seconds())
    started = time.perf_counter()
    done = 0
    while done < count:
        size = min(BATCH, count - done)
        now = timezone.now()
        rows = []
        for _ in range(size):
            occurred = draft.period_start + timedelta(seconds=rng.randrange(span))
            properties = {"tokens": rng.randint(50, 4000), "user_id": f"user-{rng.randrange(USERS)}"}
            rows.append((occurred, properties))
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence('events_usageevent', 'id'), "
                    "nextval(pg_get_serial_sequence('events_usageevent', 'id')) + %s - 1)",
                    [size],
                )
                last_id = cursor.fetchone()[0]
            first_id = last_id - size + 1
            raw = connection.connection
            with raw.cursor() as cursor, cursor.copy(
                "COPY events_usageevent (id, organization_id, customer_id, event_type, occurred_at, received_at, "
                "idempotency_key, source, properties, flow_id, feature_key, usage_units, cost_microdollars, "
                "revenue_microdollars, unpriced, meta) FROM STDIN"
            ) as copy:
                for offset, (occurred, properties) in enumerate(rows):
                    copy.write_row(
                        (first_id + offset, organization.pk, customer.pk, "completion", occurred, now,
                         f"bench-{first_id + offset}", "internal", orjson.dumps(properties).decode(), "", "", None,
                         0, 0, False, "{}")
                    )
            aggregate_usage(
                organization=organization,
                events=[
                    RecordedEvent(
                        id=first_id + offset, organization_id=organization.pk, customer_id=customer.pk,
                        event_type="completion", occurred_at=occurred, properties=properties,
                        cost_microdollars=0, revenue_microdollars=0,
                    )
                    for offset, (occurred, properties) in enumerate(rows)
                ],
            )
        done += size
        if count >= 100_000 and done % 100_000 == 0:
            print(f"  ingested {done:,} / {count:,}", flush=True)
    return time.perf_counter() - started


def vacuum() -> None:
    """Steady state: what autovacuum does between bursts (rollup upserts leave dead row versions)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE billing_usagerollup")
        cursor.execute("VACUUM ANALYZE billing_invoiceline")


def time_recompute(draft, repeat: int) -> tuple[float, int]:
    from billing.invoicing import invoice_recompute

    vacuum()
    for _ in range(2):
        invoice_recompute(invoice=draft)
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        invoice = invoice_recompute(invoice=draft)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings), invoice.total_cents


def counts(organization) -> tuple[int, int]:
    from billing.models import UsageRollup
    from events.models import UsageEvent

    return (
        UsageEvent.objects.filter(organization=organization).count(),
        UsageRollup.objects.filter(organization=organization).count(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    setup_django()
    organization, customer, draft = prepare()
    rng = random.Random(20260101)

    seconds = ingest(organization, customer, draft, args.small, rng)
    events, rollups = counts(organization)
    small_time, small_total = time_recompute(draft, args.repeat)
    print(f"after {events:>9,} events ({rollups:,} rollup rows, ingest {events / seconds:,.0f} events/s): "
          f"recompute {small_time * 1000:.1f} ms, draft total {small_total:,} cents", flush=True)

    seconds = ingest(organization, customer, draft, args.large - args.small, rng)
    events, rollups = counts(organization)
    large_time, large_total = time_recompute(draft, args.repeat)
    print(f"after {events:>9,} events ({rollups:,} rollup rows, ingest {(args.large - args.small) / seconds:,.0f} "
          f"events/s): recompute {large_time * 1000:.1f} ms, draft total {large_total:,} cents")

    ratio = large_time / small_time
    verdict = "OK" if ratio <= 2 else "ABOVE TARGET"
    print(f"ratio (recompute after {args.large:,} / after {args.small:,} events): {ratio:.2f}x "
          f"(target <= 2x) {verdict}")


if __name__ == "__main__":
    main()
