"""The cost engine: exact, pure, and fast.

How tokens are counted (the same semantics as `genai_prices.calc_price`, so the two agree to the
microdollar):

* ``input_tokens`` is the *whole* prompt, cache reads and cache writes included (OpenAI's
  ``prompt_tokens``, OpenRouter's ``native_tokens_prompt``). ``cached_input_tokens`` and
  ``cache_write_tokens`` are the parts of it that were read from / written to the prompt cache.
* ``output_tokens`` is the whole completion, reasoning included (``completion_tokens``);
  ``reasoning_tokens`` is the part of it spent on internal reasoning.
* A part with a distinct price is billed at that price and taken out of its parent; a part whose
  price is ``None`` ("not distinct") stays in its parent and is billed at the parent's price.
  So with a cache-read price: ``(input - cached) x input + cached x cache_read``; without one,
  ``input x input``.
* Long-context tiers: the last tier with ``input_tokens > above_input_tokens`` replaces every price
  for the whole call (the "cliff" model, as the vendors and genai-prices do).
* A per-request fee (USD) is added once per call. Slugs ending in ``:free`` cost 0.
* Parts may not exceed their parent (``cached + cache_write <= input``, ``reasoning <= output``):
  such usage is rejected with `InvalidUsageError` rather than priced in some arbitrary way.

Arithmetic: prices are Decimal USD per million tokens, so ``tokens x price`` is already in
microdollars (USD 1e-6). The sum is computed exactly: each record's Decimal prices are shifted once
by a common power of ten into integers (`CompiledPrice`; an exact change of unit, checked under a
Decimal context that traps `Inexact`/`Rounded`), token counts multiply them as Python integers,
which never overflow or round. The exact total is then rounded **once**, to a whole microdollar,
ROUND_HALF_UP (half a microdollar goes up). That is the only rounding in the cost path; callers
store the resulting `int`.
"""

from __future__ import annotations

import difflib
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    localcontext,
)
from functools import lru_cache
from typing import Any

from costcalc.money import MICRODOLLARS_PER_DOLLAR
from costcalc.sources import (
    SOURCE_GENAI_PRICES,
    SOURCE_OPENROUTER,
    SOURCE_OPENROUTER_HISTORY,
    PriceRecord,
)

__all__ = [
    "DEFAULT_SOURCE_PRIORITY",
    "FREE_SUFFIX",
    "CatalogSnapshot",
    "InvalidUsageError",
    "PriceNotInEffectError",
    "PricingError",
    "UnknownModelError",
    "cost_microdollars",
]

FREE_SUFFIX = ":free"
DEFAULT_SOURCE_PRIORITY = (SOURCE_OPENROUTER, SOURCE_OPENROUTER_HISTORY, SOURCE_GENAI_PRICES)
SUGGESTION_LIMIT = 3

_EXACT = Context(
    prec=120,
    rounding=ROUND_HALF_UP,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact, Rounded],
)
_ZERO = Decimal(0)


class PricingError(LookupError):
    """No price can be found for a call."""


class UnknownModelError(PricingError):
    """The slug is not in the catalog. Carries up to three close slugs that are."""

    code = "unknown_model"

    def __init__(self, slug: str, suggestions: Sequence[str] = ()) -> None:
        self.slug = slug
        self.suggestions = tuple(suggestions)[:SUGGESTION_LIMIT]
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown model {slug!r}{hint}")


class PriceNotInEffectError(PricingError):
    """The slug is known, but none of its prices is in effect at that moment."""

    code = "price_not_in_effect"

    def __init__(self, slug: str, when: datetime) -> None:
        self.slug = slug
        self.when = when
        self.suggestions: tuple[str, ...] = ()
        super().__init__(f"model {slug!r} has no price in effect at {when.isoformat()}")


class InvalidUsageError(ValueError):
    """Token counts that cannot describe a real call (negative, not integers, or a part larger
    than its whole)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


def _usage_error(
    input_tokens: Any, output_tokens: Any, cached_input_tokens: Any, cache_write_tokens: Any, reasoning_tokens: Any
) -> InvalidUsageError | None:
    for field, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cached_input_tokens", cached_input_tokens),
        ("cache_write_tokens", cache_write_tokens),
        ("reasoning_tokens", reasoning_tokens),
    ):
        if type(value) is not int:  # bool, float and Decimal are not token counts
            return InvalidUsageError(field, f"must be an integer, got {value!r}")
        if value < 0:
            return InvalidUsageError(field, "must not be negative")
    if cached_input_tokens + cache_write_tokens > input_tokens:
        return InvalidUsageError(
            "cached_input_tokens", "cached and cache-write tokens are part of input_tokens and cannot exceed it"
        )
    if reasoning_tokens > output_tokens:
        return InvalidUsageError("reasoning_tokens", "reasoning tokens are part of output_tokens and cannot exceed it")
    return None


class _Rates:
    """One price level (base or a tier) as integers: each price x 10**scale."""

    __slots__ = ("cache_read", "cache_write", "input", "output", "reasoning")

    def __init__(self, level: Any, scale: int) -> None:
        self.input = _scaled(level.input_per_mtok, scale)
        self.output = _scaled(level.output_per_mtok, scale)
        self.cache_read = None if level.cache_read_per_mtok is None else _scaled(level.cache_read_per_mtok, scale)
        self.cache_write = None if level.cache_write_per_mtok is None else _scaled(level.cache_write_per_mtok, scale)
        self.reasoning = None if level.reasoning_per_mtok is None else _scaled(level.reasoning_per_mtok, scale)


def _scaled(value: Decimal, scale: int) -> int:
    with localcontext(_EXACT):
        shifted = value.scaleb(scale)  # exact: traps Inexact/Rounded
    as_int = int(shifted)
    if as_int != shifted:
        raise ArithmeticError(f"{value} is not a multiple of 1e-{scale}")
    return as_int


def _decimals(value: Decimal) -> int:
    exponent = value.normalize(_EXACT).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


class CompiledPrice:
    """A `PriceRecord` turned into integers once, so pricing a call is a few integer
    multiplications. Every Decimal price is multiplied by the same power of ten, chosen so that all
    of them (and the request fee in microdollars) become integers: an exact change of unit, not a
    rounding. The cost is then the exact integer sum divided by that power of ten, rounded once."""

    __slots__ = ("base", "fee", "free", "half", "record", "tiers", "unit")

    def __init__(self, record: PriceRecord) -> None:
        self.record = record
        self.free = record.slug.endswith(FREE_SUFFIX)
        levels: list[Any] = [record, *record.tiers]
        prices = [
            price
            for level in levels
            for price in (
                level.input_per_mtok,
                level.output_per_mtok,
                level.cache_read_per_mtok,
                level.cache_write_per_mtok,
                level.reasoning_per_mtok,
            )
            if price is not None
        ]
        fee_microdollars = _EXACT.multiply(record.request_fee_usd, Decimal(MICRODOLLARS_PER_DOLLAR))
        scale = max([_decimals(price) for price in prices] + [_decimals(fee_microdollars)])
        self.unit = 10**scale
        self.half = self.unit // 2  # ROUND_HALF_UP of a non-negative integer / unit
        self.fee = _scaled(fee_microdollars, scale)
        self.base = _Rates(record, scale)
        self.tiers = tuple((tier.above_input_tokens, _Rates(tier, scale)) for tier in record.tiers)

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int,
        cache_write_tokens: int,
        reasoning_tokens: int,
    ) -> int:
        if not (  # the common valid call, checked inline; anything else gets _usage_error's exact answer
            type(input_tokens) is int
            and type(output_tokens) is int
            and type(cached_input_tokens) is int
            and type(cache_write_tokens) is int
            and type(reasoning_tokens) is int
            and cached_input_tokens >= 0
            and cache_write_tokens >= 0
            and cached_input_tokens + cache_write_tokens <= input_tokens
            and 0 <= reasoning_tokens <= output_tokens
        ):
            error = _usage_error(
                input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens
            )
            if error is not None:
                raise error
        if self.free:
            return 0
        rates = self.base
        for above, tier_rates in self.tiers:  # sorted ascending; the last one that applies wins
            if input_tokens > above:
                rates = tier_rates
            else:
                break
        total = self.fee
        if rates.cache_read is not None:
            total += cached_input_tokens * rates.cache_read
            input_tokens -= cached_input_tokens
        if rates.cache_write is not None:
            total += cache_write_tokens * rates.cache_write
            input_tokens -= cache_write_tokens
        if rates.reasoning is not None:
            total += reasoning_tokens * rates.reasoning
            output_tokens -= reasoning_tokens
        total += input_tokens * rates.input + output_tokens * rates.output
        return (total + self.half) // self.unit


def cost_microdollars(
    price: PriceRecord,
    *,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> int:
    """Cost of one call in integer microdollars; see the module docstring for the semantics and
    the single ROUND_HALF_UP rounding to the microdollar."""
    return CompiledPrice(price).cost(
        input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens
    )


# --------------------------------------------------------------------------------------------
# the in-process catalog snapshot

_MIN_TIME = datetime.min.replace(tzinfo=UTC)
_COMPACT_DATE = re.compile(r"(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)")


_ANTHROPIC_SNAPSHOT = re.compile(r"-(?:\d{8}|latest)$")
_ANTHROPIC_VERSION = re.compile(r"(?<=-)(\d+)-(\d)(?=-|$)")


def _anthropic_candidates(slug: str) -> tuple[str, ...]:
    """Catalog slugs an Anthropic API model id may stand for, most specific first:
    ``claude-sonnet-4-5-20250929`` → ``anthropic/claude-sonnet-4.5-20250929``, then
    ``anthropic/claude-sonnet-4.5`` (the API writes versions with dashes and appends a snapshot date;
    the catalog writes versions with dots, the snapshot only where its price differs). The SDK maps
    names the same way (`ai_cost_calc.anthropic_slug`), so both name a call alike."""
    name = slug.removeprefix("anthropic/")
    if not name.startswith("claude-"):
        return ()
    dotted = _ANTHROPIC_VERSION.sub(r"\1.\2", name)
    undated = _ANTHROPIC_SNAPSHOT.sub("", dotted)
    return tuple(dict.fromkeys(f"anthropic/{candidate}" for candidate in (name, dotted, undated)))


def _dashed_dates(slug: str) -> str:
    """``gpt-5.2-20251211`` → ``gpt-5.2-2025-12-11``: the fallback genai-prices applies to compact
    dated references that do not match as they are."""

    def replace_date(match: re.Match[str]) -> str:
        year, month, day = (int(match.group(index)) for index in range(2, 5))
        try:
            date(year, month, day)
        except ValueError:
            return match.group(0)
        return f"-{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(replace_date, slug)


class _Timeline:
    """The non-overlapping records of one slug from one source, by start, each compiled once."""

    __slots__ = ("compiled", "records", "starts")

    def __init__(self, records: Iterable[PriceRecord]) -> None:
        ordered = sorted(records, key=lambda record: record.effective_from or _MIN_TIME)
        self.records = ordered
        self.starts = [record.effective_from or _MIN_TIME for record in ordered]
        self.compiled = [CompiledPrice(record) for record in ordered]

    def at(self, when: datetime) -> CompiledPrice | None:
        index = bisect_right(self.starts, when) - 1
        if index < 0:
            return None
        compiled = self.compiled[index]
        until = compiled.record.effective_until
        if until is not None and when >= until:
            return None
        return compiled


def _timelines(records: Iterable[PriceRecord], priority: Sequence[str]) -> dict[str, tuple[_Timeline, ...]]:
    grouped: dict[str, dict[str, list[PriceRecord]]] = {}
    for record in records:
        grouped.setdefault(record.slug, {}).setdefault(record.source, []).append(record)
    rank = {source: position for position, source in enumerate(priority)}
    return {
        slug: tuple(
            _Timeline(by_source[source])
            for source in sorted(by_source, key=lambda source: (rank.get(source, len(rank)), source))
        )
        for slug, by_source in grouped.items()
    }


class CatalogSnapshot:
    """An immutable, in-process view of the whole catalog for fast "as of" lookups.

    * `price_as_of(slug, when)`: the price in force at `when` (``effective_from <= when <
      effective_until``). When several sources price the slug at that moment, the price that started
      most recently wins (it reflects the newest observed change); equal starts go to the source that
      comes first in `source_priority`.
    * Organization overrides (``overrides={organization_id: [records…]}``) win over the catalog for
      that organization whenever one is in force.
    * A slug is looked up as given, then lower-cased, then with compact dates dashed (as
      genai-prices does); ``vendor/model:free`` whose base model is known costs 0.
    * An unknown slug raises `UnknownModelError` with up to three suggestions; a known slug with no
      price in force at `when` raises `PriceNotInEffectError`.

    The Django layer builds one from the database and replaces it when prices change.
    """

    def __init__(
        self,
        records: Iterable[PriceRecord],
        *,
        overrides: Mapping[Any, Iterable[PriceRecord]] | None = None,
        source_priority: Sequence[str] = DEFAULT_SOURCE_PRIORITY,
        version: Any = None,
    ) -> None:
        self.version = version
        self._timelines = _timelines(records, source_priority)
        self._overrides = {
            organization_id: {slug: timelines[0] for slug, timelines in _timelines(items, ()).items()}
            for organization_id, items in (overrides or {}).items()
        }
        self._aliases: dict[str, str] = {}
        self._free_variants: dict[str, tuple[_Timeline, ...]] = {}
        self._sorted_slugs = sorted(self._timelines)
        self._by_model_part: dict[str, list[str]] | None = None
        self._suggest = lru_cache(maxsize=4096)(self._compute_suggestions)

    # -- introspection
    def __len__(self) -> int:
        return len(self._timelines)

    def __contains__(self, slug: object) -> bool:
        return isinstance(slug, str) and self._resolve(slug) is not None

    @property
    def slugs(self) -> list[str]:
        return list(self._sorted_slugs)

    def override_slugs(self, organization_id: Any) -> list[str]:
        return sorted(self._overrides.get(organization_id, ()))

    # -- lookups
    def _resolve(self, slug: str) -> str | None:
        if slug in self._timelines:
            return slug
        resolved = self._aliases.get(slug)
        if resolved is not None:
            return resolved
        lowered = slug.strip().lower()
        for candidate in (lowered, _dashed_dates(lowered), *_anthropic_candidates(lowered)):
            if candidate in self._timelines:
                resolved = candidate
                break
        if resolved is None and lowered.endswith(FREE_SUFFIX):
            base = self._resolve(lowered[: -len(FREE_SUFFIX)])
            if base is not None:
                resolved = lowered
                self._free_variants[resolved] = tuple(
                    _Timeline(
                        replace(
                            record,
                            slug=resolved,
                            display_name=f"{record.display_name} (free)",
                            input_per_mtok=_ZERO,
                            output_per_mtok=_ZERO,
                            cache_read_per_mtok=None,
                            cache_write_per_mtok=None,
                            reasoning_per_mtok=None,
                            request_fee_usd=_ZERO,
                            tiers=(),
                        )
                        for record in timeline.records
                    )
                    for timeline in self._timelines[base]
                )
        if resolved is not None and len(self._aliases) < 100_000:
            self._aliases[slug] = resolved
        return resolved

    def lookup(self, slug: str, when: datetime, *, organization_id: Any = None) -> tuple[CompiledPrice, bool]:
        """``(compiled price, is_override)`` in force for `slug` at `when` (`CompiledPrice.cost` prices
        a call with it); raises `UnknownModelError` or `PriceNotInEffectError`."""
        if when.tzinfo is None:
            raise ValueError("`when` must be timezone-aware")
        if organization_id is not None:
            org_overrides = self._overrides.get(organization_id)
            if org_overrides:
                timeline = org_overrides.get(slug) or org_overrides.get(slug.strip().lower())
                if timeline is not None and (found := timeline.at(when)) is not None:
                    return found, True
        key = self._resolve(slug)
        if key is None:
            raise UnknownModelError(slug, self.suggestions(slug))
        timelines = self._timelines.get(key) or self._free_variants[key]
        best: CompiledPrice | None = None
        best_start = _MIN_TIME
        for timeline in timelines:
            found = timeline.at(when)
            if found is not None:
                start = found.record.effective_from or _MIN_TIME
                if best is None or start > best_start:
                    best, best_start = found, start
        if best is None:
            raise PriceNotInEffectError(slug, when)
        return best, False

    def resolve(self, slug: str, when: datetime, *, organization_id: Any = None) -> tuple[PriceRecord, bool]:
        """``(record, is_override)`` in force for `slug` at `when`."""
        compiled, is_override = self.lookup(slug, when, organization_id=organization_id)
        return compiled.record, is_override

    def price_as_of(self, slug: str, when: datetime, *, organization_id: Any = None) -> PriceRecord:
        return self.lookup(slug, when, organization_id=organization_id)[0].record

    def cost_microdollars(
        self,
        slug: str,
        when: datetime,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        organization_id: Any = None,
    ) -> int:
        compiled = self.lookup(slug, when, organization_id=organization_id)[0]
        return compiled.cost(input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens)

    # -- "did you mean"
    def suggestions(self, slug: str, limit: int = SUGGESTION_LIMIT) -> tuple[str, ...]:
        return self._suggest(slug.strip().lower())[: max(0, min(limit, SUGGESTION_LIMIT))]

    def _compute_suggestions(self, slug: str) -> tuple[str, ...]:
        if not slug or not self._sorted_slugs:
            return ()
        found = difflib.get_close_matches(slug, self._sorted_slugs, n=SUGGESTION_LIMIT, cutoff=0.6)
        if len(found) < SUGGESTION_LIMIT:
            # "gpt-4o" or "open-ai/gpt-4o": compare the model part alone as well.
            if self._by_model_part is None:
                by_model: dict[str, list[str]] = {}
                for known in self._sorted_slugs:
                    by_model.setdefault(known.split("/", 1)[-1], []).append(known)
                self._by_model_part = by_model
            model_part = slug.split("/", 1)[-1]
            names = list(self._by_model_part)
            for name in difflib.get_close_matches(model_part, names, n=SUGGESTION_LIMIT, cutoff=0.75):
                for known in self._by_model_part[name]:
                    if known not in found:
                        found.append(known)
        return tuple(found[:SUGGESTION_LIMIT])
