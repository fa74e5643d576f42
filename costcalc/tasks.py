"""Celery tasks of the price catalog (routed to the `sync` queue)."""

from __future__ import annotations

import logging

from celery import shared_task

from .loaders import configured_sources, load_configured_source
from .services import sync_model_prices

logger = logging.getLogger(__name__)


@shared_task(name="costcalc.tasks.refresh_model_prices")
def refresh_model_prices() -> list[str]:
    """Daily refresh: sync every source in COSTCALC_PRICE_SOURCES (idempotent; an unchanged source
    writes nothing). A source that cannot be read is logged and the others still run."""
    summaries = []
    for source, location in configured_sources():
        try:
            result = load_configured_source(source, location)
        except Exception:
            logger.exception("price source %s (%s) could not be loaded", source, location or "bundled")
            summaries.append(f"{source}: failed to load")
            continue
        summary = sync_model_prices(result=result)
        logger.info("price sync %s", summary)
        summaries.append(str(summary))
    return summaries
