"""MarginDash's own Python SDK (PyPI `ai-cost-calc`, pinned in tests/contracts/margindash-sdk.txt)
against the real TokenLedger server (pytest-django's `live_server`), with only `base_url` and
`api_key` set: every public method (`cost`, `add_usage`, `track`, `flush`, `shutdown`,
`guarded_call`, `async_guarded_call`). The SDK imports as `ai_cost_calc`, like ours, so it runs in a
subprocess from its own directory (tests/contracts/vendor_sdks.py). The assertions read the ledger.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from costcalc.models import ModelPrice
from costcalc.services import price_override_create
from events.models import Budget, UsageEvent
from events.services import budget_create
from tests.contracts.vendor_sdks import VENDOR_ROOT, run_driver
from tests.sdk.faulty_proxy import FaultyProxy

pytestmark = pytest.mark.django_db(transaction=True)

# openai/gpt-4o at $2.50 / $10 per million tokens: 1200 in + 340 out = 3000 + 3400 µ$.
COST_PER_CALL = 6_400


@pytest.fixture
def gpt_4o_price(db) -> ModelPrice:
    return ModelPrice.objects.create(
        slug="openai/gpt-4o",
        vendor="openai",
        display_name="GPT-4o",
        input_per_mtok=Decimal("2.5"),
        output_per_mtok=Decimal("10"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
        source="manual",
    )


@pytest.fixture
def base_url(live_server) -> str:
    return f"{live_server.url}/api/v1"  # MarginDash's SDK's base URL ends in /api/v1


@pytest.fixture
def proxy(live_server):
    parts = urllib.parse.urlsplit(live_server.url)
    relay = FaultyProxy(parts.hostname, parts.port)
    yield relay
    relay.close()


def usage(input_tokens=1200, output_tokens=340) -> dict:
    return {"model": "openai/gpt-4o", "input_tokens": input_tokens, "output_tokens": output_tokens}


def test_the_driver_runs_margindashs_published_release_not_our_sdk(base_url, gpt_4o_price):
    answer = run_driver("margindash", "cost", {"base_url": base_url, "calls": []})
    assert answer["version"] == "1.3.13"
    assert answer["module"].startswith(str(VENDOR_ROOT / "margindash"))


def test_cost_reads_the_public_model_list_with_or_without_a_key(base_url, gpt_4o_price, organization, api_key):
    # The SDK fetches GET {base_url}/models without credentials (even when it has a key) and expects
    # {"models": [{"slug", "pricing": {"input_per_1m_usd", "output_per_1m_usd"}}]}.
    price_override_create(
        organization=organization,
        slug="openai/gpt-4o",
        input_per_mtok=Decimal("1"),
        output_per_mtok=Decimal("1"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
    )
    calls = [["openai/gpt-4o", 1_000_000, 500_000], ["openai/no-such-model", 1, 1]]
    for key in (None, api_key):
        answer = run_driver("margindash", "cost", {"base_url": base_url, "api_key": key, "calls": calls})
        assert answer["errors"] == []
        priced, unknown = answer["results"]
        assert priced == {
            "model": "openai/gpt-4o",
            "input_cost": 2.5,
            "output_cost": 5.0,
            "total_cost": 7.5,
            "input_tokens": 1_000_000,
            "output_tokens": 500_000,
            "estimated": False,
        }  # the global catalog: the SDK never sends its key for prices
        assert unknown is None


def test_a_batch_retried_after_its_lost_answer_is_stored_once(proxy, gpt_4o_price, organization, api_key):
    # The proxy lets the first POST /events reach the server, then throws the answer away and cuts the
    # connection; the SDK retries the same batch (same unique_request_tokens), which must come back
    # duplicate instead of being stored twice.
    proxy.drop_responses(1)
    events = [
        {"usages": [usage(), usage(1000, 0)], "track": {"customer_id": "8291", "revenue_amount_in_cents": 500,
                                                         "event_type": "summarize"}},
        {"usages": [usage()], "track": {"customer_id": "8292", "unique_request_token": "req-42"}},
    ]  # fmt: skip
    answer = run_driver("margindash", "track", {"base_url": f"{proxy.url}/api/v1", "api_key": api_key,
                                                "events": events})  # fmt: skip

    assert proxy.dropped == 1
    assert answer["errors"] == []  # the retry succeeded: nothing reported to the application
    stored = {event.customer.external_id: event for event in UsageEvent.objects.filter(organization=organization)}
    assert set(stored) == {"8291", "8292"}
    first, second = stored["8291"], stored["8292"]
    assert first.event_type == "summarize" and second.event_type == "ai_request"
    assert first.cost_microdollars == COST_PER_CALL + 2_500 and second.cost_microdollars == COST_PER_CALL
    assert (first.revenue_microdollars, second.revenue_microdollars) == (5_000_000, 0)
    assert second.idempotency_key == "md:req-42"
    assert first.idempotency_key.startswith("md:") and first.meta == {}  # the SDK's uuid4, not one of ours

    # The application sending the same token again later (its own retry) is still the same event.
    again = [{"usages": [usage()], "track": {"customer_id": "8292", "unique_request_token": "req-42"}}]
    run_driver("margindash", "track", {"base_url": f"{proxy.url}/api/v1", "api_key": api_key, "events": again})
    assert UsageEvent.objects.filter(organization=organization).count() == 2


def test_guarded_calls_follow_the_blocklist(base_url, gpt_4o_price, organization, api_key):
    budget_create(organization=organization, scope=Budget.Scope.CUSTOMER, scope_value="cust_over",
                  limit_microdollars=0)  # fmt: skip
    budget_create(organization=organization, scope=Budget.Scope.EVENT_TYPE, scope_value="image",
                  limit_microdollars=0)  # fmt: skip
    checks = [
        {"customer_id": "cust_ok", "event_type": "chat"},
        {"customer_id": "cust_over", "event_type": "chat"},
        {"customer_id": "cust_ok", "event_type": "image"},
    ]
    answer = run_driver("margindash", "guard", {"base_url": base_url, "api_key": api_key, "checks": checks})
    assert answer["outcomes"] == [
        ["ran", "ran"],
        ["blocked: Request blocked by customer budget limit (cust_over)"] * 2,
        ["blocked: Request blocked by event type budget limit (image)"] * 2,
    ]
