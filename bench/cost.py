"""Costs per second: TokenLedger's cost engine against `genai_prices.calc_price`, same calls.

Both sides price the same 100,000 generated calls (slug, tokens incl. cached/cache-write/reasoning,
date) from the catalog bundled in the installed genai-prices package: ours through an in-process
`CatalogSnapshot` (slug + date lookup, then the exact Decimal cost), theirs through
`calc_price(..., provider_id="openrouter")`. Totals are checked equal before the ratio is printed.

    python bench/cost.py [--calls N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genai_prices import Usage, calc_price

from costcalc.engine import CatalogSnapshot
from costcalc.sources import load_genai_prices_bundled


def generate_calls(slugs: list[str], count: int, seed: int) -> list[tuple]:
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    calls = []
    for _ in range(count):
        input_tokens = rng.randrange(0, 300_000)
        cached = rng.randrange(0, input_tokens + 1) if rng.random() < 0.4 else 0
        cache_write = rng.randrange(0, input_tokens - cached + 1) if rng.random() < 0.2 else 0
        output_tokens = rng.randrange(0, 20_000)
        reasoning = rng.randrange(0, output_tokens + 1) if rng.random() < 0.3 else 0
        when = start + timedelta(seconds=rng.randrange(0, 3 * 365 * 86_400))
        calls.append((rng.choice(slugs), when, input_tokens, output_tokens, cached, cache_write, reasoning))
    return calls


def run_ours(snapshot: CatalogSnapshot, calls: list[tuple]) -> tuple[float, int]:
    total = 0
    cost = snapshot.cost_microdollars
    began = time.perf_counter()
    for slug, when, inp, out, cached, cache_write, reasoning in calls:
        total += cost(
            slug,
            when,
            input_tokens=inp,
            output_tokens=out,
            cached_input_tokens=cached,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
        )
    return time.perf_counter() - began, total


def run_genai(calls: list[tuple]) -> tuple[float, int]:
    total = 0
    began = time.perf_counter()
    for slug, when, inp, out, cached, cache_write, reasoning in calls:
        usage = Usage(
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cached,
            cache_write_tokens=cache_write,
            output_reasoning_tokens=reasoning,
        )
        price = calc_price(usage, slug, provider_id="openrouter", genai_request_timestamp=when).total_price
        total += int((price * 1_000_000).to_integral_value(rounding=ROUND_HALF_UP))
    return time.perf_counter() - began, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20260401)
    args = parser.parse_args()

    source = load_genai_prices_bundled()
    snapshot = CatalogSnapshot(source.records)
    calls = generate_calls(sorted(source.slugs), args.calls, args.seed)
    # warm both sides (imports, genai-prices' lookup caches) outside the timed loops
    run_ours(snapshot, calls[:1000])
    run_genai(calls[:1000])

    ours_seconds, ours_total = run_ours(snapshot, calls)
    genai_seconds, genai_total = run_genai(calls)
    if ours_total != genai_total:
        print(f"MISMATCH: ours {ours_total} µ$ vs genai-prices {genai_total} µ$", file=sys.stderr)
        return 1
    ours_rate = len(calls) / ours_seconds
    genai_rate = len(calls) / genai_seconds
    print(f"calls:          {len(calls):,} over {len(source.slugs):,} slugs (same calls, same total {ours_total:,} µ$)")
    print(f"costcalc:       {ours_rate:>12,.0f} costs/s ({ours_seconds:.2f} s)")
    print(f"genai-prices:   {genai_rate:>12,.0f} costs/s ({genai_seconds:.2f} s)")
    print(f"ratio:          {ours_rate / genai_rate:.1f}x (target >= 10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
