"""Nothing unbilled: usage that arrived before its metric is billed, rebuilt in the background while
ingest goes on (no lost, no doubled usage), with its progress in the API and admin."""

import random
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import connections
from django.utils import timezone

from billing import invoicing, metering, services
from billing.models import Invoice, RollupRebuild, UsageRollup
from tests.billing.credits.test_invoicing import month_start, recent
from tests.billing.tokens import draft, send

AT = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 23, 59, 59, tzinfo=UTC)
USERS = ["alice", "bob", "carol"]


def batch(rng: random.Random, size: int):
    return [
        draft(
            "acme",
            AT + timedelta(minutes=rng.randint(-600, 500)),
            event_type=rng.choice(["chat", "embed"]),
            properties={"tokens": rng.randint(1, 1000), "user_id": rng.choice(USERS)},
        )
        for _ in range(size)
    ]


def totals(metric) -> dict:
    result: dict = {}
    for group, total in UsageRollup.objects.filter(metric=metric).values_list("group_values", "total"):
        result[group["user_id"]] = result.get(group["user_id"], Decimal(0)) + total
    return result


def expected(sent) -> dict:
    result: dict = {}
    for item in sent:
        if item.event_type == "chat":
            user = item.properties["user_id"]
            result[user] = result.get(user, Decimal(0)) + item.properties["tokens"]
    return result


TOKENS = {
    "aggregation_type": "SUM",
    "aggregation_key": "tokens",
    "group_keys": ["user_id"],
    "event_type_filter": {"in_values": ["chat"]},
}


@pytest.mark.django_db(transaction=True)
def test_ingest_goes_on_during_a_rebuild_and_no_usage_is_lost_or_doubled(organization, monkeypatch):
    monkeypatch.setattr(services, "rollup_rebuild_queue", lambda *, metric: None)  # run by hand below
    rng = random.Random(14)
    sent = []
    for _ in range(6):  # usage before the metric exists
        sent += batch(rng, 50)
        send(organization, sent[-50:], now=NOW)
    metric = services.billable_metric_create(organization=organization, name="tokens", **TOKENS)
    sent += batch(rng, 30)  # rolled up at ingest, then cleared and rolled up again by the rebuild
    send(organization, sent[-30:], now=NOW)

    stop = threading.Event()
    during: list[str] = []
    errors: list[BaseException] = []

    def keep_ingesting():
        local = random.Random(15)
        try:
            while not stop.is_set():
                items = batch(local, 5)
                send(organization, items, now=NOW)
                sent.extend(items)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    def ingest_between_chunks(rebuild):
        """An ingest that must finish while the rebuild is still running (no exclusive lock held)."""

        def one():
            try:
                items = batch(random.Random(rebuild.events_done), 4)
                send(organization, items, now=NOW)
                sent.extend(items)
                during.append(RollupRebuild.objects.get(pk=rebuild.pk).status)
            finally:
                connections.close_all()

        thread = threading.Thread(target=one)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "ingest waited for the rebuild"

    background = threading.Thread(target=keep_ingesting)
    background.start()
    try:
        matched = metering.metric_rollups_rebuild(metric=metric, batch_size=25, after_chunk=ingest_between_chunks)
    finally:
        stop.set()
        background.join(timeout=60)

    assert not errors, errors
    rebuild = RollupRebuild.objects.get(metric=metric)
    assert rebuild.status == RollupRebuild.Status.DONE and rebuild.events_done == rebuild.events_total
    assert during and set(during) == {RollupRebuild.Status.RUNNING}
    assert matched == rebuild.matched > 0
    assert totals(metric) == expected(sent)


@pytest.mark.django_db(transaction=True)
def test_a_newer_rebuild_supersedes_one_that_is_running(organization, monkeypatch):
    monkeypatch.setattr(services, "rollup_rebuild_queue", lambda *, metric: None)
    rng = random.Random(16)
    sent = batch(rng, 120)
    send(organization, sent, now=NOW)
    metric = services.billable_metric_create(organization=organization, name="tokens", **TOKENS)
    newer: list[int] = []

    def change_and_rebuild_again(rebuild):
        if not newer:  # after the first chunk: the metric changes and a rebuild of it runs to the end
            newer.append(metering.metric_rollups_rebuild(metric=metric, batch_size=1000))

    metering.metric_rollups_rebuild(metric=metric, batch_size=20, after_chunk=change_and_rebuild_again)

    first, second = RollupRebuild.objects.filter(metric=metric).order_by("pk")
    assert (first.status, second.status) == (RollupRebuild.Status.SUPERSEDED, RollupRebuild.Status.DONE)
    assert first.events_done == 20
    assert totals(metric) == expected(sent)


def test_the_seed_order_usage_then_metric_product_rate_card_contract_bills_the_usage(
    api_client, django_capture_on_commit_callbacks
):
    """Seed 001's own order: the usage is sent first, everything else is created after it."""
    usage = {
        "transaction_id": "tx-1",
        "customer_id": "team@example.com",
        "event_type": "langModel4",
        "timestamp": recent().isoformat(),
        "properties": {"tokens": 1_000_000, "user_id": "u1"},
    }
    assert api_client.post("/api/v1/ingest", [usage], format="json").json()["created"] == 1

    with django_capture_on_commit_callbacks(execute=True):  # the rebuild the new metric queues
        metric = api_client.post(
            "/api/v1/billable-metrics",
            {
                "name": "langModel4",
                "event_type_filter": {"in_values": ["langModel4"]},
                "aggregation_key": "tokens",
                "aggregation_type": "SUM",
                "group_keys": [["user_id"]],
            },
            format="json",
        ).json()["data"]
    product = api_client.post(
        "/api/v1/products",
        {
            "name": "Language Model 4 Tokens (millions)",
            "billable_metric_id": metric["id"],
            "quantity_conversion": {"conversion_factor": 1000000, "operation": "divide"},
        },
        format="json",
    ).json()["data"]
    card = api_client.post("/api/v1/rate-cards", {"name": "Standard"}, format="json").json()["data"]
    api_client.post(
        f"/api/v1/rate-cards/{card['id']}/rates",
        {"product_id": product["id"], "starting_at": "2024-01-01T00:00:00Z", "price": 50},
        format="json",
    )
    with django_capture_on_commit_callbacks(execute=True):
        contract = api_client.post(
            "/api/v1/contracts",
            {"customer_id": "team@example.com", "rate_card_id": card["id"], "starting_at": month_start().isoformat()},
            format="json",
        )
    assert contract.status_code == 201, contract.content

    preview = api_client.get("/api/v1/customers/team@example.com/billing/invoice-preview").json()
    shown = api_client.get(f"/api/v1/billable-metrics/{metric['id']}").json()["data"]["rollup_rebuild"]

    assert [(line["quantity"], line["amount"]) for line in preview["invoice_lines"]] == [(1, 50)]
    assert (shown["status"], shown["events_done"], shown["events_total"], shown["percent"]) == ("done", 1, 1, 100)


def test_drafts_wait_and_finalization_is_refused_while_a_rebuild_runs(
    organization, customer, seed_pricing, admin_client_logged_in
):
    contract = services.contract_create(
        organization=organization,
        customer=customer,
        rate_card=seed_pricing["rate_card"],
        starting_at=month_start() - timedelta(days=40),
    )
    invoicing.contract_drafts_ensure(contract=contract)
    ended = Invoice.objects.filter(contract=contract).order_by("period_start").first()
    RollupRebuild.objects.create(
        organization=organization,
        metric=seed_pricing["metric"],
        status=RollupRebuild.Status.RUNNING,
        events_total=200,
        events_done=50,
        started_at=timezone.now(),
    )

    with pytest.raises(ValidationError, match="being rebuilt"):
        invoicing.invoice_finalize(invoice=ended)
    assert invoicing.invoices_finalize_due(now=timezone.now() + timedelta(days=2)) == []
    assert invoicing.customer_drafts_recompute(customer_id=customer.pk) == []
    page = admin_client_logged_in.get(f"/admin/billing/billablemetric/{seed_pricing['metric'].pk}/change/")
    assert b"running: 25% (50 of 200 events)" in page.content
