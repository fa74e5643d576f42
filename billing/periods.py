"""Billing periods of a contract (pure): monthly, on the 1st of the month (UTC) or from the contract start.

A period is [start, end); the first and last are cut by the contract's own start and end.
"""

from collections.abc import Iterator
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

FIRST_OF_MONTH = "FIRST_OF_MONTH"
CONTRACT_START = "CONTRACT_START"


def _month_start(instant: datetime) -> datetime:
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _anchor_boundaries(contract_start: datetime, schedule: str) -> Iterator[datetime]:
    """Every period boundary from the contract start on (unbounded)."""
    if schedule == CONTRACT_START:
        months = 0
        while True:
            yield contract_start + relativedelta(months=months)  # clamps to month ends, never drifts
            months += 1
    else:
        yield contract_start
        boundary = _month_start(contract_start) + relativedelta(months=1)
        while True:
            yield boundary
            boundary += relativedelta(months=1)


def periods(
    *, contract_start: datetime, contract_end: datetime | None, schedule: str, until: datetime
) -> list[tuple[datetime, datetime]]:
    """Every period of the contract that starts before ``until`` (and before the contract's end)."""
    result: list[tuple[datetime, datetime]] = []
    boundaries = _anchor_boundaries(contract_start, schedule)
    start = next(boundaries)
    for boundary in boundaries:
        if start >= until or (contract_end is not None and start >= contract_end):
            break
        end = boundary if contract_end is None else min(boundary, contract_end)
        result.append((start, end))
        start = boundary
    return result


def period_containing(
    *, contract_start: datetime, contract_end: datetime | None, schedule: str, at: datetime
) -> tuple[datetime, datetime] | None:
    if at < contract_start or (contract_end is not None and at >= contract_end):
        return None
    found = periods(
        contract_start=contract_start,
        contract_end=contract_end,
        schedule=schedule,
        until=at + timedelta(microseconds=1),
    )
    if found and found[-1][0] <= at < found[-1][1]:
        return found[-1]
    return None


def next_period(
    *, contract_start: datetime, contract_end: datetime | None, schedule: str, after: datetime
) -> tuple[datetime, datetime] | None:
    """The period that starts at ``after`` (the end of the previous one), if the contract goes on."""
    return period_containing(contract_start=contract_start, contract_end=contract_end, schedule=schedule, at=after)


def earliest_contract_start(*, now: datetime, max_backdate_months: int) -> datetime:
    """The earliest `starting_at` a new contract may have: `max_backdate_months` calendar months
    before `now`, down to the whole hour (contract boundaries are whole hours). Each started month
    of a contract opens a draft, so this bounds the drafts one create can open."""
    earliest = now - relativedelta(months=max(max_backdate_months, 0))
    return earliest.replace(minute=0, second=0, microsecond=0)
