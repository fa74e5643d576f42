"""Ingest p99 while a billable metric's rollups are rebuilt over N events vs with no rebuild (target <= 2x).

    .venv/bin/python bench/rebuild.py [--events 1000000] [--batches 300] [--batch-size 100] [--chunk 1000]

1. Prepares a scratch database (`tokenledger_bench_rebuild` on the embedded or configured
   PostgreSQL) and a fresh organization with a customer and a billable metric (SUM of tokens,
   grouped by user), then writes `--events` ledger rows by COPY (the history the rebuild reads).
2. Baseline: `--batches` ingest requests of `--batch-size` events each through the real ingest core
   (`events.services.ingest.ingest_events`, ledger lock, hooks, rollups), one after another, with no
   rebuild running; records each request's latency.
3. Starts a rebuild of the metric's rollups over the whole ledger in another process (as a Celery
   worker would run it: `billing.metering.metric_rollups_rebuild`) and sends the same kind of ingest requests
   for as long as it runs; records their latencies and the rebuild's own time.
4. Prints both p99 latencies, their ratio and the rebuild's time and rate. The rebuild holds the
   organization's ledger lock exclusively only to start; then it works in chunks under the shared
   lock, so ingest keeps going: the ratio should stay near 1 (a chunk's rollup upserts may make an
   ingest that updates the same rollup rows wait for that chunk).

The machine is shared with other work: run the 1M version when it is otherwise idle.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
BENCH_DB = "tokenledger_bench_rebuild"
USERS = 20
COPY_BATCH = 50_000


def setup_django():
    os.environ["DATABASE_NAME"] = BENCH_DB
    os.environ["REDIS_URL"] = ""  # self-contained: Celery eager, local cache
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()


def prepare():
    from django.core.management import call_command

    from accounts.services import organization_get_or_create
    from billing import services
    from events.models import Customer

    call_command("migrate", verbosity=0, interactive=False)
    organization, _ = organization_get_or_create(name=f"Rebuild Bench {uuid.uuid4().hex[:8]}", plan="pro")
    customer = Customer.objects.create(organization=organization, external_id="bench-customer", name="Bench")
    metric = services.billable_metric_create(  # its own rebuild (eager, on commit) finds no events yet
        organization=organization, name="tokens", aggregation_type="SUM", aggregation_key="tokens",
        event_type_filter={"in_values": ["completion"]}, group_keys=["user_id"],
    )
    return organization, customer, metric


def fill_ledger(organization, customer, count: int, rng: random.Random) -> None:
    """COPY ``count`` ledger rows spread over the last 30 days (history only: no rollups written)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from events.services.partitions import ledger_month_ensure

    now = timezone.now()
    for month in ((now - timedelta(days=30)).date(), now.date()):  # the partitions of the months filled
        ledger_month_ensure(month=month)
    done = 0
    while done < count:
        size = min(COPY_BATCH, count - done)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence('events_usageevent', 'id'), "
                    "nextval(pg_get_serial_sequence('events_usageevent', 'id')) + %s - 1)",
                    [size],
                )
                last_id = cursor.fetchone()[0]
            first_id = last_id - size + 1
            with connection.connection.cursor() as cursor, cursor.copy(
                "COPY events_usageevent (id, organization_id, customer_id, event_type, occurred_at, received_at, "
                "idempotency_key, source, properties, flow_id, feature_key, usage_units, cost_microdollars, "
                "revenue_microdollars, unpriced, meta) FROM STDIN"
            ) as copy:
                for offset in range(size):
                    occurred = now - timedelta(seconds=rng.randrange(30 * 86400))
                    properties = {"tokens": rng.randint(50, 4000), "user_id": f"user-{rng.randrange(USERS)}"}
                    copy.write_row(
                        (first_id + offset, organization.pk, customer.pk, "completion", occurred, now,
                         f"history-{first_id + offset}", "internal", orjson.dumps(properties).decode(), "", "",
                         None, 0, 0, False, "{}")
                    )
        done += size
        if count >= 200_000 and done % 200_000 == 0:
            print(f"  ledger {done:,} / {count:,}", flush=True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE events_usageevent")


def ingest_once(organization, batch_size: int, rng: random.Random) -> float:
    """One ingest request through the real core; returns its latency in seconds."""
    from django.utils import timezone

    from events.drafts import CustomerRef, EventDraft
    from events.services.ingest import ingest_events

    now = timezone.now()
    drafts = []
    for _ in range(batch_size):
        properties = {"tokens": rng.randint(50, 4000), "user_id": f"user-{rng.randrange(USERS)}"}
        drafts.append(
            EventDraft(
                customer=CustomerRef("id", "bench-customer", "customer_id"),
                event_type="completion",
                occurred_at=now - timedelta(seconds=rng.randrange(3600)),
                idempotency_key=f"bench:{uuid.uuid4().hex}",
                properties=properties,
                properties_json=orjson.dumps(properties).decode(),
            )
        )
    started = time.perf_counter()
    ingest_events(organization=organization, source="internal", items=drafts, now=now)
    return time.perf_counter() - started


def rebuild_in_process(metric_id: str, chunk: int, results) -> None:
    setup_django()
    from billing import metering
    from billing.models import BillableMetric

    try:
        began = time.perf_counter()
        matched = metering.metric_rollups_rebuild(metric=BillableMetric.objects.get(pk=metric_id), batch_size=chunk)
        results.put({"matched": matched, "seconds": time.perf_counter() - began})
    except Exception as error:  # reported by the parent
        results.put({"error": repr(error)})


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="ledger events the rebuild reads")
    parser.add_argument("--batches", type=int, default=300, help="ingest requests timed without a rebuild")
    parser.add_argument("--batch-size", type=int, default=100, help="events per ingest request")
    parser.add_argument("--chunk", type=int, default=1000, help="events per rebuild chunk (one transaction)")
    args = parser.parse_args()

    setup_django()
    from django.db import connections

    from billing.models import RollupRebuild

    organization, customer, metric = prepare()
    rng = random.Random(20261204)
    started = time.perf_counter()
    fill_ledger(organization, customer, args.events, rng)
    print(f"ledger: {args.events:,} events written in {time.perf_counter() - started:.1f} s", flush=True)

    for _ in range(10):  # warm-up: caches, prepared statements
        ingest_once(organization, args.batch_size, rng)
    baseline = [ingest_once(organization, args.batch_size, rng) for _ in range(args.batches)]

    # The rebuild runs in another process, as in a Celery worker (a thread would share this
    # process's interpreter lock with the ingest requests being timed).
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    worker = context.Process(target=rebuild_in_process, args=(str(metric.pk), args.chunk, results))
    connections.close_all()
    worker.start()
    during = []
    while not RollupRebuild.objects.filter(metric=metric).exclude(status=RollupRebuild.Status.DONE).exists():
        if not worker.is_alive():
            break
        time.sleep(0.01)  # until the rebuild has started
    while worker.is_alive() and results.empty():  # every request sent while the rebuild runs
        during.append(ingest_once(organization, args.batch_size, rng))
    outcome = results.get()
    worker.join()
    if "error" in outcome:
        raise RuntimeError(outcome["error"])
    status = RollupRebuild.objects.filter(metric=metric).first()

    base, busy = p99(baseline), p99(during) if len(during) >= 2 else float("nan")
    print(f"ingest p99 without a rebuild: {base * 1000:.1f} ms ({len(baseline)} requests of {args.batch_size})")
    print(f"ingest p99 during the rebuild: {busy * 1000:.1f} ms ({len(during)} requests overlapped it)")
    print(f"rebuild: {outcome['seconds']:.2f} s over {status.events_done:,} events "
          f"({status.events_done / outcome['seconds']:,.0f} events/s), status {status.status}")
    ratio = busy / base
    verdict = "OK" if ratio <= 2 else "ABOVE TARGET"
    print(f"ratio (ingest p99 during a rebuild / without): {ratio:.2f}x (target <= 2x) {verdict}")


if __name__ == "__main__":
    main()
