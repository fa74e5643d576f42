"""Parsers that turn external price catalogs into plain, immutable `PriceRecord`s.

Everything here is pure Python (no Django, no network): a parser takes an already-decoded document
and returns a `SourceResult` with the records it could build and the models it had to skip, with a
reason, so a loader never prices anything silently.

Units: every `*_per_mtok` field is a `Decimal` of USD per million tokens; `request_fee_usd` is USD
per request. A cache or reasoning price of `None` means "not distinct": those tokens are billed as
ordinary input (cache) or output (reasoning) tokens, see `costcalc.engine`.

Sources:

* ``genai-prices``: the catalog bundled in the installed `genai_prices` package (its `data.py`
  holds `genai_prices.types.Provider` objects), or a v2 ``data.json`` document with the same shape.
  Only the ``openrouter`` provider is keyed on OpenRouter-style ``vendor/model[:variant]`` slugs,
  which are the slugs TokenLedger prices, so that provider is the one turned into records.
* ``openrouter``: an OpenRouter ``/api/v1/models`` document (bare array or ``{"data": [...]}``).
* ``openrouter-history``: the dated ``pricing_history.json`` format
  (``models[slug].history[] = {first_observed, last_observed, pricing}``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal, InvalidOperation
from typing import Any

__all__ = [
    "SOURCES",
    "SOURCE_GENAI_PRICES",
    "SOURCE_OPENROUTER",
    "SOURCE_OPENROUTER_HISTORY",
    "PriceRecord",
    "PriceTier",
    "SkippedModel",
    "SourceFormatError",
    "SourceResult",
    "canonical_decimal",
    "load_genai_prices_bundled",
    "parse_genai_prices_document",
    "parse_openrouter_history",
    "parse_openrouter_models",
    "tiers_from_json",
    "tiers_to_json",
    "vendor_of",
]

SOURCE_GENAI_PRICES = "genai-prices"
SOURCE_OPENROUTER = "openrouter"
SOURCE_OPENROUTER_HISTORY = "openrouter-history"
SOURCES = (SOURCE_GENAI_PRICES, SOURCE_OPENROUTER, SOURCE_OPENROUTER_HISTORY)

GENAI_PRICES_PROVIDER_ID = "openrouter"
_ZERO = Decimal(0)
# Decimal's default context keeps 28 digits; price conversions here must never round.
_WIDE = Context(prec=100)


class SourceFormatError(ValueError):
    """The document does not have the shape of the source it was given as."""


@dataclass(frozen=True, slots=True)
class PriceTier:
    """A long-context tier: these prices apply to *all* tokens of a call whose `input_tokens`
    is strictly greater than `above_input_tokens` (the "cliff" model used by genai-prices and by the
    vendors: "prompts > 200k tokens"). Every field is fully resolved (a field the source does not
    tier keeps its base price), so the engine just picks the last tier that applies.
    """

    above_input_tokens: int
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None
    reasoning_per_mtok: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceRecord:
    """One price of one model slug over one period ``[effective_from, effective_until)``.

    ``effective_from=None`` means "since the beginning" (the earliest price a source knows applies to
    any earlier event, as genai-prices does for its first price); ``effective_until=None`` means
    "until further notice".
    """

    slug: str
    vendor: str
    display_name: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None = None
    cache_write_per_mtok: Decimal | None = None
    reasoning_per_mtok: Decimal | None = None
    request_fee_usd: Decimal = _ZERO
    tiers: tuple[PriceTier, ...] = ()
    effective_from: datetime | None = None
    effective_until: datetime | None = None
    source: str = ""
    #: primary key of the database row this record was read from (None for parsed records)
    row_id: int | None = field(default=None, compare=False)

    def same_prices(self, other: PriceRecord) -> bool:
        """True when both records charge the same for every usage (dates, names, source aside)."""
        return self.price_key() == other.price_key()

    def price_key(self) -> tuple[Any, ...]:
        return (
            self.input_per_mtok,
            self.output_per_mtok,
            self.cache_read_per_mtok,
            self.cache_write_per_mtok,
            self.reasoning_per_mtok,
            self.request_fee_usd,
            self.tiers,
        )


@dataclass(frozen=True, slots=True)
class SkippedModel:
    slug: str
    reason: str


@dataclass(frozen=True, slots=True)
class SourceResult:
    source: str
    records: tuple[PriceRecord, ...]
    skipped: tuple[SkippedModel, ...] = field(default=())

    @property
    def slugs(self) -> frozenset[str]:
        return frozenset(record.slug for record in self.records)


# --------------------------------------------------------------------------------------------
# helpers


def vendor_of(slug: str) -> str:
    """``"anthropic/claude-opus-4:thinking"`` → ``"anthropic"``; OpenRouter's ``~vendor/…-latest``
    aliases belong to the same vendor."""
    return slug.split("/", 1)[0].lstrip("~")


def _decimal(value: Any) -> Decimal:
    """A finite, non-negative Decimal from a JSON number/string, never via binary float math."""
    if isinstance(value, bool):
        raise SourceFormatError(f"price {value!r} is not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # JSON decoded without parse_float=Decimal: repr() is the shortest string that round-trips,
        # i.e. exactly what the document said.
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            raise SourceFormatError(f"price {value!r} is not a number") from exc
    else:
        raise SourceFormatError(f"price {value!r} is not a number")
    if not result.is_finite() or result < 0:
        raise SourceFormatError(f"price {value!r} is not a finite non-negative number")
    return canonical_decimal(result)


def canonical_decimal(value: Decimal) -> Decimal:
    """Strip trailing zeros without switching to exponent notation (``2.000000`` → ``2``)."""
    if value == 0:
        return _ZERO
    value = value.normalize(_WIDE)
    if value.as_tuple().exponent > 0:  # type: ignore[operator]
        value = value.quantize(Decimal(1), context=_WIDE)
    return value


def _per_token_to_per_mtok(value: Any) -> Decimal:
    return canonical_decimal(_decimal(value).scaleb(6, _WIDE))


def _midnight_utc(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _parse_day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError as exc:
            raise SourceFormatError(f"bad date {value!r}") from exc
    raise SourceFormatError(f"bad date {value!r}")


def tiers_to_json(tiers: Sequence[PriceTier]) -> list[dict[str, Any]]:
    """JSON-safe form (Decimals as strings) for storage in a JSON column."""
    return [
        {
            "above_input_tokens": tier.above_input_tokens,
            "input_per_mtok": str(tier.input_per_mtok),
            "output_per_mtok": str(tier.output_per_mtok),
            "cache_read_per_mtok": None if tier.cache_read_per_mtok is None else str(tier.cache_read_per_mtok),
            "cache_write_per_mtok": None if tier.cache_write_per_mtok is None else str(tier.cache_write_per_mtok),
            "reasoning_per_mtok": None if tier.reasoning_per_mtok is None else str(tier.reasoning_per_mtok),
        }
        for tier in tiers
    ]


def tiers_from_json(raw: Iterable[Mapping[str, Any]] | None) -> tuple[PriceTier, ...]:
    def optional(value: Any) -> Decimal | None:
        return None if value is None else _decimal(value)

    tiers = [
        PriceTier(
            above_input_tokens=int(item["above_input_tokens"]),
            input_per_mtok=_decimal(item["input_per_mtok"]),
            output_per_mtok=_decimal(item["output_per_mtok"]),
            cache_read_per_mtok=optional(item.get("cache_read_per_mtok")),
            cache_write_per_mtok=optional(item.get("cache_write_per_mtok")),
            reasoning_per_mtok=optional(item.get("reasoning_per_mtok")),
        )
        for item in raw or ()
    ]
    return tuple(sorted(tiers, key=lambda tier: tier.above_input_tokens))


# --------------------------------------------------------------------------------------------
# genai-prices

# genai-prices price keys → our fields. Other keys (web searches, audio/image modality tokens,
# 1-hour cache writes) price usage TokenLedger does not record; with zero such usage they add
# nothing to genai-prices' own total either, so dropping them keeps parity.
_GENAI_FIELDS = {
    "input_mtok": "input_per_mtok",
    "output_mtok": "output_per_mtok",
    "cache_read_mtok": "cache_read_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
    "output_reasoning_mtok": "reasoning_per_mtok",
}
_TIERABLE_FIELDS = tuple(_GENAI_FIELDS.values())


def load_genai_prices_bundled(provider_id: str = GENAI_PRICES_PROVIDER_ID) -> SourceResult:
    """Records from the catalog shipped inside the installed `genai_prices` package (offline)."""
    from genai_prices.data import providers

    return parse_genai_prices_document(
        [_genai_object_to_raw(provider) for provider in providers], provider_id=provider_id
    )


def _genai_object_to_raw(value: Any) -> Any:
    """`genai_prices.types` objects (dataclasses + ModelPrice) → the v2 ``data.json`` shape."""
    from genai_prices import types as gp

    if isinstance(value, list):
        return [_genai_object_to_raw(item) for item in value]
    if isinstance(value, gp.ClauseOr):
        return {"or": [_genai_object_to_raw(item) for item in value.or_]}
    if isinstance(value, gp.ClauseAnd):
        return {"and": [_genai_object_to_raw(item) for item in value.and_]}
    if isinstance(value, gp.ModelPrice):
        return {key: _genai_object_to_raw(item) for key, item in vars(value).items() if item is not None}
    if isinstance(value, gp.TieredPrices):
        return {"base": value.base, "tiers": [{"start": tier.start, "price": tier.price} for tier in value.tiers]}
    if isinstance(value, gp.Provider):
        return {
            "id": value.id,
            "name": value.name,
            "models": [_genai_object_to_raw(model) for model in value.models],
        }
    if isinstance(value, gp.ModelInfo):
        return {
            "id": value.id,
            "name": value.name,
            "match": _genai_object_to_raw(value.match),
            "prices": _genai_object_to_raw(value.prices),
        }
    if isinstance(value, gp.ConditionalPrice):
        raw: dict[str, Any] = {"prices": _genai_object_to_raw(value.prices)}
        if value.constraint is not None:
            raw["constraint"] = _genai_object_to_raw(value.constraint)
        return raw
    if isinstance(value, gp.StartDateConstraint):
        return {"start_date": value.start_date}
    if isinstance(value, gp.TimeOfDateConstraint):
        return {"start_time": value.start_time, "end_time": value.end_time}
    if isinstance(value, (gp.ClauseEquals, gp.ClauseStartsWith, gp.ClauseEndsWith, gp.ClauseContains, gp.ClauseRegex)):
        (key, text), *_ = vars(value).items()
        return {key: text}
    return value


def _clause_matcher(clause: Mapping[str, Any]) -> Callable[[str], bool]:
    """genai-prices' match logic: the reference is lower-cased, then equals / starts_with /
    ends_with / contains compare case-insensitively, regex searches, or/and combine."""
    if not isinstance(clause, Mapping) or len(clause) != 1:
        raise SourceFormatError(f"bad match clause {clause!r}")
    ((kind, arg),) = clause.items()
    if kind == "equals":
        text = arg.lower()
        return lambda ref: ref == text
    if kind == "starts_with":
        text = arg.lower()
        return lambda ref: ref.startswith(text)
    if kind == "ends_with":
        text = arg.lower()
        return lambda ref: ref.endswith(text)
    if kind == "contains":
        text = arg.lower()
        return lambda ref: text in ref
    if kind == "regex":
        pattern = re.compile(arg)
        return lambda ref: pattern.search(ref) is not None
    if kind in ("or", "and"):
        parts = [_clause_matcher(item) for item in arg]
        combine = any if kind == "or" else all
        return lambda ref: combine(part(ref) for part in parts)
    raise SourceFormatError(f"unknown match clause {kind!r}")


def _equals_literals(clause: Mapping[str, Any]) -> Iterable[str]:
    """The model references a clause names literally: `equals` reached through `or` (an `and`
    or pattern clause names no literal reference that is guaranteed to match)."""
    ((kind, arg),) = clause.items()
    if kind == "equals":
        yield arg.lower()
    elif kind == "or":
        for item in arg:
            yield from _equals_literals(item)


def _genai_price_fields(raw_prices: Mapping[str, Any]) -> dict[str, Any]:
    """One genai ModelPrice mapping → our field names, Decimal or (base, [(start, price)])."""
    fields: dict[str, Any] = {}
    for key, value in raw_prices.items():
        if value is None:
            continue
        if key == "requests_kcount":
            fields["request_fee_usd"] = canonical_decimal(_WIDE.divide(_decimal(value), Decimal(1000)))
            continue
        ours = _GENAI_FIELDS.get(key)
        if ours is None:
            continue
        if isinstance(value, Mapping):
            base = _decimal(value["base"])
            steps = sorted((int(tier["start"]), _decimal(tier["price"])) for tier in value.get("tiers") or ())
            fields[ours] = (base, steps)
        else:
            fields[ours] = _decimal(value)
    return fields


def _resolve_tiers(fields: Mapping[str, Any]) -> tuple[dict[str, Decimal | None], tuple[PriceTier, ...]]:
    """Split per-field tiered prices into base prices + fully resolved merged tiers.

    genai-prices applies, per field, the price of the last tier whose ``start`` is below the call's
    input tokens. Merging all fields' starts into one sorted list and resolving every field at each
    start gives the same price for every token count.
    """
    base: dict[str, Decimal | None] = {}
    starts: set[int] = set()
    for name in _TIERABLE_FIELDS:
        value = fields.get(name)
        if isinstance(value, tuple):
            base[name] = value[0]
            starts.update(start for start, _ in value[1])
        else:
            base[name] = value

    def at(name: str, threshold: int) -> Decimal | None:
        value = fields.get(name)
        if not isinstance(value, tuple):
            return value
        price = value[0]
        for start, tier_price in value[1]:
            if start <= threshold:
                price = tier_price
        return price

    tiers = tuple(
        PriceTier(
            above_input_tokens=threshold,
            input_per_mtok=at("input_per_mtok", threshold) or _ZERO,
            output_per_mtok=at("output_per_mtok", threshold) or _ZERO,
            cache_read_per_mtok=at("cache_read_per_mtok", threshold),
            cache_write_per_mtok=at("cache_write_per_mtok", threshold),
            reasoning_per_mtok=at("reasoning_per_mtok", threshold),
        )
        for threshold in sorted(starts)
    )
    return base, tiers


def _genai_prices_periods(
    raw_prices: Any,
) -> list[tuple[date | None, date | None, Mapping[str, Any]]] | str:
    """Date-effective periods ``(from, until, prices)`` of a genai-prices `prices` value, or the
    reason it cannot be represented.

    Semantics copied from `genai_prices.types.ModelInfo.get_prices`: the *last* entry whose
    constraint is active wins (``start_date <= request date`` in UTC, or no constraint), and when
    none is active the *first* entry applies. That function is constant between two consecutive
    start dates, so evaluating it once per interval is exact.
    """
    if isinstance(raw_prices, Mapping):
        return [(None, None, raw_prices)]
    if not isinstance(raw_prices, list) or not raw_prices:
        return "no prices"
    entries: list[tuple[date | None, Mapping[str, Any]]] = []
    for entry in raw_prices:
        constraint = entry.get("constraint")
        if constraint is None:
            entries.append((None, entry["prices"]))
        elif "start_date" in constraint:
            entries.append((_parse_day(constraint["start_date"]), entry["prices"]))
        else:
            return "time-of-day prices cannot be represented as date-effective rows"

    def active_index(day: date | None) -> int:
        for index in range(len(entries) - 1, -1, -1):
            start = entries[index][0]
            if start is None or (day is not None and start <= day):
                return index
        return 0

    breakpoints = sorted({start for start, _ in entries if start is not None})
    # (None = before every breakpoint) then one interval per breakpoint
    bounds: list[date | None] = [None, *breakpoints]
    periods: list[tuple[date | None, date | None, int]] = []
    for position, start in enumerate(bounds):
        until = bounds[position + 1] if position + 1 < len(bounds) else None
        index = active_index(start)
        if periods and periods[-1][2] == index:
            periods[-1] = (periods[-1][0], until, index)
        else:
            periods.append((start, until, index))
    return [(start, until, entries[index][1]) for start, until, index in periods]


def parse_genai_prices_document(
    providers: Sequence[Mapping[str, Any]], *, provider_id: str = GENAI_PRICES_PROVIDER_ID
) -> SourceResult:
    """Records for every ``vendor/model`` slug the given genai-prices provider resolves.

    `calc_price(model_ref=slug, provider_id="openrouter")` lower-cases the slug and returns the
    *first* model of the provider whose `match` accepts it. So the catalog holds, for every model,
    each reference its clause names literally (``equals``, also inside ``or``) plus its id, **if**
    that model is the first to match the reference (an earlier model shadows later ones). Pattern
    clauses (``regex``, ``starts_with``…) accept open-ended families of references that cannot be
    enumerated; their literal references are still covered. References without a ``/`` are bare
    aliases (``claude-2``) that are not OpenRouter slugs and are skipped.
    """
    if not isinstance(providers, Sequence) or isinstance(providers, (str, bytes)):
        raise SourceFormatError("a genai-prices document is a list of providers")
    provider = next((item for item in providers if isinstance(item, Mapping) and item.get("id") == provider_id), None)
    if provider is None:
        raise SourceFormatError(f"no provider {provider_id!r} in the genai-prices document")

    models = list(provider.get("models") or ())
    matchers = [_clause_matcher(model["match"]) for model in models]

    def first_match(reference: str) -> int | None:
        for index, matcher in enumerate(matchers):
            if matcher(reference):
                return index
        return None

    records: list[PriceRecord] = []
    skipped: list[SkippedModel] = []
    seen: set[str] = set()
    for index, model in enumerate(models):
        references = dict.fromkeys([*(_equals_literals(model["match"])), str(model["id"]).lower()])
        slugs = [ref for ref in references if "/" in ref and ref not in seen and first_match(ref) == index]
        if not slugs:
            continue
        periods = _genai_prices_periods(model.get("prices"))
        if isinstance(periods, str):
            skipped.extend(SkippedModel(slug, periods) for slug in slugs)
            seen.update(slugs)
            continue
        built: list[tuple[date | None, date | None, dict[str, Any]]] = []
        problem = None
        for start, until, raw_prices in periods:
            fields = _genai_price_fields(raw_prices)
            problem = _coverage_problem(fields)
            if problem:
                break
            if built and built[-1][2] == fields:  # a change to a price TokenLedger does not use
                built[-1] = (built[-1][0], until, fields)
            else:
                built.append((start, until, fields))
        if problem:
            skipped.extend(SkippedModel(slug, problem) for slug in slugs)
            seen.update(slugs)
            continue
        display_name = str(model.get("name") or model["id"])
        for slug in slugs:
            seen.add(slug)
            for start, until, fields in built:
                base, tiers = _resolve_tiers(fields)
                records.append(
                    PriceRecord(
                        slug=slug,
                        vendor=vendor_of(slug),
                        display_name=display_name,
                        input_per_mtok=base["input_per_mtok"] or _ZERO,
                        output_per_mtok=base["output_per_mtok"] or _ZERO,
                        cache_read_per_mtok=base["cache_read_per_mtok"],
                        cache_write_per_mtok=base["cache_write_per_mtok"],
                        reasoning_per_mtok=base["reasoning_per_mtok"],
                        request_fee_usd=fields.get("request_fee_usd", _ZERO),
                        tiers=tiers,
                        effective_from=None if start is None else _midnight_utc(start),
                        effective_until=None if until is None else _midnight_utc(until),
                        source=SOURCE_GENAI_PRICES,
                    )
                )
    return SourceResult(SOURCE_GENAI_PRICES, tuple(records), tuple(skipped))


def _coverage_problem(fields: Mapping[str, Any]) -> str | None:
    """genai-prices refuses to price a cache price without an input price, or a reasoning price
    without an output price ("missing ancestor price"); such a model is skipped, not guessed."""
    if fields.get("input_per_mtok") is None and (
        fields.get("cache_read_per_mtok") is not None or fields.get("cache_write_per_mtok") is not None
    ):
        return "cache price without an input price"
    if fields.get("output_per_mtok") is None and fields.get("reasoning_per_mtok") is not None:
        return "reasoning price without an output price"
    return None


# --------------------------------------------------------------------------------------------
# OpenRouter

# OpenRouter pricing keys (USD per token, strings) → our per-Mtok fields. `request` is USD per
# request. image/audio/web_search/input_cache_write_1h price usage TokenLedger does not record.
_OPENROUTER_FIELDS = {
    "prompt": "input_per_mtok",
    "completion": "output_per_mtok",
    "input_cache_read": "cache_read_per_mtok",
    "input_cache_write": "cache_write_per_mtok",
    "internal_reasoning": "reasoning_per_mtok",
}


def _openrouter_prices(pricing: Any) -> tuple[dict[str, Any], tuple[PriceTier, ...]] | str:
    """Our price fields from one OpenRouter `pricing` object, or why it cannot be priced."""
    if not isinstance(pricing, Mapping):
        return "no pricing object"
    if "prompt" not in pricing or "completion" not in pricing:
        return "pricing has no prompt/completion price"
    for key in ("prompt", "completion"):
        try:
            if Decimal(str(pricing[key])) < 0:
                # OpenRouter publishes -1 for routers whose price depends on the model they pick.
                return "variable price (router), not a fixed per-token price"
        except InvalidOperation:
            return f"{key} price {pricing[key]!r} is not a number"
    try:
        fields: dict[str, Any] = {
            ours: _per_token_to_per_mtok(pricing[key])
            for key, ours in _OPENROUTER_FIELDS.items()
            if pricing.get(key) is not None
        }
        fields["request_fee_usd"] = _decimal(pricing["request"]) if pricing.get("request") is not None else _ZERO
        tiers = []
        for override in pricing.get("overrides") or ():
            resolved = {
                ours: _per_token_to_per_mtok(override[key]) if override.get(key) is not None else fields.get(ours)
                for key, ours in _OPENROUTER_FIELDS.items()
            }
            tiers.append(PriceTier(above_input_tokens=int(override["min_prompt_tokens"]), **resolved))
    except (SourceFormatError, KeyError, TypeError, ValueError) as exc:
        return f"bad pricing: {exc}"
    tiers.sort(key=lambda tier: tier.above_input_tokens)
    return fields, tuple(tiers)


def _models_list(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, Mapping):
        document = document.get("data")
    if not isinstance(document, list):
        raise SourceFormatError('an OpenRouter models document is a JSON array or {"data": [...]}')
    return [item for item in document if isinstance(item, Mapping)]


def parse_openrouter_models(document: Any, *, effective_from: datetime | None = None) -> SourceResult:
    """Records from an OpenRouter ``/api/v1/models`` document (one record per model id, plus one
    per ``canonical_slug`` when it differs and only that model claims it: responses often name the
    dated canonical slug).

    The document has no dates: every record gets `effective_from` (None = since the beginning);
    the loader decides when a changed price starts.
    """
    records: dict[str, PriceRecord] = {}
    skipped: list[SkippedModel] = []
    models = _models_list(document)
    ids = {str(item.get("id")) for item in models}
    claimed = _claimed_canonical_slugs(item.get("canonical_slug") for item in models)
    for item in models:
        slug = item.get("id")
        if not isinstance(slug, str) or "/" not in slug:
            skipped.append(SkippedModel(str(slug), "model id is not a vendor/model slug"))
            continue
        prices = _openrouter_prices(item.get("pricing"))
        if isinstance(prices, str):
            skipped.append(SkippedModel(slug, prices))
            continue
        fields, tiers = prices
        aliases = [slug]
        canonical = item.get("canonical_slug")
        if isinstance(canonical, str) and "/" in canonical and canonical not in ids and claimed[canonical] == 1:
            aliases.append(canonical)
        for alias in aliases:
            if alias in records:
                continue
            records[alias] = PriceRecord(
                slug=alias,
                vendor=vendor_of(alias),
                display_name=str(item.get("name") or slug),
                tiers=tiers,
                effective_from=effective_from,
                effective_until=None,
                source=SOURCE_OPENROUTER,
                **_with_required(fields),
            )
    return SourceResult(SOURCE_OPENROUTER, tuple(records.values()), tuple(skipped))


def _claimed_canonical_slugs(canonical_slugs: Iterable[Any]) -> Counter[str]:
    """How many models name each canonical slug: one shared by several models (``x`` and
    ``x:thinking``) is ambiguous and is not made an alias of either."""
    return Counter(slug for slug in canonical_slugs if isinstance(slug, str))


def _with_required(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "input_per_mtok": fields.get("input_per_mtok", _ZERO),
        "output_per_mtok": fields.get("output_per_mtok", _ZERO),
        "cache_read_per_mtok": fields.get("cache_read_per_mtok"),
        "cache_write_per_mtok": fields.get("cache_write_per_mtok"),
        "reasoning_per_mtok": fields.get("reasoning_per_mtok"),
        "request_fee_usd": fields.get("request_fee_usd", _ZERO),
    }


def _merge_same_price_periods(
    periods: list[tuple[date | None, dict[str, Any], tuple[PriceTier, ...]]],
) -> list[tuple[date | None, dict[str, Any], tuple[PriceTier, ...]]]:
    """Consecutive periods whose token prices are equal (the source changed a price TokenLedger does
    not use, e.g. per-image) are one period."""
    merged: list[tuple[date | None, dict[str, Any], tuple[PriceTier, ...]]] = []
    for period in periods:
        if merged and merged[-1][1] == period[1] and merged[-1][2] == period[2]:
            continue
        merged.append(period)
    return merged


def parse_openrouter_history(document: Any) -> SourceResult:
    """Dated records from the ``pricing_history.json`` format.

    A history entry applies from its ``first_observed`` day (00:00 UTC) until the next entry's
    ``first_observed``; the real change happened somewhere after the previous snapshot, and the
    first day it was seen is the documented, reproducible choice. The first entry also covers every
    earlier event and the last one stays in force (``effective_until=None``) until a newer snapshot
    says otherwise: an event for a model is priced with the nearest price anyone observed, never $0.
    Two entries first seen on the same day: the later one (the later snapshot) wins that day.
    ``canonical_slug`` aliases get the same history when no model uses them as an id.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("models"), Mapping):
        raise SourceFormatError('a pricing history document is {"models": {slug: {"history": [...]}}}')
    models: Mapping[str, Any] = document["models"]
    claimed = _claimed_canonical_slugs(
        model.get("canonical_slug") for model in models.values() if isinstance(model, Mapping)
    )
    records: list[PriceRecord] = []
    skipped: list[SkippedModel] = []
    for slug, model in models.items():
        if "/" not in slug or not isinstance(model, Mapping):
            skipped.append(SkippedModel(str(slug), "not a vendor/model slug"))
            continue
        history = model.get("history")
        if not isinstance(history, list) or not history:
            skipped.append(SkippedModel(slug, "no price history"))
            continue
        try:
            entries = sorted(
                ((_parse_day(entry["first_observed"]), position, entry) for position, entry in enumerate(history)),
                key=lambda item: (item[0], item[1]),
            )
        except (KeyError, TypeError, SourceFormatError) as exc:
            skipped.append(SkippedModel(slug, f"bad history entry: {exc}"))
            continue
        periods: list[tuple[date | None, dict[str, Any], tuple[PriceTier, ...]]] = []
        problem = None
        for day, _, entry in entries:
            prices = _openrouter_prices(entry.get("pricing"))
            if isinstance(prices, str):
                problem = prices
                break
            start: date | None = None if not periods else day
            if periods and periods[-1][0] == start:
                periods.pop()  # same first_observed day: the later snapshot wins
            periods.append((start, *prices))
        if problem:
            skipped.append(SkippedModel(slug, problem))
            continue
        periods = _merge_same_price_periods(periods)
        aliases = [slug]
        canonical = model.get("canonical_slug")
        if isinstance(canonical, str) and "/" in canonical and canonical not in models and claimed[canonical] == 1:
            aliases.append(canonical)
        display_name = str(model.get("name") or slug)
        for alias in aliases:
            for position, (start, fields, tiers) in enumerate(periods):
                until = periods[position + 1][0] if position + 1 < len(periods) else None
                records.append(
                    PriceRecord(
                        slug=alias,
                        vendor=vendor_of(alias),
                        display_name=display_name,
                        tiers=tiers,
                        effective_from=None if start is None else _midnight_utc(start),
                        effective_until=None if until is None else _midnight_utc(until),
                        source=SOURCE_OPENROUTER_HISTORY,
                        **_with_required(fields),
                    )
                )
    return SourceResult(SOURCE_OPENROUTER_HISTORY, tuple(records), tuple(skipped))
