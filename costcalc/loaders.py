"""Read a price source document (bundled package data, a file, or a URL) and parse it.

Documents are decoded with ``parse_float=Decimal`` so a price never passes through a binary float.
"""

from __future__ import annotations

import http.client
import json
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

from .sources import (
    SOURCE_GENAI_PRICES,
    SOURCE_OPENROUTER,
    SOURCE_OPENROUTER_HISTORY,
    SOURCES,
    SourceFormatError,
    SourceResult,
    load_genai_prices_bundled,
    parse_genai_prices_document,
    parse_openrouter_history,
    parse_openrouter_models,
)


class PriceSourceError(Exception):
    """The source could not be read or does not have the expected format."""


def _decode(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PriceSourceError(f"{where} is not valid JSON: {exc}") from exc


def read_document(*, file: str | Path | None = None, url: str | None = None) -> Any:
    """The decoded JSON of a file or an http(s) URL (size- and time-limited)."""
    if file is not None:
        path = Path(file)
        try:
            return _decode(path.read_bytes(), str(path))
        except OSError as exc:
            raise PriceSourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if url is None:
        raise PriceSourceError("give a file or a URL")
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise PriceSourceError(f"{url!r} is not a valid URL: {exc}") from exc
    if scheme not in ("http", "https"):
        raise PriceSourceError(f"only http(s) URLs are fetched, not {url!r}")
    limit = settings.COSTCALC_FETCH_MAX_BYTES
    try:
        request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "TokenLedger"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=settings.COSTCALC_FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
            raw = response.read(limit + 1)
    except (OSError, ValueError, OverflowError, http.client.HTTPException) as exc:
        # OSError: unreachable, refused, timeout, HTTP error status; ValueError/OverflowError: a
        # malformed URL or port; HTTPException: a broken response (truncated, bad status line).
        raise PriceSourceError(f"cannot fetch {url}: {exc or type(exc).__name__}") from exc
    if len(raw) > limit:
        raise PriceSourceError(f"{url} is larger than COSTCALC_FETCH_MAX_BYTES ({limit} bytes)")
    return _decode(raw, url)


def load_source(source: str, *, file: str | Path | None = None, url: str | None = None) -> SourceResult:
    """Parse `source` from `file`/`url`; genai-prices without either reads the installed package."""
    if source not in SOURCES:
        raise PriceSourceError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    try:
        if source == SOURCE_GENAI_PRICES and file is None and url is None:
            return load_genai_prices_bundled()
        if file is None and url is None:
            raise PriceSourceError(f"the {source} source needs --file PATH or --url URL")
        document = read_document(file=file, url=url)
        if source == SOURCE_GENAI_PRICES:
            return parse_genai_prices_document(document)
        if source == SOURCE_OPENROUTER:
            return parse_openrouter_models(document)
        if source == SOURCE_OPENROUTER_HISTORY:
            return parse_openrouter_history(document)
    except SourceFormatError as exc:
        raise PriceSourceError(f"not a {source} document: {exc}") from exc
    raise PriceSourceError(f"unknown source {source!r}")  # pragma: no cover (checked above)


def configured_sources() -> list[tuple[str, str | None]]:
    """``COSTCALC_PRICE_SOURCES`` as ``(source, location)`` pairs ("genai-prices", "openrouter=URL")."""
    pairs = []
    for item in settings.COSTCALC_PRICE_SOURCES:
        source, _, location = item.partition("=")
        pairs.append((source.strip(), location.strip() or None))
    return pairs


def load_configured_source(source: str, location: str | None) -> SourceResult:
    if location is None:
        return load_source(source)
    if urlsplit(location).scheme in ("http", "https"):
        return load_source(source, url=location)
    return load_source(source, file=location)
