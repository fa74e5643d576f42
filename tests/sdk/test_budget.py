"""guarded_call and the blocklist cache: scopes, ttl, since_version, fail open/closed.

Driven against the stand-in HTTP server of ``conftest.py`` (it answers in the
``GET /api/v1/budgets/blocklist`` shape and records each poll); the real
server's blocklist is exercised in ``test_live_server.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from ai_cost_calc import BudgetError, BudgetExceeded, BudgetUnavailable


def blocked(*, organization=False, event_types=(), customer_ids=(), version=13, ttl=30):
    return {
        "version": version,
        "ttl_seconds": ttl,
        "changed": True,
        "recompute_in_progress": False,
        "blocked": {
            "organization": organization,
            "event_types": list(event_types),
            "customer_ids": list(customer_ids),
        },
    }


class Provider:
    """Counts calls, standing for the AI provider call the guard protects."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return "completion"


def test_guarded_call_runs_the_call_when_nothing_is_blocked(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    provider = Provider()
    assert md.guarded_call(customer_id="8291", event_type="summarize", call=provider) == "completion"
    assert provider.calls == 1
    (poll,) = stand_in_server.blocklist_requests()
    assert poll.method == "GET"
    assert poll.path == "/api/v1/budgets/blocklist"  # first poll: no since_version
    assert poll.headers["authorization"] == "Bearer tl_live_test"


@pytest.mark.parametrize(
    ("state", "customer_id", "event_type", "scope"),
    [
        (blocked(customer_ids=["cust_123"]), "cust_123", "summarize", "customer"),
        (blocked(event_types=["summarize"]), "cust_9", "summarize", "event_type"),
        (blocked(organization=True), "cust_9", "chat", "organization"),
        # Widest scope wins when several apply.
        (blocked(organization=True, customer_ids=["cust_123"]), "cust_123", "x", "organization"),
        (blocked(event_types=["x"], customer_ids=["cust_123"]), "cust_123", "x", "event_type"),
    ],
)
def test_blocked_calls_raise_budget_exceeded_without_calling(
    stand_in_server, make_client, state, customer_id, event_type, scope
):
    stand_in_server.blocklist = state
    md = make_client(stand_in_server.url)
    provider = Provider()
    with pytest.raises(BudgetExceeded) as raised:
        md.guarded_call(customer_id=customer_id, event_type=event_type, call=provider)
    assert provider.calls == 0
    assert raised.value.scope == scope
    assert raised.value.customer_id == customer_id
    assert raised.value.event_type == event_type
    assert raised.value.version == 13
    assert isinstance(raised.value, BudgetError)


def test_other_customers_and_event_types_still_run(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(event_types=["summarize"], customer_ids=["cust_123"])
    md = make_client(stand_in_server.url)
    provider = Provider()
    md.guarded_call(customer_id="cust_456", event_type="chat", call=provider)
    assert provider.calls == 1


def test_answer_is_cached_for_ttl_seconds(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"], ttl=30)
    md = make_client(stand_in_server.url)
    provider = Provider()
    for _ in range(20):
        md.guarded_call(customer_id="cust_456", event_type="chat", call=provider)
        with pytest.raises(BudgetExceeded):
            md.guarded_call(customer_id="cust_123", event_type="chat", call=provider)
    assert provider.calls == 20
    assert len(stand_in_server.blocklist_requests()) == 1


def test_after_ttl_it_polls_with_since_version_and_keeps_the_set_when_unchanged(
    stand_in_server, make_client
):
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"], ttl=0.2, version=13)
    md = make_client(stand_in_server.url)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_123", event_type="chat")
    time.sleep(0.25)
    with pytest.raises(BudgetExceeded):  # still blocked from the cached set
        md.check_budget(customer_id="cust_123", event_type="chat")
    polls = stand_in_server.blocklist_requests()
    assert [p.path for p in polls] == [
        "/api/v1/budgets/blocklist",
        "/api/v1/budgets/blocklist?since_version=13",
    ]


def test_a_changed_answer_replaces_the_cached_set(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"], ttl=0.2, version=13)
    md = make_client(stand_in_server.url)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_123", event_type="chat")
    stand_in_server.blocklist = blocked(customer_ids=["cust_456"], ttl=30, version=14)
    time.sleep(0.25)
    md.check_budget(customer_id="cust_123", event_type="chat")  # unblocked now
    with pytest.raises(BudgetExceeded) as raised:
        md.check_budget(customer_id="cust_456", event_type="chat")
    assert raised.value.version == 14


def test_a_newer_budget_state_version_from_ingest_forces_a_refresh(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(ttl=300, version=13)
    md = make_client(stand_in_server.url)
    md.check_budget(customer_id="cust_123", event_type="chat")
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"], ttl=300, version=14)
    stand_in_server.budget_state_version = 14
    md.add_usage(model="openai/gpt-4o", input_tokens=10, output_tokens=10)
    md.track(customer_id="cust_123", event_type="chat")
    assert md.flush(5)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_123", event_type="chat")
    assert stand_in_server.blocklist_requests()[-1].path.endswith("since_version=13")


def test_fail_open_runs_the_call_when_the_server_is_unreachable(
    closed_port_url, make_client, caplog
):
    md = make_client(closed_port_url, fail_open=True)
    provider = Provider()
    with caplog.at_level(logging.WARNING, logger="ai_cost_calc"):
        md.guarded_call(customer_id="8291", event_type="summarize", call=provider)
    assert provider.calls == 1
    assert "failing open" in caplog.text


def test_fail_closed_refuses_the_call_when_the_server_is_unreachable(closed_port_url, make_client):
    md = make_client(closed_port_url, fail_open=False)
    provider = Provider()
    with pytest.raises(BudgetUnavailable):
        md.guarded_call(customer_id="8291", event_type="summarize", call=provider)
    assert provider.calls == 0


@pytest.mark.parametrize("failure", [(503, {}, {}), (401, {}, {}), (200, {}, ["not", "a", "dict"])])
def test_fail_closed_on_server_errors_and_unreadable_answers(stand_in_server, make_client, failure):
    stand_in_server.then(failure)
    md = make_client(stand_in_server.url, fail_open=False)
    with pytest.raises(BudgetUnavailable):
        md.check_budget(customer_id="8291", event_type="summarize")


def test_an_unreachable_server_is_not_polled_on_every_call(stand_in_server, make_client):
    stand_in_server.then(*[(503, {}, {})] * 100)
    md = make_client(stand_in_server.url, blocklist_retry_interval=30)
    provider = Provider()
    started = time.perf_counter()
    for _ in range(50):
        md.guarded_call(customer_id="8291", event_type="summarize", call=provider)
    assert provider.calls == 50
    assert len(stand_in_server.blocklist_requests()) == 1
    assert time.perf_counter() - started < 2


def test_retry_after_of_the_blocklist_delays_the_next_poll(stand_in_server, make_client):
    stand_in_server.then((429, {"Retry-After": "1"}, {}))
    md = make_client(stand_in_server.url, blocklist_retry_interval=0.1)
    md.check_budget(customer_id="8291", event_type="summarize")  # fails open
    time.sleep(0.2)
    md.check_budget(customer_id="8291", event_type="summarize")
    assert len(stand_in_server.blocklist_requests()) == 1  # Retry-After (1 s) beats 0.1 s
    time.sleep(0.9)
    md.check_budget(customer_id="8291", event_type="summarize")
    assert len(stand_in_server.blocklist_requests()) == 2


def test_fail_open_keeps_applying_the_last_known_blocklist(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"], ttl=0.1)
    md = make_client(stand_in_server.url, fail_open=True)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_123", event_type="chat")
    stand_in_server.then(*[(503, {}, {})] * 10)
    time.sleep(0.15)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_123", event_type="chat")
    md.check_budget(customer_id="cust_456", event_type="chat")
    assert len(stand_in_server.blocklist_requests()) == 2


def test_changed_false_without_a_cached_state_fetches_the_full_state(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"])
    stand_in_server.then((200, {}, {"version": 13, "ttl_seconds": 30, "changed": False}))
    md = make_client(stand_in_server.url)
    with pytest.raises(BudgetExceeded):
        md.check_budget(customer_id="cust_123", event_type="chat")
    assert len(stand_in_server.blocklist_requests()) == 2


def test_aguarded_call_awaits_the_coroutine_and_refuses_blocked(stand_in_server, make_client):
    stand_in_server.blocklist = blocked(customer_ids=["cust_123"])
    md = make_client(stand_in_server.url)
    awaited = []

    async def provider():
        awaited.append(True)
        return "async completion"

    async def main():
        ok = await md.aguarded_call(customer_id="cust_9", event_type="chat", call=provider)
        with pytest.raises(BudgetExceeded):
            await md.aguarded_call(customer_id="cust_123", event_type="chat", call=provider)
        return ok

    assert asyncio.run(main()) == "async completion"
    assert awaited == [True]


def test_customer_id_must_be_a_string(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    with pytest.raises(TypeError, match="customer_id"):
        md.guarded_call(customer_id=8291, event_type="summarize", call=Provider())
