"""Token usage from OpenAI and Anthropic responses, as SDK objects or plain dicts.

Conventions of the numbers returned (and of ``add_usage``):

* ``input_tokens`` counts every input token, cached or not;
  ``cached_input_tokens`` is the part read from the prompt cache and
  ``cache_creation_input_tokens`` the part written to it (Anthropic only;
  the ledger stores it as ``cache_write_tokens``).
* ``output_tokens`` counts every output token; ``reasoning_tokens`` is the part
  spent on reasoning (OpenAI reports it; Anthropic includes thinking in
  ``output_tokens`` without a separate count, so it is 0 there).

OpenAI's chat completions count cached tokens inside ``prompt_tokens`` and
reasoning inside ``completion_tokens`` already. Anthropic's ``input_tokens``
excludes cache reads and writes, so they are added to it here.

Model names without a vendor prefix get one (``gpt-4o`` becomes
``openai/gpt-4o``), since TokenLedger's model slugs are ``vendor/model``.
Anthropic's API ids are also turned into the catalog's slugs, which write
versions with a dot and carry no snapshot date
(``claude-sonnet-4-5-20250929`` becomes ``anthropic/claude-sonnet-4.5``,
``claude-3-5-haiku-latest`` becomes ``anthropic/claude-3.5-haiku``);
otherwise the server would refuse the event as an unknown model. Pass
``prefix_vendor=False`` to keep the name exactly as the response gives it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Usage:
    model: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_input_tokens: int = 0


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, *path: str) -> int:
    value = obj
    for name in path:
        value = _get(value, name)
        if value is None:
            return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"usage field {'.'.join(path)} is not an integer: {value!r}")
    return value


def _has(obj: Any, name: str) -> bool:
    return _get(obj, name) is not None


def _model(response: Any, vendor: str, prefix_vendor: bool) -> str:
    model = _get(response, "model")
    if not isinstance(model, str) or not model:
        raise ValueError("response has no model name")
    if prefix_vendor and "/" not in model:
        return f"{vendor}/{model}"
    return model


_ANTHROPIC_SNAPSHOT = re.compile(r"-(?:\d{8}|latest)$")
_ANTHROPIC_VERSION = re.compile(r"(?<=-)(\d+)-(\d)(?=-|$)")


def anthropic_slug(model: str) -> str:
    """An Anthropic API model id as the price catalog names it: ``claude-opus-4-1-20250805`` →
    ``claude-opus-4.1``, ``claude-3-5-sonnet-20241022`` → ``claude-3.5-sonnet``. Other names are kept."""
    if not model.startswith("claude-"):
        return model
    return _ANTHROPIC_VERSION.sub(r"\1.\2", _ANTHROPIC_SNAPSHOT.sub("", model))


def _usage_of(response: Any) -> Any:
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError(
            "response has no usage (for streams, read it from the final chunk: "
            "OpenAI needs stream_options={'include_usage': True})"
        )
    return usage


def openai_usage(response: Any, *, prefix_vendor: bool = True) -> Usage:
    """Usage of an OpenAI chat completion (or its final stream chunk) or Responses API object."""
    usage = _usage_of(response)
    model = _model(response, "openai", prefix_vendor)
    if _has(usage, "prompt_tokens") or _has(usage, "completion_tokens"):  # chat completions
        return Usage(
            model=model,
            input_tokens=_count(usage, "prompt_tokens"),
            output_tokens=_count(usage, "completion_tokens"),
            cached_input_tokens=_count(usage, "prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=_count(usage, "completion_tokens_details", "reasoning_tokens"),
        )
    return Usage(  # Responses API
        model=model,
        input_tokens=_count(usage, "input_tokens"),
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=_count(usage, "input_tokens_details", "cached_tokens"),
        reasoning_tokens=_count(usage, "output_tokens_details", "reasoning_tokens"),
    )


def anthropic_usage(response: Any, *, prefix_vendor: bool = True) -> Usage:
    """Usage of an Anthropic Messages API response."""
    usage = _usage_of(response)
    cache_read = _count(usage, "cache_read_input_tokens")
    cache_creation = _count(usage, "cache_creation_input_tokens")
    model = _model(response, "anthropic", False)
    if prefix_vendor and "/" not in model:  # an id from Anthropic's API, not a slug (say, via a router)
        model = "anthropic/" + anthropic_slug(model)
    return Usage(
        model=model,
        input_tokens=_count(usage, "input_tokens") + cache_read + cache_creation,
        output_tokens=_count(usage, "output_tokens"),
        cached_input_tokens=cache_read,
        cache_creation_input_tokens=cache_creation,
    )


def extract_usage(response: Any, *, prefix_vendor: bool = True) -> Usage:
    """Usage of an OpenAI or Anthropic response, recognised by its shape."""
    usage = _usage_of(response)
    if _has(usage, "prompt_tokens") or _has(usage, "completion_tokens"):
        return openai_usage(response, prefix_vendor=prefix_vendor)
    if (
        _get(response, "object") == "response"
        or _has(usage, "input_tokens_details")
        or _has(usage, "output_tokens_details")
    ):
        return openai_usage(response, prefix_vendor=prefix_vendor)
    if (
        _get(response, "type") == "message"
        or _has(usage, "cache_read_input_tokens")
        or _has(usage, "cache_creation_input_tokens")
        or str(_get(response, "model") or "").startswith(("claude", "anthropic/"))
    ):
        return anthropic_usage(response, prefix_vendor=prefix_vendor)
    if _has(usage, "input_tokens") or _has(usage, "output_tokens"):
        # input/output counts with no vendor markers: take them as they are.
        model = _get(response, "model")
        if not isinstance(model, str) or not model:
            raise ValueError("response has no model name")
        return Usage(
            model=model,
            input_tokens=_count(usage, "input_tokens"),
            output_tokens=_count(usage, "output_tokens"),
        )
    raise ValueError("response usage is neither OpenAI- nor Anthropic-shaped")
