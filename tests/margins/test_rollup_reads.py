"""Margins read the usage rollups, never the ledger: the table, a customer's detail, the unmatched
list and the health recompute issue no query on the events or vendor-response tables."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from margins import services
from tests.margins.test_views_margins import ledger  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

LEDGER_TABLES = ("events_usageevent", "events_vendorresponse")


def ledger_queries(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if any(t in query["sql"] for t in LEDGER_TABLES)]


def test_margin_pages_read_rollups_only(member_client, ledger):  # noqa: F811
    client = member_client(Role.VIEWER)
    with CaptureQueriesContext(connection) as captured:
        table = client.get("/api/margins?period=2026-04")
        detail = client.get("/api/margins/acme-corp?period=2026-04")
        unmatched = client.get("/api/margins/unmatched")

    assert (table.status_code, detail.status_code, unmatched.status_code) == (200, 200, 200)
    assert ledger_queries(captured) == []
    # and the numbers are the ledger's
    assert [row["tagValue"] for row in table.json()["data"]["customers"]] == ["acme-corp", "beta", "gamma"]
    assert detail.json()["data"]["modelBreakdown"] == [
        {"model": "gpt-4o", "cost": 20_000_000, "requestCount": 1, "inputTokens": 100, "outputTokens": 50},
        {"model": "gpt-4o-mini", "cost": 10_000_000, "requestCount": 2, "inputTokens": 200, "outputTokens": 100},
    ]
    assert unmatched.json()["data"]["unmappedTagValues"] == [
        {"tagValue": "delta", "totalCostMicrodollars": 16_000_000, "requestCount": 2},
        {"tagValue": "gamma", "totalCostMicrodollars": 9_000_000, "requestCount": 1},
    ]


def test_health_recompute_reads_rollups_only(ledger):  # noqa: F811
    with CaptureQueriesContext(connection) as captured:
        services.health_recompute(organization=ledger, now=datetime(2026, 4, 20, tzinfo=UTC))

    assert ledger_queries(captured) == []
