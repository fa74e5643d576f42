"""Retry timing: exponential backoff with full jitter, and ``Retry-After`` parsing."""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime


def full_jitter_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    "Full jitter" (uniform between 0 and the exponential ceiling) spreads the
    retries of many clients that failed together, so a recovering server is
    not hit by a synchronized wave.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    # 2**attempt overflows floats only past ~1000; the cap is reached long before.
    ceiling = min(cap, base * (2 ** min(attempt - 1, 60)))
    return (rng or random).uniform(0.0, ceiling)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
