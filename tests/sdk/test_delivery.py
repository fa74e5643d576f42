"""Background delivery: batching, retries, Retry-After, the bounded queue, shutdown.

These drive the client against the stand-in HTTP server of ``conftest.py``
(a recorder on 127.0.0.1 whose answers each test scripts); the same
guarantees against the real server are in ``test_live_server.py``.
"""

from __future__ import annotations

import itertools
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from ai_cost_calc.delivery import format_occurred_at


def record(md, customer_id: str = "8291", n_usages: int = 1, **track) -> str | None:
    for i in range(n_usages):
        md.add_usage(model="openai/gpt-4o", input_tokens=1200 + i, output_tokens=340)
    return md.track(customer_id=customer_id, event_type=track.pop("event_type", "summarize"),
                    revenue_amount_in_cents=track.pop("revenue_amount_in_cents", 500), **track)  # fmt: skip


def test_track_sends_one_event_carrying_all_pending_usages(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    md.add_usage(model="openai/gpt-4o", input_tokens=1200, output_tokens=340)
    md.add_usage(
        model="anthropic/claude-sonnet-4.5",
        input_tokens=3000,
        output_tokens=800,
        cached_input_tokens=2048,
        reasoning_tokens=120,
    )
    key = md.track(customer_id="8291", event_type="summarize", revenue_amount_in_cents=500)
    assert md.flush(5)

    (request,) = stand_in_server.event_requests()
    assert request.method == "POST"
    assert request.headers["authorization"] == "Bearer tl_live_test"
    assert request.headers["content-type"] == "application/json"
    (event,) = request.events
    assert event["customer_id"] == "8291"
    assert event["event_type"] == "summarize"
    assert event["revenue_amount_in_cents"] == 500
    assert event["idempotency_key"] == key
    assert event["vendor_responses"] == [
        {"model": "openai/gpt-4o", "input_tokens": 1200, "output_tokens": 340},
        {
            "model": "anthropic/claude-sonnet-4.5",
            "input_tokens": 3000,
            "output_tokens": 800,
            "cached_input_tokens": 2048,
            "reasoning_tokens": 120,
        },
    ]
    # occurred_at is the time of track(), not of delivery.
    occurred = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
    assert abs(occurred - datetime.now(UTC)) < timedelta(seconds=5)
    assert md.stats()["created"] == 1

    # The usages were consumed: the next track() has nothing to attach.
    assert md.track(customer_id="8291", event_type="summarize") is None


def test_occurred_at_is_sent_in_utc():
    moment = datetime(2025, 6, 15, 16, 30, tzinfo=UTC).astimezone(
        __import__("datetime").timezone(timedelta(hours=2))
    )
    assert format_occurred_at(moment) == "2025-06-15T16:30:00.000Z"
    assert format_occurred_at("2025-06-15T14:30:00Z") == "2025-06-15T14:30:00Z"
    assert format_occurred_at(0.0) == "1970-01-01T00:00:00.000Z"


def test_events_are_batched_at_most_100_per_request(stand_in_server, make_client):
    md = make_client(stand_in_server.url, flush_interval=60)
    keys = [record(md, customer_id=f"c{i}") for i in range(250)]
    assert md.flush(10)

    sizes = [len(r.events) for r in stand_in_server.event_requests()]
    assert sum(sizes) == 250
    assert max(sizes) == 100
    assert len(sizes) >= 3
    assert [e["idempotency_key"] for e in stand_in_server.events()] == keys
    assert len(set(keys)) == 250


def test_a_lone_event_is_sent_after_flush_interval_without_flush(stand_in_server, make_client):
    md = make_client(stand_in_server.url, flush_interval=0.1)
    record(md)
    stand_in_server.wait_for(lambda: len(stand_in_server.events()) == 1, timeout=3)


@pytest.mark.parametrize("failure", [(500, {}, {}), (503, {}, {}), (429, {}, {}), "close"])
def test_retries_keep_the_same_idempotency_key(stand_in_server, make_client, failure):
    md = make_client(stand_in_server.url)
    stand_in_server.then(failure, failure)
    key = record(md)
    assert md.flush(5)

    requests = stand_in_server.event_requests()
    assert len(requests) == 3
    assert {r.events[0]["idempotency_key"] for r in requests} == {key}
    stats = md.stats()
    assert stats["retries"] == 2
    assert stats["created"] == 1
    assert stats["undelivered"] == 0


def test_lost_response_is_resent_and_answered_duplicate(stand_in_server, make_client):
    """The server stored the batch but the answer never arrived: the retry is a duplicate."""
    md = make_client(stand_in_server.url)

    def store_then_fail(request):
        stand_in_server.default_answer(request)  # the server did its work
        return (502, {}, {"error": "bad gateway"})

    stand_in_server.then(store_then_fail)
    record(md)
    assert md.flush(5)
    stats = md.stats()
    assert (stats["created"], stats["duplicate"]) == (0, 1)
    assert len(stand_in_server.seen_keys) == 1


def test_retry_after_is_honoured(stand_in_server, make_client):
    md = make_client(stand_in_server.url, base_backoff=0.01, max_backoff=0.02)
    stand_in_server.then((429, {"Retry-After": "1"}, {"error": "slow down"}))
    record(md)
    assert md.flush(5)
    first, second = stand_in_server.event_requests()
    # Without Retry-After the jittered backoff would be at most 0.02 s.
    assert second.at - first.at >= 0.95


def test_backoff_grows_between_failures(stand_in_server, make_client):
    md = make_client(stand_in_server.url, base_backoff=0.2, max_backoff=10, max_retries=3)
    md._deliverer._rng.seed(7)  # full jitter: fix the draws so the assertion is exact
    stand_in_server.then(*[(503, {}, {})] * 4)
    record(md)
    stand_in_server.wait_for(lambda: len(stand_in_server.event_requests()) == 4, timeout=10)
    import random

    rng = random.Random(7)
    expected = [rng.uniform(0, 0.2 * 2 ** (n - 1)) for n in (1, 2, 3)]
    at = [r.at for r in stand_in_server.event_requests()]
    gaps = [b - a for a, b in itertools.pairwise(at)]
    for gap, want in zip(gaps, expected, strict=True):
        assert want - 0.01 <= gap <= want + 0.3  # upper slack: scheduling on a busy CI box
    stand_in_server.wait_for(lambda: md.stats()["undelivered"] == 1)


def test_retries_stop_after_max_retries(stand_in_server, make_client, caplog):
    md = make_client(stand_in_server.url, max_retries=2)
    stand_in_server.then(*[(500, {}, {})] * 5)
    with caplog.at_level(logging.ERROR, logger="ai_cost_calc"):
        record(md)
        stand_in_server.wait_for(lambda: md.stats()["undelivered"] == 1)
    assert len(stand_in_server.event_requests()) == 3
    assert "gave up on 1 event" in caplog.text


@pytest.mark.parametrize("status", [401, 403, 404])
def test_whole_request_4xx_is_not_retried(stand_in_server, make_client, caplog, status):
    md = make_client(stand_in_server.url)
    stand_in_server.then((status, {}, {"error": {"code": "nope", "message": "no"}}))
    with caplog.at_level(logging.ERROR, logger="ai_cost_calc"):
        record(md)
        record(md)
        assert md.flush(5)
    assert len(stand_in_server.event_requests()) == 1
    assert md.stats()["rejected"] == 2
    assert f"HTTP {status}" in caplog.text


def test_a_400_batch_is_split_to_save_the_valid_events(stand_in_server, make_client):
    md = make_client(stand_in_server.url, flush_interval=60)

    def reject_batches_with_bad(request):
        if any(e["customer_id"] == "bad" for e in request.events):
            stand_in_server.then(reject_batches_with_bad)
            return (400, {}, {"error": {"code": "validation_error", "message": "bad"}})
        stand_in_server.then(reject_batches_with_bad)
        return None

    stand_in_server.then(reject_batches_with_bad)
    keys = {customer: record(md, customer_id=customer) for customer in ["a", "b", "bad", "c"]}
    assert md.flush(5)
    # Split 4 -> 2+2 -> the half with "bad" -> 1+1: the three good events arrive.
    assert stand_in_server.seen_keys == {keys["a"], keys["b"], keys["c"]}
    stats = md.stats()
    assert (stats["created"], stats["rejected"]) == (3, 1)


def test_per_event_error_result_is_logged_and_not_retried(stand_in_server, make_client, caplog):
    md = make_client(stand_in_server.url, flush_interval=60)
    stand_in_server.then(
        (
            200,
            {},
            {
                "budget_state_version": 1,
                "results": [
                    {"id": 1, "status": "created"},
                    {
                        "status": "error",
                        "error": {"code": "validation_error", "message": "unknown model"},
                    },
                ],
            },
        )
    )
    record(md, customer_id="ok")
    bad_key = record(md, customer_id="nope")
    with caplog.at_level(logging.ERROR, logger="ai_cost_calc"):
        assert md.flush(5)
    assert len(stand_in_server.event_requests()) == 1
    stats = md.stats()
    assert (stats["created"], stats["rejected"], stats["retries"]) == (1, 1, 0)
    assert bad_key in caplog.text
    assert "unknown model" in caplog.text


def test_full_queue_drops_the_oldest_events_counts_and_warns(stand_in_server, make_client, caplog):
    md = make_client(stand_in_server.url, max_queue_size=5, max_batch_size=1, flush_interval=60)
    stand_in_server.then("hang")
    first = record(md, customer_id="first")  # taken by the worker, held by the server
    stand_in_server.wait_for(lambda: len(stand_in_server.event_requests()) == 1)
    with caplog.at_level(logging.WARNING, logger="ai_cost_calc"):
        queued = [record(md, customer_id=f"c{i}") for i in range(8)]
    assert md.stats()["dropped"] == 3
    assert md.stats()["queued"] == 5
    assert "queue full" in caplog.text
    assert caplog.text.count("queue full") == 1  # rate-limited, not one line per drop

    stand_in_server.release()
    assert md.flush(5)
    sent = [e["idempotency_key"] for e in stand_in_server.events()]
    assert sent == [first, *queued[3:]]  # c0..c2, the oldest queued, were dropped


def test_shutdown_flushes_queued_events(stand_in_server, make_client):
    md = make_client(stand_in_server.url, flush_interval=60)
    keys = [record(md, customer_id=f"c{i}") for i in range(10)]
    assert stand_in_server.events() == []  # nothing sent yet: batch not full, interval long
    assert md.shutdown(timeout=5) is True
    assert [e["idempotency_key"] for e in stand_in_server.events()] == keys


def test_track_after_shutdown_is_not_queued(stand_in_server, make_client, caplog):
    md = make_client(stand_in_server.url)
    md.shutdown(timeout=1)
    with caplog.at_level(logging.WARNING, logger="ai_cost_calc"):
        assert record(md) is None
    assert "after shutdown" in caplog.text
    assert md.stats()["dropped"] == 1


def test_shutdown_gives_up_at_its_timeout(stand_in_server, make_client):
    md = make_client(stand_in_server.url, flush_interval=60, base_backoff=0.2, max_backoff=0.2)
    stand_in_server.then(*[(503, {}, {})] * 1000)
    record(md)
    record(md)
    started = time.monotonic()
    assert md.shutdown(timeout=0.5) is False
    assert time.monotonic() - started < 1.5
    assert md.stats()["undelivered"] == 2


def test_shutdown_does_not_wait_out_a_retry_after_past_its_deadline(stand_in_server, make_client):
    md = make_client(stand_in_server.url, flush_interval=60)
    stand_in_server.then((503, {"Retry-After": "30"}, {}))
    record(md)
    md.flush(0.3)  # the worker is now waiting 30 s before its retry
    started = time.monotonic()
    assert md.shutdown(timeout=2) is False
    assert time.monotonic() - started < 1.0
    assert md.stats()["undelivered"] == 1


def test_shutdown_with_unreachable_server_returns_in_time(closed_port_url, make_client):
    md = make_client(closed_port_url, flush_interval=60)
    record(md)
    started = time.monotonic()
    assert md.shutdown(timeout=0.5) is False
    assert time.monotonic() - started < 1.5


def test_track_never_blocks_while_the_server_hangs(stand_in_server, make_client):
    md = make_client(stand_in_server.url, max_batch_size=1)
    stand_in_server.then("hang")
    record(md)
    stand_in_server.wait_for(lambda: len(stand_in_server.event_requests()) == 1)
    started = time.perf_counter()
    for _ in range(100):
        record(md)
    assert time.perf_counter() - started < 0.5  # the worker is stuck, the caller is not
    stand_in_server.release()
    assert md.flush(5)
    assert md.stats()["created"] == 101


def test_a_response_cut_off_on_the_wire_is_retried_as_a_duplicate(stand_in_server, make_client):
    from tests.sdk.faulty_proxy import FaultyProxy

    host, port = stand_in_server.url.removeprefix("http://").split(":")
    proxy = FaultyProxy(host, int(port))
    try:
        proxy.drop_responses(1)
        md = make_client(proxy.url)
        key = record(md)
        assert md.flush(5)
    finally:
        proxy.close()
    assert proxy.dropped == 1
    assert [r.events[0]["idempotency_key"] for r in stand_in_server.event_requests()] == [key, key]
    stats = md.stats()
    assert (stats["created"], stats["duplicate"]) == (0, 1)
