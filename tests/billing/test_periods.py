from datetime import UTC, datetime

from billing import periods


def dt(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_calendar_months_cut_by_the_contract_start_and_end():
    result = periods.periods(
        contract_start=dt(2026, 1, 15, 6),
        contract_end=dt(2026, 3, 10),
        schedule=periods.FIRST_OF_MONTH,
        until=dt(2030, 1, 1),
    )

    assert result == [
        (dt(2026, 1, 15, 6), dt(2026, 2, 1)),
        (dt(2026, 2, 1), dt(2026, 3, 1)),
        (dt(2026, 3, 1), dt(2026, 3, 10)),
    ]


def test_months_from_the_contract_start_clamp_to_short_months_without_drifting():
    result = periods.periods(
        contract_start=dt(2026, 1, 31), contract_end=None, schedule=periods.CONTRACT_START, until=dt(2026, 4, 1)
    )

    assert result == [
        (dt(2026, 1, 31), dt(2026, 2, 28)),
        (dt(2026, 2, 28), dt(2026, 3, 31)),
        (dt(2026, 3, 31), dt(2026, 4, 30)),
    ]


def test_period_containing_and_next_period():
    kwargs = {"contract_start": dt(2026, 1, 1), "contract_end": dt(2026, 3, 1), "schedule": periods.FIRST_OF_MONTH}

    assert periods.period_containing(at=dt(2026, 2, 14, 13), **kwargs) == (dt(2026, 2, 1), dt(2026, 3, 1))
    assert periods.period_containing(at=dt(2025, 12, 31), **kwargs) is None
    assert periods.period_containing(at=dt(2026, 3, 1), **kwargs) is None
    assert periods.next_period(after=dt(2026, 2, 1), **kwargs) == (dt(2026, 2, 1), dt(2026, 3, 1))
    assert periods.next_period(after=dt(2026, 3, 1), **kwargs) is None


def test_the_earliest_contract_start_is_whole_calendar_months_back_down_to_the_hour():
    now = dt(2026, 11, 22, 5, 6, 7)

    assert periods.earliest_contract_start(now=now, max_backdate_months=24) == dt(2024, 11, 22, 5)
    assert periods.earliest_contract_start(now=now, max_backdate_months=0) == dt(2026, 11, 22, 5)
    assert periods.earliest_contract_start(now=dt(2026, 3, 31, 12), max_backdate_months=1) == dt(2026, 2, 28, 12)
