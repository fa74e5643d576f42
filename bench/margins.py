"""Margin reads against the size of the ledger: `GET /api/margins` p95 at 10k customers / 10M events
against 1k customers / 100k events, measured in the same run.

    .venv/bin/python bench/margins.py [--scale 1.0] [--requests 40]

1. Prepares a scratch database (`tokenledger_bench_margins`): migrations, then two Pro organizations,
   "small" (1k customers, 100k events) and "large" (10k customers, 10M events); `--scale` multiplies
   both customer and event counts (0.01: 10 / 100 customers, 1k / 100k events) for a quick check on
   a shared machine. Events are spread over the three months the table reads (the current month
   and the two before), cost only; each organization has 200 customers (scaled the same way, at
   least 5) mapped to Stripe customers with a paid invoice per month, so both tables show the same
   number of rows and what differs is the ledger behind them.
2. Loads the ledger by COPY (no vendor responses: the table does not read them) and fills the usage
   rollups through their rebuild path (`events.services.rollups.usage_rollups_rebuild`), as the
   backfill migration or the `rebuild_usage_rollups` command would.
3. Times `--requests` requests of the margin table per organization through Django's test client
   (session of a viewer; the full view, JSON rendering included), after two warm-up requests, in a
   process set up as a server worker is (`config.wsgi`: the objects loaded at startup frozen out of
   the garbage collector; without that, a full collection now and then added ~60 ms to a request).
4. Prints p50/p95 of both, the ratio large / small (target <= 1.5) and the large p95 against the
   100 ms sanity line, each with a pass/fail line.
5. Times the dashboard's usage page (the last 30 days: by day, model and customer) and a customer's
   page the same way, and prints their p95 and ratio large / small for information (no target: they
   read daily rollup rows, one per customer and day with usage, so they grow with the customers
   shown, not with the events behind them).

Data are loaded once per scale and reused by later runs (delete the database to reload).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "tokenledger_bench_margins"
MAPPED = 200


def setup_django():
    os.environ["DATABASE_NAME"] = BENCH_DB
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    # The process set up as the server's (config.wsgi: django.setup(), then the startup objects frozen
    # out of the garbage collector's generations): the requests are timed as a worker serves them.
    import config.wsgi  # noqa: F401


def months_back(now: datetime, count: int) -> datetime:
    """The first instant of the month `count` months before `now`'s."""
    year, month = now.year, now.month - count
    while month < 1:
        month += 12
        year -= 1
    return datetime(year, month, 1, tzinfo=UTC)


def load(name: str, customers: int, events: int, mapped: int, now: datetime):
    """The organization `name` with its customers, ledger, rollups and Stripe mappings (once)."""
    from django.db import connection

    from accounts.models import Organization
    from events.models import Customer, UsageEvent
    from events.services.partitions import ledger_month_ensure
    from events.services.rollups import usage_rollups_rebuild
    from margins import services
    from margins.models import StripeConnection, StripeCustomer, StripeInvoice

    organization = Organization.objects.filter(name=name).first()
    if organization is not None and UsageEvent.objects.filter(organization=organization).exists():
        return organization
    organization = organization or Organization.objects.create(name=name, plan=Organization.Plan.PRO)
    rows = [Customer(organization=organization, external_id=f"cust-{n:06d}", name=f"C {n}") for n in range(customers)]
    Customer.objects.bulk_create(rows, batch_size=5000)
    ids = list(Customer.objects.filter(organization=organization).order_by("pk").values_list("pk", flat=True))
    start = months_back(now, 2)
    span = (now - start).total_seconds()
    for back in range(3):  # the ledger's partitions of the months loaded, as the beat task made them
        ledger_month_ensure(month=months_back(now, back).date())
    raw = connection.connection
    with raw.transaction(), raw.cursor() as cursor, cursor.copy(
        "COPY events_usageevent (organization_id, customer_id, event_type, occurred_at, received_at, "
        "idempotency_key, source, properties, flow_id, feature_key, cost_microdollars, revenue_microdollars, "
        "unpriced, meta) FROM STDIN"
    ) as copy:
        for n in range(events):
            at = start + timedelta(seconds=span * ((n * 7919) % events) / events)
            copy.write_row(
                (organization.pk, ids[n % len(ids)], "chat", at, at, f"bench-{n}", "internal", "{}", "", "",
                 1000 + n % 5000, 0, False, "{}")
            )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE events_usageevent")
    usage_rollups_rebuild(organization_id=organization.pk)
    stripe = StripeConnection.objects.create(
        organization=organization, secret_key="rk_test_bench", key_prefix="rk_test_...bench", last_synced_at=now
    )
    for n in range(mapped):
        stripe_id = f"cus_bench{n:05d}"
        StripeCustomer.objects.create(
            organization=organization, connection=stripe, stripe_id=stripe_id, name=f"Stripe {n}",
            raw={"id": stripe_id}, synced_at=now,
        )
        for back in range(3):
            paid = months_back(now, back) + timedelta(days=1)
            invoice_id = f"in_bench{n:05d}_{back}"
            StripeInvoice.objects.create(
                organization=organization, connection=stripe, stripe_id=invoice_id, stripe_customer_id=stripe_id,
                status="paid", currency="usd", amount_paid=50_000, amount_paid_microdollars=500_000_000,
                stripe_created=paid, paid_at=paid, period=f"{paid:%Y-%m}", raw={"id": invoice_id}, synced_at=now,
            )
        services.customer_mapping_upsert(
            organization=organization, stripe_customer_id=stripe_id, tag_value=f"cust-{n * (customers // mapped):06d}"
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return organization


def timed_requests(organization, count: int, path: str = "/api/margins") -> list[float]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from accounts.models import Membership, Role

    user, _ = get_user_model().objects.get_or_create(username=f"bench-{organization.pk}")
    Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": Role.VIEWER})
    client = Client()
    client.force_login(user)
    timings = []
    for number in range(count + 2):
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise SystemExit(f"GET {path} answered {response.status_code}: {response.content[:300]!r}")
        if number >= 2:  # two warm-up requests
            timings.append(elapsed * 1000)
    if path == "/api/margins":
        rows = len(response.json()["data"]["customers"])
        print(f"  {organization.name}: {rows} table rows")
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies customers and events (0.01 = quick)")
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    now = datetime.now(UTC)
    mapped = max(5, int(MAPPED * min(args.scale, 1.0)))
    sizes = {"small": (int(1_000 * args.scale), int(100_000 * args.scale)),
             "large": (int(10_000 * args.scale), int(10_000_000 * args.scale))}
    organizations = {}
    for label, (customers, events) in sizes.items():
        started = time.perf_counter()
        name = f"Margins bench {label} x{args.scale:g}"
        organizations[label] = load(name, max(customers, mapped), max(events, 1), mapped, now)
        print(f"{label}: {customers:,} customers, {events:,} events (ready in {time.perf_counter() - started:.1f}s)")
    run_id = uuid.uuid4().hex[:6]
    print(f"timing {args.requests} requests each (run {run_id})")
    small = timed_requests(organizations["small"], args.requests)
    large = timed_requests(organizations["large"], args.requests)
    for label, timings in (("small", small), ("large", large)):
        print(f"{label}: p50 {statistics.median(timings):.1f} ms, p95 {p95(timings):.1f} ms")
    ratio = p95(large) / p95(small)
    print(f"ratio p95 large / small = {ratio:.2f} (target <= 1.5) {'PASS' if ratio <= 1.5 else 'FAIL'}")
    sanity = p95(large)
    print(f"large p95 = {sanity:.1f} ms (sanity line <= 100 ms) {'PASS' if sanity <= 100 else 'FAIL'}")
    for page, path in (("usage page", "/dashboard/usage"), ("customer page", "/dashboard/customers/cust-000000")):
        small = timed_requests(organizations["small"], args.requests, path)
        large = timed_requests(organizations["large"], args.requests, path)
        print(
            f"{page}: small p95 {p95(small):.1f} ms, large p95 {p95(large):.1f} ms, "
            f"ratio {p95(large) / p95(small):.2f} (information: rollup rows grow with customers, not events)"
        )


if __name__ == "__main__":
    main()
