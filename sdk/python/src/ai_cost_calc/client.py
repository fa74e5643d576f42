"""``AiCostCalc``: the client object applications create once and share.

Pending usage (recorded by ``add_usage`` and attached by the next ``track``)
is kept per *execution context*:

* outside a session it belongs to the thread, or the asyncio task, that
  recorded it: two request handlers running at once never mix their usage,
  and a child task does not take its parent's usage;
* inside ``with md.session():`` it belongs to the session, and so do usages
  recorded by asyncio tasks started inside the block (they inherit the
  context) or by code run in a copied context (``asyncio.to_thread``,
  ``contextvars.copy_context().run``). A plain ``threading.Thread`` does not
  inherit the context: give it the session object and call
  ``session.add_usage(...)`` on it directly.

That makes the seed's agent pattern (``add_usage`` once per model call, then
``track`` once) right even when the agent fans out calls concurrently.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from ai_cost_calc.budget import BudgetGuard
from ai_cost_calc.delivery import Deliverer, DeliveryConfig, PendingEvent
from ai_cost_calc.extract import extract_usage
from ai_cost_calc.transport import BaseUrl, Connection

T = TypeVar("T")

MAX_TOKENS = 100_000_000  # per count, as the events endpoint accepts
MAX_REVENUE_CENTS = 10_000_000
MAX_EVENT_TYPE_LENGTH = 255
DEFAULT_EVENT_TYPE = "ai_request"

_UsageTuple = tuple[str, int, int, int, int, int]

_get_running_loop = asyncio.events._get_running_loop  # None outside a loop, never raises
_current_task = asyncio.current_task
_get_ident = threading.get_ident

_clients: weakref.WeakSet[AiCostCalc] = weakref.WeakSet()


def _owner() -> tuple[int, int]:
    loop = _get_running_loop()
    if loop is None:
        return (_get_ident(), 0)
    task = _current_task(loop)
    return (_get_ident(), id(task) if task is not None else 0)


class _Bucket:
    """Usages waiting for ``track``; ``owner`` None means shared (a session)."""

    __slots__ = ("items", "lock", "owner")

    def __init__(self, owner: tuple[int, int] | None) -> None:
        self.owner = owner
        self.items: list[_UsageTuple] = []
        self.lock = threading.Lock()

    def take_all(self) -> tuple[_UsageTuple, ...]:
        with self.lock:
            items = tuple(self.items)
            self.items.clear()
        return items


def _tokens(name: str, value: object) -> int:
    if value is None:  # the seed's examples pass `usage?.prompt_tokens`
        return 0
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_TOKENS:
        raise ValueError(f"{name} must be between 0 and {MAX_TOKENS}, got {value}")
    return value


def _usage_tuple(
    model: object,
    input_tokens: object,
    output_tokens: object,
    cached_input_tokens: object,
    reasoning_tokens: object,
    cache_creation_input_tokens: object,
) -> _UsageTuple:
    if type(model) is not str or not model:
        raise TypeError("model must be a non-empty string such as 'openai/gpt-4o'")
    usage = (
        model,
        _tokens("input_tokens", input_tokens),
        _tokens("output_tokens", output_tokens),
        _tokens("cached_input_tokens", cached_input_tokens),
        _tokens("reasoning_tokens", reasoning_tokens),
        _tokens("cache_creation_input_tokens", cache_creation_input_tokens),
    )
    if usage[3] + usage[5] > usage[1]:
        raise ValueError("cached_input_tokens and cache_creation_input_tokens are part of input_tokens")
    if usage[4] > usage[2]:
        raise ValueError("reasoning_tokens are part of output_tokens")
    return usage


def _is_empty(usage: _UsageTuple) -> bool:
    # The events endpoint rejects a vendor response with neither input nor
    # output tokens, and with it the whole event; such a call costs nothing.
    return usage[1] == 0 and usage[2] == 0


class _UsageRecorder:
    """``add_usage`` and ``add_usage_from``, shared by the client and sessions; they differ only in
    which bucket collects the usage (``_bucket_for_add``)."""

    def _bucket_for_add(self) -> _Bucket:
        raise NotImplementedError

    def add_usage(
        self,
        *,
        model: str,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = 0,
        reasoning_tokens: int | None = 0,
        cache_creation_input_tokens: int | None = 0,
    ) -> None:
        """Record one model call's tokens; the next ``track`` in this context sends them."""
        usage = _usage_tuple(
            model,
            input_tokens,
            output_tokens,
            cached_input_tokens,
            reasoning_tokens,
            cache_creation_input_tokens,
        )
        if _is_empty(usage):
            return
        bucket = self._bucket_for_add()
        with bucket.lock:
            bucket.items.append(usage)

    def add_usage_from(self, response: Any, *, prefix_vendor: bool = True) -> None:
        """``add_usage`` with the numbers of an OpenAI or Anthropic response (object or dict)."""
        u = extract_usage(response, prefix_vendor=prefix_vendor)
        self.add_usage(
            model=u.model,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cached_input_tokens=u.cached_input_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cache_creation_input_tokens=u.cache_creation_input_tokens,
        )


class UsageSession(_UsageRecorder):
    """Pending usage shared by everything an agent session does.

    ``with md.session() as session:`` makes it the current bucket for
    ``md.add_usage``/``md.track`` in this context and in contexts copied from
    it; its own ``add_usage``/``track`` methods work from any thread.
    """

    def __init__(self, client: AiCostCalc) -> None:
        self._client = client
        self._bucket = _Bucket(owner=None)
        self._token: contextvars.Token[_Bucket | None] | None = None

    @property
    def pending(self) -> int:
        return len(self._bucket.items)

    def _bucket_for_add(self) -> _Bucket:
        return self._bucket

    def track(
        self,
        *,
        customer_id: str,
        event_type: str = DEFAULT_EVENT_TYPE,
        revenue_amount_in_cents: int = 0,
        occurred_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> str | None:
        return self._client._track_bucket(
            self._bucket, customer_id, event_type, revenue_amount_in_cents, occurred_at,
            idempotency_key,
        )  # fmt: skip

    def __enter__(self) -> UsageSession:
        if self._token is not None:
            raise RuntimeError("this session is already entered")
        self._token = self._client._pending.set(self._bucket)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            self._client._pending.reset(token)
        if self._bucket.items and exc_type is None:
            self._client._log.warning(
                "TokenLedger session closed with %d usage(s) never tracked",
                len(self._bucket.items),
            )


class AiCostCalc(_UsageRecorder):
    """TokenLedger client; a drop-in for the ``ai-cost-calc`` Python client.

    Build one per process and share it between threads.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        fail_open: bool = True,
        max_queue_size: int = 10_000,
        max_batch_size: int = 100,
        flush_interval: float = 1.0,
        request_timeout: float = 10.0,
        base_backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retries: int | None = None,
        max_retry_after: float = 300.0,
        blocklist_timeout: float = 2.0,
        blocklist_retry_interval: float = 5.0,
        shutdown_timeout: float = 10.0,
        flush_at_exit: bool = True,
        logger: logging.Logger | None = None,
    ) -> None:
        api_key = api_key or os.environ.get("TOKENLEDGER_API_KEY")
        base_url = base_url or os.environ.get("TOKENLEDGER_BASE_URL")
        if not api_key:
            raise ValueError("api_key is required (or set TOKENLEDGER_API_KEY)")
        if not base_url:
            raise ValueError(
                "base_url is required: your TokenLedger server, e.g. "
                "'https://tokenledger.example.com' (or set TOKENLEDGER_BASE_URL)"
            )
        self._base_url = BaseUrl.parse(base_url)
        self._api_key = api_key
        self._log = logger or logging.getLogger("ai_cost_calc")
        self._shutdown_timeout = shutdown_timeout
        self._pending: contextvars.ContextVar[_Bucket | None] = contextvars.ContextVar(
            f"ai_cost_calc_pending_{id(self):x}", default=None
        )
        self._new_key_prefix()
        self._guard = BudgetGuard(
            connect=self._connect,
            fail_open=fail_open,
            timeout=blocklist_timeout,
            retry_interval=blocklist_retry_interval,
            logger=self._log,
        )
        self._deliverer = Deliverer(
            connect=self._connect,
            config=DeliveryConfig(
                max_queue_size=max_queue_size,
                max_batch_size=max_batch_size,
                flush_interval=flush_interval,
                request_timeout=request_timeout,
                base_backoff=base_backoff,
                max_backoff=max_backoff,
                max_retries=max_retries,
                max_retry_after=max_retry_after,
            ),
            logger=self._log,
            on_budget_state_version=self._guard.invalidate_if_older,
        )
        _clients.add(self)
        if flush_at_exit:
            atexit.register(_shutdown_at_exit, weakref.ref(self))

    def _connect(self) -> Connection:
        return Connection(self._base_url, api_key=self._api_key)

    def _new_key_prefix(self) -> None:
        # Keys are "<random per client and process>-<counter>": unique without
        # a uuid4 (a getrandom syscall) in the caller's thread per event.
        self._key_prefix = f"{uuid.uuid4().hex}-"
        self._key_counter = itertools.count(1)

    def _after_fork_in_child(self) -> None:
        self._new_key_prefix()
        self._deliverer.reset_after_fork()

    # -- usage -------------------------------------------------------------

    def _bucket_for_add(self) -> _Bucket:
        """This thread's or task's pending bucket (a session's, while one is entered)."""
        bucket = self._pending.get()
        if bucket is None or (bucket.owner is not None and bucket.owner != _owner()):
            bucket = _Bucket(_owner())
            self._pending.set(bucket)
        return bucket

    def session(self) -> UsageSession:
        """A usage session for one agent run; see the module docstring."""
        return UsageSession(self)

    def track(
        self,
        *,
        customer_id: str,
        event_type: str = DEFAULT_EVENT_TYPE,
        revenue_amount_in_cents: int = 0,
        occurred_at: datetime | str | None = None,
        idempotency_key: str | None = None,
    ) -> str | None:
        """Queue one event carrying every pending usage of this context.

        Returns the event's idempotency key, or None when nothing was queued:
        no pending usage (the server requires at least one vendor response) or
        the client is shut down; a warning is logged. Never blocks, no I/O.
        """
        bucket = self._pending.get()
        if bucket is not None and bucket.owner is not None and bucket.owner != _owner():
            bucket = None
        return self._track_bucket(
            bucket, customer_id, event_type, revenue_amount_in_cents, occurred_at,
            idempotency_key,
        )  # fmt: skip

    def _track_bucket(
        self,
        bucket: _Bucket | None,
        customer_id: str,
        event_type: str,
        revenue_amount_in_cents: int,
        occurred_at: datetime | str | None,
        idempotency_key: str | None,
    ) -> str | None:
        if type(customer_id) is not str or not customer_id:
            raise TypeError('customer_id must be a non-empty string, e.g. str(user.id) -> "8291"')
        if type(event_type) is not str or not 0 < len(event_type) <= MAX_EVENT_TYPE_LENGTH:
            raise ValueError(f"event_type must be a string of 1 to {MAX_EVENT_TYPE_LENGTH} chars")
        revenue = revenue_amount_in_cents
        if type(revenue) is not int:
            # Money is never a float: cents are whole numbers.
            raise TypeError("revenue_amount_in_cents must be an int (cents)")
        if not 0 <= revenue <= MAX_REVENUE_CENTS:
            raise ValueError(f"revenue_amount_in_cents must be between 0 and {MAX_REVENUE_CENTS}")
        if occurred_at is None:
            when: float | datetime | str = time.time()
        elif isinstance(occurred_at, datetime):
            if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
                raise ValueError("occurred_at must be timezone-aware")
            when = occurred_at
        elif isinstance(occurred_at, str):
            when = occurred_at
        else:
            raise TypeError("occurred_at must be a datetime, an ISO 8601 string or None")
        if idempotency_key is None:
            idempotency_key = f"{self._key_prefix}{next(self._key_counter)}"
        elif type(idempotency_key) is not str or not idempotency_key:
            raise TypeError("idempotency_key must be a non-empty string")
        usages = bucket.take_all() if bucket is not None else ()
        if not usages:
            self._log.warning(
                "track() for customer %r without add_usage() first: nothing to send",
                customer_id,
            )
            return None
        if not self._deliverer.put(
            PendingEvent(customer_id, event_type, revenue, when, usages, idempotency_key)
        ):
            return None
        return idempotency_key

    # -- budgets -----------------------------------------------------------

    def check_budget(self, *, customer_id: str, event_type: str = DEFAULT_EVENT_TYPE) -> None:
        """Raise ``BudgetExceeded`` (or ``BudgetUnavailable`` when failing closed) if blocked."""
        if type(customer_id) is not str or not customer_id:
            raise TypeError('customer_id must be a non-empty string, e.g. str(user.id) -> "8291"')
        self._guard.check(customer_id=customer_id, event_type=event_type)

    def guarded_call(
        self, *, customer_id: str, event_type: str = DEFAULT_EVENT_TYPE, call: Callable[[], T]
    ) -> T:
        """Run ``call()`` unless the blocklist blocks this customer, event type or organization.

        Raises ``BudgetExceeded`` (never calling ``call``) when blocked.
        """
        self.check_budget(customer_id=customer_id, event_type=event_type)
        return call()

    async def aguarded_call(
        self,
        *,
        customer_id: str,
        event_type: str = DEFAULT_EVENT_TYPE,
        call: Callable[[], Awaitable[T]],
    ) -> T:
        """``guarded_call`` for coroutines: a blocklist refresh runs off the event loop."""
        if self._guard.needs_refresh():
            await asyncio.to_thread(
                self.check_budget, customer_id=customer_id, event_type=event_type
            )
        else:
            self.check_budget(customer_id=customer_id, event_type=event_type)
        return await call()

    # -- lifecycle ---------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued event is handled; False if ``timeout`` passed first."""
        return self._deliverer.flush(self._shutdown_timeout if timeout is None else timeout)

    def shutdown(self, timeout: float | None = None) -> bool:
        """Send queued events (for at most ``timeout`` s) and stop; True when all were sent."""
        return self._deliverer.shutdown(self._shutdown_timeout if timeout is None else timeout)

    def stats(self) -> dict[str, int]:
        """Delivery counters: enqueued, created, duplicate, rejected, dropped, undelivered..."""
        return self._deliverer.stats()

    def __enter__(self) -> AiCostCalc:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()


def _shutdown_at_exit(ref: weakref.ref[AiCostCalc]) -> None:
    client = ref()
    if client is not None:
        client.shutdown()


def _reset_clients_after_fork() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_clients_after_fork)
