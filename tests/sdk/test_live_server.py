"""The SDK against the project's real server (not a mock).

pytest-django's ``live_server`` runs TokenLedger's WSGI application in a
thread on 127.0.0.1, on the test database, with the real ``POST
/api/v1/events`` ingest and ``GET /api/v1/budgets/blocklist``. Failures are
injected on the wire by ``FaultyProxy`` (a byte relay between the SDK and the
server): answers cut off after the server stored the events, answers delayed
past the SDK's timeout, and the server "restarting" (connections cut and
refused). The assertions read the ledger itself: every tracked event is
stored exactly once, with its cost and revenue counted once.
"""

from __future__ import annotations

import time
import urllib.parse
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from ai_cost_calc import AiCostCalc, BudgetExceeded

from costcalc.models import ModelPrice
from events.dialects import MARGINDASH_KEY_PREFIX
from events.models import Budget, UsageEvent
from events.services import budget_create
from tests.sdk.faulty_proxy import FaultyProxy

# openai/gpt-4o at $2.50 / $10 per million tokens: 1200 in + 340 out = 3000 + 3400 µ$.
COST_PER_EVENT = 6_400
REVENUE_CENTS = 500

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gpt_4o_price(db) -> ModelPrice:
    return ModelPrice.objects.create(
        slug="openai/gpt-4o",
        vendor="openai",
        display_name="GPT-4o",
        input_per_mtok=Decimal("2.5"),
        output_per_mtok=Decimal("10"),
        cache_read_per_mtok=Decimal("1.25"),
        effective_from=datetime(2024, 1, 1, tzinfo=UTC),
        source="manual",
    )


@pytest.fixture
def proxy(live_server):
    parts = urllib.parse.urlsplit(live_server.url)
    relay = FaultyProxy(parts.hostname, parts.port)
    yield relay
    relay.close()


@pytest.fixture
def sdk(api_key, gpt_4o_price):
    """Factory for clients of the live server (directly or through the proxy); shut down after."""
    clients: list[AiCostCalc] = []

    def build(base_url: str, **tuning) -> AiCostCalc:
        options = {"flush_at_exit": False, "base_backoff": 0.05, "max_backoff": 0.2, "flush_interval": 0.05}
        options.update(tuning)
        client = AiCostCalc(api_key=api_key, base_url=base_url, **options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.shutdown(timeout=1)


def track_one(md: AiCostCalc, customer_id: str, event_type: str = "summarize") -> str:
    md.add_usage(model="openai/gpt-4o", input_tokens=1200, output_tokens=340)
    key = md.track(customer_id=customer_id, event_type=event_type, revenue_amount_in_cents=REVENUE_CENTS)
    assert key is not None
    return key


def assert_stored_exactly_once(organization, keys: list[str]) -> None:
    stored = list(
        UsageEvent.objects.filter(organization=organization).values_list(
            "idempotency_key", "cost_microdollars", "revenue_microdollars"
        )
    )
    assert sorted(key for key, _, _ in stored) == sorted(MARGINDASH_KEY_PREFIX + key for key in keys)
    assert sum(cost for _, cost, _ in stored) == COST_PER_EVENT * len(keys)
    assert sum(revenue for _, _, revenue in stored) == REVENUE_CENTS * 10_000 * len(keys)


def test_events_arrive_once_with_cost_and_revenue(live_server, sdk, organization):
    md = sdk(live_server.url)
    md.add_usage(model="openai/gpt-4o", input_tokens=1200, output_tokens=340)
    md.add_usage(model="openai/gpt-4o", input_tokens=1000, output_tokens=0, cached_input_tokens=800)
    key = md.track(customer_id="8291", event_type="summarize", revenue_amount_in_cents=REVENUE_CENTS)
    assert md.flush(10)

    event = UsageEvent.objects.get(organization=organization)
    assert event.idempotency_key == MARGINDASH_KEY_PREFIX + key
    assert event.customer.external_id == "8291"
    assert event.event_type == "summarize"
    # 6,400 µ$ + (200 x $2.50 + 800 x $1.25) per million = 6,400 + 1,500 µ$.
    assert event.cost_microdollars == 7_900
    assert event.revenue_microdollars == 5_000_000
    assert sorted(event.vendor_responses.values_list("input_tokens", "cached_input_tokens")) == [
        (1000, 800),
        (1200, 0),
    ]
    assert md.stats()["created"] == 1


def test_lost_responses_are_retried_without_double_counting(live_server, proxy, sdk, organization):
    md = sdk(proxy.url, max_batch_size=10, flush_interval=60)
    # The first batch's answer is lost, and so is the answer to its first retry: the server
    # stores the batch, then answers "duplicate" twice, and the SDK hears only the last one.
    proxy.drop_responses(2)
    keys = [track_one(md, f"cust-{i % 4}") for i in range(25)]
    assert md.flush(20)

    assert proxy.dropped == 2
    assert_stored_exactly_once(organization, keys)
    stats = md.stats()
    assert (stats["created"], stats["duplicate"]) == (15, 10)
    assert stats["retries"] == 2
    assert stats["undelivered"] == stats["rejected"] == 0


def test_answers_delayed_past_the_timeout_are_retried_without_double_counting(
    live_server, proxy, sdk, organization
):
    md = sdk(proxy.url, request_timeout=0.5)
    proxy.delay_responses(1, seconds=1.5)
    keys = [track_one(md, "8291") for _ in range(3)]
    assert md.flush(20)

    assert proxy.delayed == 1
    assert_stored_exactly_once(organization, keys)
    assert md.stats()["retries"] >= 1


def test_a_server_restart_mid_request_loses_and_doubles_nothing(live_server, proxy, sdk, organization):
    md = sdk(proxy.url, request_timeout=5)
    proxy.delay_responses(1, seconds=1.0)
    keys = [track_one(md, "8291")]
    deadline = time.monotonic() + 5
    while proxy.delayed == 0 and time.monotonic() < deadline:  # the request is at the server
        time.sleep(0.01)
    proxy.go_down()  # cut the connection while the answer is held back, refuse reconnects
    keys += [track_one(md, "8292") for _ in range(5)]
    time.sleep(0.5)
    assert md.stats()["retries"] >= 1
    proxy.come_back()
    assert md.flush(20)

    assert proxy.refused >= 1
    assert_stored_exactly_once(organization, keys)
    assert md.stats()["undelivered"] == 0


def test_shutdown_flushes_everything_queued(live_server, sdk, organization):
    md = sdk(live_server.url, flush_interval=60)
    keys = [track_one(md, f"cust-{i}") for i in range(7)]
    assert not UsageEvent.objects.filter(organization=organization).exists()  # still queued
    assert md.shutdown(timeout=15) is True
    assert_stored_exactly_once(organization, keys)


def test_an_invalid_event_is_rejected_alone(live_server, sdk, organization, caplog):
    md = sdk(live_server.url, flush_interval=60)
    good = track_one(md, "8291")
    md.add_usage(model="nobody/unknown-model", input_tokens=10, output_tokens=10)
    bad = md.track(customer_id="8291", event_type="summarize")
    assert md.flush(10)

    assert_stored_exactly_once(organization, [good])
    stats = md.stats()
    assert (stats["created"], stats["rejected"]) == (1, 1)
    assert bad in caplog.text


def test_a_customer_over_budget_is_refused(live_server, sdk, organization, settings):
    settings.BLOCKLIST_TTL_SECONDS = 1
    budget_create(
        organization=organization,
        scope=Budget.Scope.CUSTOMER,
        scope_value="cust_over",
        limit_microdollars=COST_PER_EVENT,  # reached by one event
    )
    md = sdk(live_server.url)
    calls: list[str] = []

    def provider_call(customer: str):
        return lambda: calls.append(customer) or "completion"

    assert md.guarded_call(customer_id="cust_over", event_type="summarize", call=provider_call("cust_over"))
    track_one(md, "cust_over")
    assert md.flush(10)
    time.sleep(1.1)  # the blocklist's ttl_seconds

    with pytest.raises(BudgetExceeded) as refused:
        md.guarded_call(customer_id="cust_over", event_type="summarize", call=provider_call("refused"))
    assert refused.value.scope == "customer"
    assert md.guarded_call(customer_id="cust_ok", event_type="summarize", call=provider_call("cust_ok"))
    assert calls == ["cust_over", "cust_ok"]


@pytest.mark.parametrize(
    ("scope", "scope_value", "customer_id", "event_type"),
    [
        (Budget.Scope.ORGANIZATION, "", "anyone", "anything"),
        (Budget.Scope.EVENT_TYPE, "summarize", "anyone", "summarize"),
        (Budget.Scope.CUSTOMER, "cust_123", "cust_123", "chat"),
    ],
)
def test_each_blocked_scope_is_refused(live_server, sdk, organization, scope, scope_value, customer_id, event_type):
    budget_create(organization=organization, scope=scope, scope_value=scope_value, limit_microdollars=0)
    md = sdk(live_server.url)
    with pytest.raises(BudgetExceeded) as refused:
        md.guarded_call(customer_id=customer_id, event_type=event_type, call=pytest.fail)
    assert refused.value.scope == scope


def test_a_newer_budget_state_from_ingest_refreshes_the_blocklist_before_its_ttl(live_server, sdk, organization):
    budget_create(
        organization=organization,
        scope=Budget.Scope.CUSTOMER,
        scope_value="cust_over",
        limit_microdollars=COST_PER_EVENT,
    )
    md = sdk(live_server.url)  # the server's ttl_seconds stays 30
    md.check_budget(customer_id="cust_over", event_type="summarize")  # cached: not blocked
    track_one(md, "cust_over")  # over budget once this commits
    assert md.flush(10)
    track_one(md, "someone_else")  # its answer carries the bumped budget_state_version
    assert md.flush(10)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_over", event_type="summarize")


def test_the_blocklist_is_polled_with_since_version(live_server, sdk, organization, settings):
    settings.BLOCKLIST_TTL_SECONDS = 0  # every check polls
    budget_create(organization=organization, scope=Budget.Scope.CUSTOMER, scope_value="cust_123", limit_microdollars=0)
    md = sdk(live_server.url)
    polls: list[tuple[int | None, bool]] = []
    fetch = md._guard._get  # record what the SDK asks the real server and what it answers

    def recording_get(since_version):
        answer = fetch(since_version)
        polls.append((since_version, answer["changed"]))
        return answer

    md._guard._get = recording_get
    for _ in range(3):
        with pytest.raises(BudgetExceeded):
            md.check_budget(customer_id="cust_123", event_type="chat")
    version = md._guard.state.version
    assert polls == [(None, True), (version, False), (version, False)]
    assert md._guard.state.customer_ids == frozenset({"cust_123"})


def test_an_unknown_api_key_is_refused_and_not_retried(live_server, gpt_4o_price, caplog):
    md = AiCostCalc(api_key="tl_live_not_a_real_key_at_all_0000", base_url=live_server.url, flush_at_exit=False)
    md.add_usage(model="openai/gpt-4o", input_tokens=1, output_tokens=1)
    md.track(customer_id="8291", event_type="summarize")
    assert md.shutdown(timeout=10)
    stats = md.stats()
    assert (stats["rejected"], stats["requests"]) == (1, 1)
    assert "HTTP 401" in caplog.text


def test_responses_from_the_vendors_sdks_reach_the_ledger_priced(live_server, sdk, organization):
    """add_usage_from with the model ids the OpenAI and Anthropic APIs really return: both are priced by the
    catalog (Anthropic's dated, dash-versioned ids are turned into its slugs), so neither event is refused."""
    ModelPrice.objects.create(
        slug="anthropic/claude-sonnet-4.5", vendor="anthropic", display_name="Claude Sonnet 4.5",
        input_per_mtok=Decimal("3"), output_per_mtok=Decimal("15"), cache_read_per_mtok=Decimal("0.3"),
        cache_write_per_mtok=Decimal("3.75"), effective_from=datetime(2024, 1, 1, tzinfo=UTC), source="manual",
    )
    md = sdk(live_server.url)
    md.add_usage_from({"model": "gpt-4o", "object": "chat.completion",
                       "usage": {"prompt_tokens": 1200, "completion_tokens": 340}})
    md.add_usage_from({"model": "claude-sonnet-4-5-20250929", "type": "message",
                       "usage": {"input_tokens": 1000, "output_tokens": 100}})
    md.track(customer_id="8291", event_type="agent_run")
    assert md.flush(10)

    assert (md.stats()["created"], md.stats()["rejected"]) == (1, 0)
    event = UsageEvent.objects.get(organization=organization)
    # gpt-4o 6,400 µ$ + Sonnet 4.5: 1,000 x $3 + 100 x $15 per million = 4,500 µ$.
    assert event.cost_microdollars == COST_PER_EVENT + 4_500
    assert sorted(event.vendor_responses.values_list("model", flat=True)) == [
        "anthropic/claude-sonnet-4.5", "openai/gpt-4o",
    ]
