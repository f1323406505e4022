"""Reading a stored run's creation time, whatever way the team stored it (migrate spec 1).

Timestamps (naive ones are UTC), ISO 8601 text, or integer epoch seconds or
milliseconds; every result is an aware UTC datetime truncated to the millisecond,
because the canonical ID carries milliseconds.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Final

_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]+)?")
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MS_THRESHOLD: Final = 100_000_000_000
"""Epoch numbers at or above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973)."""


class BadCreationTime(ValueError):
    """A stored creation time this tool cannot read as a point in time."""


def truncate_ms(moment: datetime) -> datetime:
    """`moment` in UTC, cut (not rounded) to the millisecond."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def from_epoch(number: int | float | Decimal) -> datetime:
    """An epoch number in seconds or milliseconds (told apart by magnitude) as UTC."""
    value = Decimal(str(number)) if isinstance(number, float) else Decimal(number)
    if not value.is_finite() or value < 0:
        raise BadCreationTime(f"{number!r} is not an epoch time after 1970")
    ms = int(value if value >= MS_THRESHOLD else value * 1000)  # int() truncates
    try:
        return EPOCH + timedelta(milliseconds=ms)
    except OverflowError as exc:
        raise BadCreationTime(f"{number!r} is too far in the future") from exc


def parse_creation_time(value: object) -> datetime | None:
    """`value` from a creation-time column as aware UTC to the millisecond; None for NULL.

    >>> parse_creation_time("2024-05-01T12:00:00.123456+02:00").isoformat()
    '2024-05-01T10:00:00.123000+00:00'
    >>> parse_creation_time(1714564800123).isoformat()
    '2024-05-01T12:00:00.123000+00:00'
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return truncate_ms(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, bool):
        raise BadCreationTime(f"{value!r} is not a time")
    if isinstance(value, int | float | Decimal):
        return from_epoch(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        return _parse_text(value)
    raise BadCreationTime(f"{value!r} is not a time")


def _parse_text(text: str) -> datetime:
    stripped = text.strip()
    if _NUMBER.fullmatch(stripped):
        return from_epoch(Decimal(stripped))
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise BadCreationTime(f"{text[:80]!r} is neither ISO 8601 nor an epoch number") from None
    return truncate_ms(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
