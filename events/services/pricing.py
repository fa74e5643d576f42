"""The one place ingest asks costcalc for prices (its batch API over the in-process catalog)."""

from collections.abc import Sequence

from costcalc.services import (
    InvalidUsageError,
    PricedUsage,
    PricingError,
    UnknownModelError,
    UsageToPrice,
    price_usages,
    unpriced_models_record,
)

from ..drafts import CallDraft, EventError

__all__ = ["PricedUsage", "price_calls", "pricing_error", "record_unpriced"]


def price_calls(
    *, organization, calls: Sequence[tuple[CallDraft, object]], catalog_version=None
) -> list[PricedUsage | Exception]:
    """One result per `(call, occurred_at)`, in order: a `PricedUsage` or the pricing exception.

    `catalog_version`: the price catalog version, when the caller read it (saves costcalc's query)."""
    if not calls:
        return []
    return price_usages(
        organization=organization,
        catalog_version=catalog_version,
        usages=[
            UsageToPrice(
                model=call.model,
                occurred_at=occurred_at,
                input_tokens=call.input_tokens,
                output_tokens=call.output_tokens,
                cached_input_tokens=call.cached_input_tokens,
                cache_write_tokens=call.cache_write_tokens,
                reasoning_tokens=call.reasoning_tokens,
            )
            for call, occurred_at in calls
        ],
    )


def pricing_error(call: CallDraft, error: Exception) -> EventError:
    """A call the catalog could not price, as a per-event error (with suggestions for an unknown slug)."""
    if isinstance(error, InvalidUsageError):
        return EventError("validation_error", str(error), f"{call.field}.{error.field}")
    if isinstance(error, UnknownModelError):
        hint = f" Did you mean {', '.join(error.suggestions)}?" if error.suggestions else ""
        return EventError(
            "unknown_model",
            f"The price catalog does not know the model {call.model!r}.{hint}",
            f"{call.field}.model",
            tuple(error.suggestions),
        )
    if isinstance(error, PricingError):
        return EventError(getattr(error, "code", "unpriced_model"), str(error), f"{call.field}.model")
    raise error


def record_unpriced(*, organization, sightings) -> None:
    unpriced_models_record(organization=organization, sightings=sightings)
