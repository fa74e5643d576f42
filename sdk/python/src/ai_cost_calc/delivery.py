"""Background delivery of tracked events to ``POST /api/v1/events``.

The caller's thread only appends a small object to a bounded deque under a
lock held for a few hundred nanoseconds. One daemon thread per client does
everything else: it builds the JSON, sends batches of at most 100 events,
retries what may succeed later, and logs what will not.

Delivery guarantees:

* every event carries an ``idempotency_key`` fixed before its first attempt,
  so a retry after a lost response is answered ``"duplicate"`` by the server
  instead of being counted twice;
* 429, 5xx and connection errors are retried with full-jitter exponential
  backoff, or after exactly ``Retry-After`` when the server sends it;
* a 4xx answer for the whole request (other than 429) is not retried; for
  400/413/422 a batch of several events is split in halves first, so one bad
  event cannot take good ones down with it;
* a per-event error result is logged and not retried;
* when the queue is full the OLDEST queued event is dropped, counted and a
  warning is logged (rate-limited);
* ``shutdown(timeout)`` sends what is queued and gives up at the deadline.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ai_cost_calc.backoff import full_jitter_delay, parse_retry_after
from ai_cost_calc.transport import Connection, HttpResponse, TransportError

EVENTS_PATH = "/api/v1/events"
MAX_BATCH_SIZE = 100  # the events endpoint takes at most 100 events per request
_DROP_LOG_INTERVAL = 10.0  # seconds between two "queue full" warnings
_SPLIT_STATUSES = frozenset({400, 413, 422})


class PendingEvent:
    """What ``track()`` enqueues: plain values, encoded to JSON by the worker."""

    __slots__ = (
        "customer_id",
        "event_type",
        "idempotency_key",
        "occurred_at",
        "revenue_amount_in_cents",
        "usages",
    )

    def __init__(
        self,
        customer_id: str,
        event_type: str,
        revenue_amount_in_cents: int,
        occurred_at: float | datetime | str,
        usages: tuple[tuple[str, int, int, int, int, int], ...],
        idempotency_key: str,
    ) -> None:
        self.customer_id = customer_id
        self.event_type = event_type
        self.revenue_amount_in_cents = revenue_amount_in_cents
        self.occurred_at = occurred_at
        self.usages = usages
        self.idempotency_key = idempotency_key


def format_occurred_at(value: float | datetime | str) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix; strings are sent as given."""
    if isinstance(value, str):
        return value
    moment = value.astimezone(UTC) if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode_event(event: PendingEvent) -> dict[str, object]:
    """The MarginDash event object for one pending event."""
    vendor_responses = []
    for model, input_tokens, output_tokens, cached, reasoning, cache_creation in event.usages:
        response: dict[str, object] = {
            "model": model,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
        }
        # Extensions to the seed's three fields, sent only when they carry
        # information so that a plain MarginDash-shaped server sees its shape.
        if cached:
            response["cached_input_tokens"] = cached
        if reasoning:
            response["reasoning_tokens"] = reasoning
        if cache_creation:
            response["cache_creation_input_tokens"] = cache_creation
        vendor_responses.append(response)
    return {
        "customer_id": event.customer_id,
        "event_type": event.event_type,
        "revenue_amount_in_cents": event.revenue_amount_in_cents,
        "occurred_at": format_occurred_at(event.occurred_at),
        "idempotency_key": event.idempotency_key,
        "vendor_responses": vendor_responses,
    }


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    max_queue_size: int = 10_000
    max_batch_size: int = MAX_BATCH_SIZE
    flush_interval: float = 1.0
    request_timeout: float = 10.0
    base_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retries: int | None = None  # None: retry until success or shutdown deadline
    max_retry_after: float = 300.0

    def __post_init__(self) -> None:
        if self.max_queue_size < 1:
            raise ValueError("max_queue_size must be at least 1")
        if not 1 <= self.max_batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"max_batch_size must be between 1 and {MAX_BATCH_SIZE}")
        for name in ("flush_interval", "request_timeout", "base_backoff", "max_backoff"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_retries is not None and self.max_retries < 0:
            raise ValueError("max_retries must be None or >= 0")


class Deliverer:
    def __init__(
        self,
        *,
        connect: Callable[[], Connection],
        config: DeliveryConfig,
        logger: logging.Logger,
        on_budget_state_version: Callable[[int], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._connect = connect
        self._config = config
        self._log = logger
        self._on_budget_state_version = on_budget_state_version
        self._rng = rng or random.Random()
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: deque[PendingEvent] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._deadline: float | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._last_drop_log = float("-inf")
        self._drops_since_log = 0
        self._counters = dict.fromkeys(
            (
                "enqueued",
                "created",
                "duplicate",
                "rejected",
                "dropped",
                "undelivered",
                "retries",
                "requests",
            ),
            0,
        )

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's thread and queue (the parent sends those)."""
        self._init_state()

    # -- caller side -------------------------------------------------------

    def put(self, event: PendingEvent) -> bool:
        """Enqueue without blocking; False when the client is shut down."""
        dropped_log = 0
        with self._lock:
            if self._closed:
                self._counters["dropped"] += 1
                closed = True
            else:
                closed = False
                queue = self._queue
                if len(queue) >= self._config.max_queue_size:
                    queue.popleft()
                    self._counters["dropped"] += 1
                    self._drops_since_log += 1
                    now = time.monotonic()
                    if now - self._last_drop_log >= _DROP_LOG_INTERVAL:
                        dropped_log = self._drops_since_log
                        self._drops_since_log = 0
                        self._last_drop_log = now
                queue.append(event)
                self._counters["enqueued"] += 1
                full = len(queue) >= self._config.max_batch_size
                if self._thread is None:
                    self._start()
        if closed:
            self._log.warning("track() after shutdown(): event for %r not sent", event.customer_id)
            return False
        if dropped_log:
            self._log.warning(
                "TokenLedger event queue full (max_queue_size=%d): dropped %d oldest event(s) "
                "since the last warning; %d dropped in all",
                self._config.max_queue_size,
                dropped_log,
                self._counters["dropped"],
            )
        if full and not self._wake.is_set():  # Event.set() takes a lock: skip when set
            self._wake.set()
        return True

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="tokenledger-sdk-delivery", daemon=True)
        self._thread = thread
        thread.start()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far has been handled; False on timeout."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._idle:
            while self._queue or self._in_flight:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> bool:
        """Send what is queued, for at most ``timeout`` seconds. True when nothing is left."""
        with self._lock:
            already_closed = self._closed
            self._closed = True
            if not already_closed:
                self._deadline = time.monotonic() + max(0.0, timeout)
            thread = self._thread
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            deadline = self._deadline if self._deadline is not None else time.monotonic()
            # The worker stops by the deadline by itself; the grace covers
            # the return from a request whose timeout was clamped to it.
            thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
            if thread.is_alive():
                return False
        with self._lock:
            left = len(self._queue)
            if left:
                # Never started or timed out: what is still queued will not be sent.
                self._queue.clear()
                self._counters["undelivered"] += left
        if left:
            self._log.error("TokenLedger shutdown: %d queued event(s) not sent", left)
        return not left and self._counters["undelivered"] == 0

    def stats(self) -> dict[str, int]:
        with self._lock:
            snapshot = dict(self._counters)
            snapshot["queued"] = len(self._queue)
        return snapshot

    # -- worker side -------------------------------------------------------

    def _run(self) -> None:
        connection = self._connect()
        try:
            while True:
                self._wake.wait(self._config.flush_interval)
                self._wake.clear()
                stopping = self._stopping.is_set()
                while True:
                    batch = self._take_batch()
                    if not batch:
                        break
                    try:
                        self._deliver(connection, batch)
                    except Exception:
                        # A bug here must not kill delivery for the rest of the process.
                        self._log.exception("TokenLedger delivery failed unexpectedly")
                        self._counters["undelivered"] += len(batch)
                    finally:
                        with self._idle:
                            self._in_flight = 0
                            self._idle.notify_all()
                    if self._past_deadline():
                        break
                if stopping:
                    return
        finally:
            connection.close()
            with self._idle:
                self._idle.notify_all()

    def _take_batch(self) -> list[PendingEvent]:
        with self._lock:
            queue = self._queue
            n = min(len(queue), self._config.max_batch_size)
            batch = [queue.popleft() for _ in range(n)]
            self._in_flight = n
        return batch

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deliver(self, connection: Connection, batch: list[PendingEvent]) -> None:
        self._send(connection, [encode_event(event) for event in batch])

    def _send(self, connection: Connection, events: list[dict[str, object]]) -> None:
        body = json.dumps({"events": events}, separators=(",", ":")).encode()
        attempt = 0
        while True:
            timeout = self._config.request_timeout
            if self._deadline is not None:
                timeout = min(timeout, self._deadline - time.monotonic())
                if timeout <= 0:
                    self._give_up(events, "shutdown deadline reached")
                    return
            retry_after: float | None = None
            self._counters["requests"] += 1
            try:
                response = connection.request("POST", EVENTS_PATH, body=body, timeout=timeout)
            except TransportError as exc:
                reason = f"connection error ({exc})"
            else:
                status = response.status
                if 200 <= status < 300:
                    self._record_results(events, response)
                    return
                if status == 429 or status >= 500:
                    reason = f"HTTP {status}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                elif status in _SPLIT_STATUSES and len(events) > 1:
                    middle = len(events) // 2
                    self._log.warning(
                        "TokenLedger rejected a batch of %d events with HTTP %d; "
                        "resending it in two halves to isolate the bad event",
                        len(events),
                        status,
                    )
                    self._send(connection, events[:middle])
                    self._send(connection, events[middle:])
                    return
                else:
                    self._counters["rejected"] += len(events)
                    self._log.error(
                        "TokenLedger rejected %d event(s) with HTTP %d (not retried): %s",
                        len(events),
                        status,
                        _snippet(response.body),
                    )
                    return
            attempt += 1
            if self._config.max_retries is not None and attempt > self._config.max_retries:
                self._give_up(events, f"{reason}; {self._config.max_retries} retries exhausted")
                return
            if retry_after is not None:
                delay = min(retry_after, self._config.max_retry_after)
            else:
                delay = full_jitter_delay(
                    attempt,
                    base=self._config.base_backoff,
                    cap=self._config.max_backoff,
                    rng=self._rng,
                )
            self._log.info(
                "TokenLedger delivery of %d event(s) failed (%s); retry %d in %.2fs",
                len(events),
                reason,
                attempt,
                delay,
            )
            if not self._sleep(delay):
                self._give_up(events, f"{reason}; next retry would pass the shutdown deadline")
                return
            self._counters["retries"] += 1

    def _sleep(self, delay: float) -> bool:
        """Wait ``delay`` seconds; False when that would pass the shutdown deadline."""
        target = time.monotonic() + delay
        while True:
            deadline = self._deadline
            if deadline is not None and target > deadline:
                return False
            remaining = target - time.monotonic()
            if remaining <= 0:
                return True
            if self._stopping.is_set():
                time.sleep(remaining)
                return True
            # Woken early by shutdown(): loop to check the new deadline.
            self._stopping.wait(remaining)

    def _give_up(self, events: list[dict[str, object]], reason: str) -> None:
        # Log before counting: whoever sees the counter move can rely on the error being logged.
        self._log.error("TokenLedger gave up on %d event(s): %s", len(events), reason)
        self._counters["undelivered"] += len(events)

    def _record_results(self, events: list[dict[str, object]], response: HttpResponse) -> None:
        try:
            payload = json.loads(response.body)
        except ValueError:
            payload = None
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list) or len(results) != len(events):
            # Accepted (2xx) but not in the documented shape: nothing to retry.
            self._counters["created"] += len(events)
            self._log.warning(
                "TokenLedger accepted %d event(s) with an unexpected body: %s",
                len(events),
                _snippet(response.body),
            )
            return
        for event, result in zip(events, results, strict=True):
            status = result.get("status") if isinstance(result, dict) else None
            if status == "created":
                self._counters["created"] += 1
            elif status == "duplicate":
                self._counters["duplicate"] += 1
            else:
                self._counters["rejected"] += 1
                self._log.error(
                    "TokenLedger rejected event %s for customer %r (not retried): %s",
                    event["idempotency_key"],
                    event["customer_id"],
                    json.dumps(result)[:500],
                )
        version = payload.get("budget_state_version")
        if isinstance(version, int) and self._on_budget_state_version is not None:
            self._on_budget_state_version(version)


def _snippet(body: bytes) -> str:
    return body[:500].decode("utf-8", "replace")
