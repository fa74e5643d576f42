"""Budget guard: a cached copy of ``GET /api/v1/budgets/blocklist``.

The cache is refreshed at most once per ``ttl_seconds`` (as the server says),
with ``since_version`` so that an unchanged blocklist costs a tiny answer
(``"changed": false``, keep the cached sets). Only one thread refreshes at a
time; the others keep using the previous answer meanwhile, and wait only
when there is no answer at all yet.

When the server cannot be reached (connection error, timeout, non-200,
unreadable body) the guard does not retry on every call: it waits
``retry_interval`` seconds (or the server's ``Retry-After``) before the
next attempt, and meanwhile either fails open (uses the last known
blocklist, or allows everything when there is none) or fails closed
(raises ``BudgetUnavailable``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ai_cost_calc.backoff import parse_retry_after
from ai_cost_calc.errors import BudgetExceeded, BudgetUnavailable
from ai_cost_calc.transport import Connection, TransportError

BLOCKLIST_PATH = "/api/v1/budgets/blocklist"


@dataclass(frozen=True, slots=True)
class BlockState:
    version: int
    ttl_seconds: float
    organization: bool
    event_types: frozenset[str]
    customer_ids: frozenset[str]
    recompute_in_progress: bool = False


_NOTHING_BLOCKED = BlockState(
    version=-1, ttl_seconds=0, organization=False, event_types=frozenset(), customer_ids=frozenset()
)


class _FetchFailed(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetGuard:
    def __init__(
        self,
        *,
        connect: Callable[[], Connection],
        fail_open: bool,
        timeout: float,
        retry_interval: float,
        logger: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._fail_open = fail_open
        self._timeout = timeout
        self._retry_interval = retry_interval
        self._log = logger
        self._clock = clock
        self._refresh_lock = threading.Lock()
        self._state: BlockState | None = None
        self._expires_at = float("-inf")
        self._retry_at = float("-inf")
        self._last_error: str | None = None

    @property
    def state(self) -> BlockState | None:
        return self._state

    def needs_refresh(self) -> bool:
        return not (self._state is not None and self._clock() < self._expires_at)

    def check(self, *, customer_id: str, event_type: str) -> None:
        """Raise ``BudgetExceeded`` if the call is blocked (widest scope first)."""
        state = self._current_state()
        if state.organization:
            scope = "organization"
        elif event_type in state.event_types:
            scope = "event_type"
        elif customer_id in state.customer_ids:
            scope = "customer"
        else:
            return
        raise BudgetExceeded(
            scope=scope,
            customer_id=customer_id,
            event_type=event_type,
            version=state.version if state is not _NOTHING_BLOCKED else None,
        )

    def invalidate_if_older(self, version: int) -> None:
        """The events endpoint reported ``budget_state_version``: refresh on next check if newer."""
        state = self._state
        if state is not None and version > state.version:
            self._expires_at = float("-inf")

    def _current_state(self) -> BlockState:
        state = self._state
        if state is not None and self._clock() < self._expires_at:
            return state
        if self._clock() < self._retry_at:
            return self._unreachable(state)
        # With an answer in hand, don't queue behind a refresh in progress.
        if not self._refresh_lock.acquire(blocking=state is None):
            return state  # type: ignore[return-value]  # non-blocking only when state exists
        try:
            state = self._state
            now = self._clock()
            if state is not None and now < self._expires_at:
                return state
            if now < self._retry_at:
                return self._unreachable(state)
            try:
                fresh = self._fetch(state)
            except _FetchFailed as exc:
                wait = max(self._retry_interval, exc.retry_after or 0.0)
                self._retry_at = self._clock() + wait
                self._last_error = str(exc)
                self._log.warning(
                    "TokenLedger blocklist unavailable (%s); failing %s for %.1fs",
                    exc,
                    "open" if self._fail_open else "closed",
                    wait,
                )
                return self._unreachable(state)
            self._state = fresh
            self._expires_at = self._clock() + fresh.ttl_seconds
            self._last_error = None
            return fresh
        finally:
            self._refresh_lock.release()

    def _unreachable(self, state: BlockState | None) -> BlockState:
        if not self._fail_open:
            raise BudgetUnavailable(
                f"TokenLedger blocklist unavailable ({self._last_error}) and fail_open=False"
            )
        return state if state is not None else _NOTHING_BLOCKED

    def _fetch(self, previous: BlockState | None) -> BlockState:
        data = self._get(previous.version if previous is not None else None)
        if data.get("changed") is False:
            if previous is None:
                # "unchanged" relative to nothing: ask for the full state.
                data = self._get(None)
            else:
                return replace(
                    previous,
                    version=_int(data, "version", previous.version),
                    ttl_seconds=_ttl(data, previous.ttl_seconds),
                    recompute_in_progress=bool(data.get("recompute_in_progress", False)),
                )
        blocked = data.get("blocked")
        if not isinstance(blocked, dict):
            raise _FetchFailed("blocklist answer without a 'blocked' object")
        event_types = blocked.get("event_types") or []
        customer_ids = blocked.get("customer_ids") or []
        if not isinstance(event_types, list) or not isinstance(customer_ids, list):
            raise _FetchFailed("blocklist 'event_types'/'customer_ids' are not lists")
        return BlockState(
            version=_int(data, "version", 0),
            ttl_seconds=_ttl(data, 30.0),
            organization=bool(blocked.get("organization", False)),
            event_types=frozenset(str(value) for value in event_types),
            customer_ids=frozenset(str(value) for value in customer_ids),
            recompute_in_progress=bool(data.get("recompute_in_progress", False)),
        )

    def _get(self, since_version: int | None) -> dict:
        path = BLOCKLIST_PATH
        if since_version is not None:
            path = f"{path}?since_version={since_version}"
        connection = self._connect()
        try:
            response = connection.request("GET", path, timeout=self._timeout)
        except TransportError as exc:
            raise _FetchFailed(f"connection error: {exc}") from exc
        finally:
            connection.close()
        if response.status != 200:
            raise _FetchFailed(
                f"HTTP {response.status}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        try:
            data = json.loads(response.body)
        except ValueError as exc:
            raise _FetchFailed("blocklist answer is not JSON") from exc
        if not isinstance(data, dict):
            raise _FetchFailed("blocklist answer is not a JSON object")
        return data


def _int(data: dict, key: str, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _FetchFailed(f"blocklist {key!r} is not an integer")
    return value


def _ttl(data: dict, default: float) -> float:
    value = data.get("ttl_seconds", default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _FetchFailed("blocklist 'ttl_seconds' is not a number")
    return max(0.0, float(value))
