"""Creation times as teams store them become aware UTC datetimes cut to the millisecond."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from threadwire.migrate.stored.times import BadCreationTime, parse_creation_time

MOMENT = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)  # 1714564800123 ms


@pytest.mark.parametrize(
    "stored",
    [
        datetime(2024, 5, 1, 12, 0, 0, 123999),  # naive timestamp: UTC, truncated not rounded
        datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2))),  # aware
        "2024-05-01T12:00:00.123999Z",  # ISO 8601 with Z
        "2024-05-01 12:00:00.123",  # ISO 8601 as SQLite stores timestamps: naive means UTC
        "2024-05-01T07:00:00.123-05:00",  # ISO 8601 with an offset
        1714564800123,  # epoch milliseconds
        "1714564800123",  # epoch milliseconds as text
        1714564800.123999,  # epoch seconds with a fraction
        "1714564800.123999",  # the same as text
        Decimal("1714564800.1239"),  # PostgreSQL numeric seconds
    ],
)
def test_every_stored_form_reads_as_the_same_millisecond(stored: object) -> None:
    assert parse_creation_time(stored) == MOMENT


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (1714564800, datetime(2024, 5, 1, 12, tzinfo=UTC)),  # epoch seconds
        (date(2024, 5, 1), datetime(2024, 5, 1, tzinfo=UTC)),  # a date is its midnight, UTC
        (b"2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),  # text stored as bytes
        (0, datetime(1970, 1, 1, tzinfo=UTC)),  # the epoch itself
        (None, None),  # NULL: the caller falls back to the migration time
    ],
)
def test_other_forms(stored: object, expected: datetime | None) -> None:
    assert parse_creation_time(stored) == expected


@pytest.mark.parametrize(
    "stored",
    [
        "last tuesday",  # not ISO 8601
        "١٧١٤٥٦٤٨٠٠",  # digits, but not ASCII ones
        -5,  # before 1970: no canonical timestamp
        True,  # a boolean is not a time
        float("nan"),
        10**30,  # beyond any datetime
        object(),
    ],
)
def test_unreadable_times_raise_bad_creation_time(stored: object) -> None:
    with pytest.raises(BadCreationTime):
        parse_creation_time(stored)
