"""Usage extraction from OpenAI and Anthropic responses, as dicts and as objects."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from ai_cost_calc import Usage, anthropic_slug, anthropic_usage, extract_usage, openai_usage

OPENAI_CHAT_COMPLETION = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
    "object": "chat.completion",
    "created": 1741570283,
    "model": "o3-mini-2025-01-31",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Paris.", "refusal": None},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 2117,
        "completion_tokens": 1843,
        "total_tokens": 3960,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 1600,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}

OPENAI_RESPONSES_API = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "In a peaceful grove...", "annotations": []}],
        }
    ],
    "usage": {
        "input_tokens": 3036,
        "input_tokens_details": {"cached_tokens": 2944},
        "output_tokens": 870,
        "output_tokens_details": {"reasoning_tokens": 512},
        "total_tokens": 3906,
    },
}

ANTHROPIC_MESSAGE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello!"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 12,
        "cache_creation_input_tokens": 2051,
        "cache_read_input_tokens": 4096,
        "output_tokens": 503,
        "service_tier": "standard",
    },
}


def as_object(value: Any) -> Any:
    """The payload as attribute objects, the way the vendors' SDKs hand them out."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: as_object(v) for k, v in value.items()})
    if isinstance(value, list):
        return [as_object(v) for v in value]
    return value


CHAT_USAGE = Usage(
    model="openai/o3-mini-2025-01-31",
    input_tokens=2117,
    output_tokens=1843,
    cached_input_tokens=1024,
    reasoning_tokens=1600,
)
RESPONSES_USAGE = Usage(
    model="openai/gpt-4.1-2025-04-14",
    input_tokens=3036,
    output_tokens=870,
    cached_input_tokens=2944,
    reasoning_tokens=512,
)
ANTHROPIC_USAGE = Usage(
    model="anthropic/claude-sonnet-4.5",  # the catalog's slug for the API id claude-sonnet-4-5-20250929
    input_tokens=12 + 2051 + 4096,  # Anthropic's input_tokens exclude cache reads/writes
    output_tokens=503,
    cached_input_tokens=4096,
    cache_creation_input_tokens=2051,
)


@pytest.mark.parametrize("shape", [dict, as_object], ids=["dict", "object"])
@pytest.mark.parametrize(
    ("payload", "expected", "vendor_helper"),
    [
        (OPENAI_CHAT_COMPLETION, CHAT_USAGE, openai_usage),
        (OPENAI_RESPONSES_API, RESPONSES_USAGE, openai_usage),
        (ANTHROPIC_MESSAGE, ANTHROPIC_USAGE, anthropic_usage),
    ],
    ids=["openai-chat", "openai-responses", "anthropic"],
)
def test_usage_is_extracted_from_dicts_and_objects(shape, payload, expected, vendor_helper):
    response = shape(copy.deepcopy(payload))
    assert vendor_helper(response) == expected
    assert extract_usage(response) == expected


def test_details_that_the_sdk_leaves_none_count_as_zero():
    # The openai package gives None for details the API did not send.
    response = as_object(
        {
            "model": "gpt-4o",
            "object": "chat.completion",
            "usage": {
                "prompt_tokens": 50,
                "completion_tokens": 20,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
        }
    )
    assert extract_usage(response) == Usage(model="openai/gpt-4o", input_tokens=50, output_tokens=20)


def test_anthropic_object_with_cache_fields_none():
    @dataclass
    class AnthropicUsage:
        input_tokens: int
        output_tokens: int
        cache_creation_input_tokens: int | None = None
        cache_read_input_tokens: int | None = None

    @dataclass
    class Message:
        model: str
        usage: AnthropicUsage
        type: str = "message"

    message = Message(model="claude-haiku-4-5", usage=AnthropicUsage(25, 7))
    assert extract_usage(message) == Usage(
        model="anthropic/claude-haiku-4.5", input_tokens=25, output_tokens=7
    )


def test_final_openai_stream_chunk_with_usage():
    chunk = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "model": "gpt-4o-mini",
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
    }
    assert extract_usage(chunk) == Usage(
        model="openai/gpt-4o-mini", input_tokens=9, output_tokens=12
    )


def test_vendor_prefix_is_kept_or_skipped():
    routed = copy.deepcopy(OPENAI_CHAT_COMPLETION)
    routed["model"] = "deepseek/deepseek-r1"  # e.g. via an OpenAI-compatible router
    assert extract_usage(routed).model == "deepseek/deepseek-r1"
    assert extract_usage(ANTHROPIC_MESSAGE, prefix_vendor=False).model == (
        "claude-sonnet-4-5-20250929"
    )


@pytest.mark.parametrize(
    ("api_id", "slug"),
    [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4.5"),
        ("claude-opus-4-1-20250805", "claude-opus-4.1"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-haiku-4-5", "claude-haiku-4.5"),
        ("claude-3-7-sonnet-latest", "claude-3.7-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3.5-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3.5-haiku"),
        ("claude-3-haiku-20240307", "claude-3-haiku"),
        ("claude-3-opus-20240229", "claude-3-opus"),
        ("claude-2.1", "claude-2.1"),
        ("gpt-4o", "gpt-4o"),
    ],
)
def test_anthropic_api_ids_become_catalog_slugs(api_id, slug):
    assert anthropic_slug(api_id) == slug
    assert anthropic_usage({"model": api_id, "usage": {"input_tokens": 1, "output_tokens": 1}}).model == (
        "anthropic/" + slug
    )


def test_names_that_already_are_slugs_are_kept():
    routed = {"model": "anthropic/claude-3.5-sonnet-20240620", "usage": {"input_tokens": 1, "output_tokens": 1}}
    assert anthropic_usage(routed).model == "anthropic/claude-3.5-sonnet-20240620"


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"model": "gpt-4o", "choices": []}, "no usage"),
        ({"usage": {"prompt_tokens": 1, "completion_tokens": 1}}, "no model"),
        ({"model": "gpt-4o", "usage": {"prompt_tokens": "12", "completion_tokens": 1}}, "integer"),
        ({"model": "x", "usage": {"total": 3}}, "neither"),
    ],
)
def test_unusable_responses_raise_value_error(response, message):
    with pytest.raises(ValueError, match=message):
        extract_usage(response)


def test_add_usage_from_sends_the_extracted_numbers(stand_in_server, make_client):
    md = make_client(stand_in_server.url)
    md.add_usage_from(as_object(OPENAI_CHAT_COMPLETION))
    md.add_usage_from(ANTHROPIC_MESSAGE)
    md.track(customer_id="8291", event_type="agent_run", revenue_amount_in_cents=1500)
    assert md.flush(5)
    (event,) = stand_in_server.events()
    assert event["vendor_responses"] == [
        {
            "model": "openai/o3-mini-2025-01-31",
            "input_tokens": 2117,
            "output_tokens": 1843,
            "cached_input_tokens": 1024,
            "reasoning_tokens": 1600,
        },
        {
            "model": "anthropic/claude-sonnet-4.5",
            "input_tokens": 6159,
            "output_tokens": 503,
            "cached_input_tokens": 4096,
            "cache_creation_input_tokens": 2051,
        },
    ]
