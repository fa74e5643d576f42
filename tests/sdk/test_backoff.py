"""Retry timing: full-jitter bounds and Retry-After parsing (pure functions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from ai_cost_calc.backoff import full_jitter_delay, parse_retry_after
from hypothesis import given
from hypothesis import strategies as st


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=600),
    seed=st.integers(),
)
def test_full_jitter_stays_between_zero_and_the_capped_exponential(attempt, base, cap, seed):
    delay = full_jitter_delay(attempt, base=base, cap=cap, rng=random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** min(attempt - 1, 60))


def test_full_jitter_spreads_over_the_whole_range():
    rng = random.Random(1)
    draws = [full_jitter_delay(4, base=0.5, cap=30, rng=rng) for _ in range(2000)]
    # Ceiling for the 4th retry: 0.5 * 2**3 = 4 s. Draws fill [0, 4), not one value.
    assert max(draws) <= 4.0
    assert min(draws) < 0.2
    assert max(draws) > 3.8
    assert 1.8 < sum(draws) / len(draws) < 2.2


def test_full_jitter_ceiling_doubles_then_caps():
    class Top(random.Random):
        def uniform(self, a, b):
            return b

    ceilings = [full_jitter_delay(n, base=0.5, cap=5, rng=Top()) for n in range(1, 8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_attempt_counts_from_one():
    with pytest.raises(ValueError):
        full_jitter_delay(0, base=1, cap=1)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (" 120 ", 120.0), ("0", 0.0), ("1.5", 1.5), (None, None), ("", None),
     ("soon", None), ("-3", None)],
)  # fmt: skip
def test_retry_after_delta_seconds(header, seconds):
    assert parse_retry_after(header) == seconds


def test_retry_after_http_date():
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(header, now=now) == 42.0
    past = format_datetime(now - timedelta(seconds=42), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0
