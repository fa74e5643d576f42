"""Which pending usages ``track`` attaches (threads, asyncio tasks, sessions), and
argument validation. Events are read back from the stand-in HTTP server of
``conftest.py``."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from datetime import datetime

import pytest
from ai_cost_calc import AiCostCalc


def models_by_customer(server) -> dict[str, list[str]]:
    return {
        event["customer_id"]: sorted(vr["model"] for vr in event["vendor_responses"])
        for event in server.events()
    }


def usage(md, model: str) -> None:
    md.add_usage(model=model, input_tokens=100, output_tokens=10)


def test_each_thread_tracks_only_its_own_usage(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    both_recorded = threading.Barrier(2)

    def agent(name: str) -> None:
        usage(md, f"openai/{name}-1")
        usage(md, f"openai/{name}-2")
        both_recorded.wait()  # both threads hold pending usage at the same time
        md.track(customer_id=name, event_type="agent_run")

    threads = [threading.Thread(target=agent, args=(name,)) for name in ("alice", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert md.flush(5)
    assert models_by_customer(stand_in_server) == {
        "alice": ["openai/alice-1", "openai/alice-2"],
        "bob": ["openai/bob-1", "openai/bob-2"],
    }


def test_each_asyncio_task_tracks_only_its_own_usage(stand_in_server, make_client):
    md = make_client(stand_in_server.url)

    async def handler(name: str) -> None:
        usage(md, f"openai/{name}-1")
        await asyncio.sleep(0.01)  # interleave with the other handler
        usage(md, f"openai/{name}-2")
        await asyncio.sleep(0.01)
        md.track(customer_id=name, event_type="chat")

    async def main() -> None:
        usage(md, "openai/parent")  # the parent's pending usage is not the children's
        await asyncio.gather(handler("alice"), handler("bob"))
        md.track(customer_id="parent", event_type="chat")

    asyncio.run(main())
    assert md.flush(5)
    assert models_by_customer(stand_in_server) == {
        "alice": ["openai/alice-1", "openai/alice-2"],
        "bob": ["openai/bob-1", "openai/bob-2"],
        "parent": ["openai/parent"],
    }


def test_a_session_collects_usage_from_concurrent_tasks_into_one_event(
    stand_in_server, make_client
):
    md = make_client(stand_in_server.url)

    def blocking_tool_call(name: str) -> None:
        usage(md, f"openai/{name}")

    async def agent_step(name: str) -> None:
        await asyncio.sleep(0.01)
        usage(md, f"anthropic/{name}")

    async def agent_run() -> None:
        with md.session():
            usage(md, "openai/planner")
            await asyncio.gather(agent_step("step-a"), agent_step("step-b"))
            await asyncio.to_thread(blocking_tool_call, "tool")
            md.track(customer_id="8291", event_type="agent_run", revenue_amount_in_cents=900)

    asyncio.run(agent_run())
    assert md.flush(5)
    (event,) = stand_in_server.events()
    assert sorted(vr["model"] for vr in event["vendor_responses"]) == [
        "anthropic/step-a",
        "anthropic/step-b",
        "openai/planner",
        "openai/tool",
    ]


def test_a_session_object_can_be_handed_to_plain_threads(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    session = md.session()
    workers = [
        threading.Thread(target=session.add_usage,
                         kwargs={"model": f"openai/w{i}", "input_tokens": 5, "output_tokens": 1})
        for i in range(8)
    ]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert session.pending == 8
    session.track(customer_id="8291", event_type="fan_out")
    assert session.pending == 0
    assert md.flush(5)
    (event,) = stand_in_server.events()
    assert len(event["vendor_responses"]) == 8


def test_leaving_a_session_restores_the_outer_pending_usage(stand_in_server, make_client, caplog):
    md = make_client(stand_in_server.url)
    usage(md, "openai/outer")
    with caplog.at_level(logging.WARNING, logger="ai_cost_calc"), md.session():
        usage(md, "openai/forgotten")
    assert "never tracked" in caplog.text
    md.track(customer_id="outer", event_type="chat")
    assert md.flush(5)
    assert models_by_customer(stand_in_server) == {"outer": ["openai/outer"]}


def test_usage_in_a_context_copied_before_recording_is_not_lost_to_the_owner(
    stand_in_server, make_client
):
    md = make_client(stand_in_server.url)
    usage(md, "openai/main")
    ctx = contextvars.copy_context()
    thread = threading.Thread(target=ctx.run, args=(usage, md, "openai/other-thread"))
    thread.start()
    thread.join()
    # The other thread wrote into its own bucket; main's track sends only main's usage.
    md.track(customer_id="main", event_type="chat")
    assert md.flush(5)
    assert models_by_customer(stand_in_server) == {"main": ["openai/main"]}


def test_track_without_usage_sends_nothing_and_warns(stand_in_server, make_client, caplog):
    md = make_client(stand_in_server.url)
    with caplog.at_level(logging.WARNING, logger="ai_cost_calc"):
        assert md.track(customer_id="8291", event_type="summarize") is None
    assert "without add_usage" in caplog.text
    assert md.flush(1)
    assert stand_in_server.events() == []


def test_zero_token_usages_are_skipped(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    md.add_usage(model="openai/gpt-4o", input_tokens=0, output_tokens=0)
    md.add_usage(model="openai/gpt-4o", input_tokens=None, output_tokens=7)
    md.track(customer_id="8291", event_type="summarize")
    assert md.flush(5)
    (event,) = stand_in_server.events()
    assert event["vendor_responses"] == [
        {"model": "openai/gpt-4o", "input_tokens": 0, "output_tokens": 7}
    ]


def test_caller_supplied_idempotency_key_and_occurred_at(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    usage(md, "openai/gpt-4o")
    key = md.track(
        customer_id="8291",
        event_type="summarize",
        occurred_at=datetime.fromisoformat("2025-06-15T14:30:00+00:00"),
        idempotency_key="job-42",
    )
    assert key == "job-42"
    assert md.flush(5)
    (event,) = stand_in_server.events()
    assert event["idempotency_key"] == "job-42"
    assert event["occurred_at"] == "2025-06-15T14:30:00.000Z"


@pytest.mark.parametrize(
    ("usage_kwargs", "error"),
    [
        ({"model": "", "input_tokens": 1, "output_tokens": 1}, TypeError),
        ({"model": None, "input_tokens": 1, "output_tokens": 1}, TypeError),
        ({"model": "m", "input_tokens": -1, "output_tokens": 1}, ValueError),
        ({"model": "m", "input_tokens": 1.5, "output_tokens": 1}, TypeError),
        ({"model": "m", "input_tokens": True, "output_tokens": 1}, TypeError),
        ({"model": "m", "input_tokens": 100_000_001, "output_tokens": 1}, ValueError),
        ({"model": "m", "input_tokens": 10, "output_tokens": 1, "cached_input_tokens": 11},
         ValueError),
        ({"model": "m", "input_tokens": 10, "output_tokens": 1, "reasoning_tokens": 2},
         ValueError),
    ],
)  # fmt: skip
def test_add_usage_rejects_invalid_numbers(stand_in_server, make_client, usage_kwargs, error):
    md = make_client(stand_in_server.url)
    with pytest.raises(error):
        md.add_usage(**usage_kwargs)


@pytest.mark.parametrize(
    ("track_kwargs", "error"),
    [
        ({"customer_id": 8291}, TypeError),  # the seed: "must be a string"
        ({"customer_id": ""}, TypeError),
        ({"customer_id": "1", "event_type": "x" * 256}, ValueError),
        ({"customer_id": "1", "revenue_amount_in_cents": 4.99}, TypeError),  # never a float
        ({"customer_id": "1", "revenue_amount_in_cents": -1}, ValueError),
        ({"customer_id": "1", "revenue_amount_in_cents": 10_000_001}, ValueError),
        ({"customer_id": "1", "occurred_at": datetime(2025, 6, 15)}, ValueError),  # naive
        ({"customer_id": "1", "occurred_at": 1718461800}, TypeError),
    ],
)
def test_track_rejects_invalid_arguments_and_keeps_the_usage(
    stand_in_server, make_client, track_kwargs, error
):
    md = make_client(stand_in_server.url)
    usage(md, "openai/gpt-4o")
    with pytest.raises(error):
        md.track(**track_kwargs)
    assert md.track(customer_id="1", event_type="summarize") is not None  # usage still pending


def test_construction_needs_an_api_key_and_a_base_url(monkeypatch):
    monkeypatch.delenv("TOKENLEDGER_API_KEY", raising=False)
    monkeypatch.delenv("TOKENLEDGER_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="api_key"):
        AiCostCalc(base_url="http://127.0.0.1:1", flush_at_exit=False)
    with pytest.raises(ValueError, match="base_url"):
        AiCostCalc(api_key="k", flush_at_exit=False)
    with pytest.raises(ValueError, match="http"):
        AiCostCalc(api_key="k", base_url="127.0.0.1:8000", flush_at_exit=False)
    with pytest.raises(ValueError, match="max_batch_size"):
        AiCostCalc(api_key="k", base_url="http://h", max_batch_size=101, flush_at_exit=False)


def test_configuration_from_the_environment(monkeypatch, stand_in_server):
    monkeypatch.setenv("TOKENLEDGER_API_KEY", "tl_live_env")
    monkeypatch.setenv("TOKENLEDGER_BASE_URL", stand_in_server.url)
    md = AiCostCalc(flush_at_exit=False)
    usage(md, "openai/gpt-4o")
    md.track(customer_id="1", event_type="summarize")
    assert md.shutdown(5)
    assert stand_in_server.event_requests()[0].headers["authorization"] == "Bearer tl_live_env"


def test_base_url_path_prefix_is_kept(stand_in_server, make_client):
    md = make_client(stand_in_server.url + "/ledger/")
    usage(md, "openai/gpt-4o")
    md.track(customer_id="1", event_type="summarize")
    md.flush(2)
    assert stand_in_server.requests[0].path == "/ledger/api/v1/events"


def test_seed_example_runs_unchanged_apart_from_base_url(stand_in_server):
    """The seed's Python example, with TokenLedger's base_url."""
    from types import SimpleNamespace

    user = SimpleNamespace(id=8291)

    def provider_call():
        return SimpleNamespace(
            model="openai/gpt-4o", usage=SimpleNamespace(prompt_tokens=1200, completion_tokens=340)
        )

    md = AiCostCalc(api_key="YOUR_API_KEY_HERE", base_url=stand_in_server.url)
    response = md.guarded_call(
        customer_id=str(user.id),
        event_type="summarize",
        call=lambda: provider_call(),
    )
    md.add_usage(
        model=response.model,
        input_tokens=response.usage.prompt_tokens,
        output_tokens=response.usage.completion_tokens,
    )
    md.track(
        customer_id=str(user.id),
        event_type="summarize",
        revenue_amount_in_cents=500,
    )
    md.shutdown()
    (event,) = stand_in_server.events()
    assert event["customer_id"] == "8291"
    assert event["vendor_responses"] == [
        {"model": "openai/gpt-4o", "input_tokens": 1200, "output_tokens": 340}
    ]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork with threads (3.12+)
def test_a_forked_child_does_not_resend_the_parents_queue(stand_in_server, make_client):
    import os

    md = make_client(stand_in_server.url, flush_interval=60)
    usage(md, "openai/gpt-4o")
    parent_key = md.track(customer_id="parent", event_type="chat")
    pid = os.fork()
    if pid == 0:  # child: its own queue, its own key prefix, sends only its own event
        code = 1
        try:
            usage(md, "openai/gpt-4o")
            child_key = md.track(customer_id="child", event_type="chat")
            if child_key.split("-")[0] != parent_key.split("-")[0] and md.shutdown(5):
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert md.shutdown(5)
    assert sorted(e["customer_id"] for e in stand_in_server.events()) == ["child", "parent"]
