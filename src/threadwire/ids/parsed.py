"""`ParsedRunId`: the immutable value a parsed run ID becomes (ids.md section 2.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from threadwire.ids.formats import FormatRegistry, Resolver

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
# Plausible creation times: 2000-01-01 to 2200-01-01 inclusive, in seconds. The ranges
# in seconds and in milliseconds do not overlap, so a number reads at most one way.
_MIN_S: Final = 946_684_800
_MAX_S: Final = 7_258_118_400
_MIN_MS: Final = _MIN_S * 1000
_MAX_MS: Final = _MAX_S * 1000


def plausible_datetime(number: int) -> datetime | None:
    """`number` read as epoch seconds or milliseconds, if either lands in 2000..2200.

    >>> plausible_datetime(1764021712123)
    datetime.datetime(2025, 11, 24, 22, 1, 52, 123000, tzinfo=datetime.timezone.utc)
    >>> plausible_datetime(1764021712)
    datetime.datetime(2025, 11, 24, 22, 1, 52, tzinfo=datetime.timezone.utc)
    >>> plausible_datetime(12345) is None
    True
    """
    if _MIN_MS <= number <= _MAX_MS:
        return _EPOCH + timedelta(milliseconds=number)
    if _MIN_S <= number <= _MAX_S:
        return _EPOCH + timedelta(seconds=number)
    return None


class ParsedRunId(tuple[str, str, str | None, str | None, str | None, bool]):
    """A run ID, parsed: immutable, hashable, and `str()` gives back the ID as written.

    >>> p = ParsedRunId.parse("thread_user_42_run_1764021712123_7f3a9c01")
    >>> p.format, p.thread_id, p.timestamp_ms, p.rand, p.is_canonical
    ('canonical', 'user_42', 1764021712123, '7f3a9c01', True)
    >>> p.created_at.isoformat()
    '2025-11-24T22:01:52.123000+00:00'
    >>> str(p)
    'thread_user_42_run_1764021712123_7f3a9c01'

    `thread_id` is None for IDs that embed no thread (a bare UUID): the store looks those
    up. `created_at` is None unless the number in the ID is a plausible epoch.
    """

    # Stored as a tuple so that parsing builds one in a single C call; the timestamp is
    # kept as its digits and converted on access, which keeps the parse hot path short.
    __slots__ = ()

    def __new__(
        cls,
        raw: str,
        format: str,
        thread_id: str | None,
        timestamp_ms: int | None,
        rand: str | None,
        is_canonical: bool,
    ) -> ParsedRunId:
        digits = None if timestamp_ms is None else str(int(timestamp_ms))
        return tuple.__new__(cls, (raw, format, thread_id, digits, rand, bool(is_canonical)))

    @classmethod
    def parse(
        cls,
        run_id: object,
        *,
        resolver: Resolver | None = None,
        registry: FormatRegistry | None = None,
    ) -> ParsedRunId:
        """Same as `threadwire.ids.parse_run_id`, as a named constructor."""
        from threadwire.ids.formats import parse_run_id  # formats builds ParsedRunId values

        return parse_run_id(run_id, resolver=resolver, registry=registry)

    def to_canonical(
        self, *, created_at: datetime | int | float, thread_id: str | None = None
    ) -> str:
        """Same as `threadwire.ids.to_canonical(self, created_at=...)`."""
        from threadwire.ids.migration import to_canonical

        return to_canonical(self, created_at=created_at, thread_id=thread_id)

    @property
    def raw(self) -> str:
        """The ID exactly as it was given."""
        return self[0]

    @property
    def format(self) -> str:
        """Name of the registered format that read it (`canonical`, `legacy_run`, ...)."""
        return self[1]

    @property
    def thread_id(self) -> str | None:
        """The embedded thread ID, or None when the store must look it up."""
        return self[2]

    @property
    def timestamp_ms(self) -> int | None:
        """The number the ID carries (milliseconds for canonical IDs), or None."""
        digits = self[3]
        return None if digits is None else int(digits)

    @property
    def created_at(self) -> datetime | None:
        """The timestamp as an aware UTC datetime, if it is a plausible epoch."""
        digits = self[3]
        return None if digits is None else plausible_datetime(int(digits))

    @property
    def rand(self) -> str | None:
        """The random part, or None."""
        return self[4]

    @property
    def is_canonical(self) -> bool:
        """True for `thread_{thread_id}_run_{timestamp_ms}_{rand8}` IDs."""
        return self[5]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what `UnifiedIDManager.parse_run_id` returns)."""
        return {
            "raw": self[0],
            "format": self[1],
            "thread_id": self[2],
            "timestamp_ms": self.timestamp_ms,
            "created_at": self.created_at,
            "rand": self[4],
            "is_canonical": self[5],
        }

    def __str__(self) -> str:
        return self[0]

    def __repr__(self) -> str:
        return (
            f"ParsedRunId(raw={self[0]!r}, format={self[1]!r}, thread_id={self[2]!r}, "
            f"timestamp_ms={self.timestamp_ms!r}, rand={self[4]!r}, is_canonical={self[5]!r})"
        )

    def __eq__(self, other: object) -> bool:
        # A parsed ID equals another parsed ID, never the plain tuple it is stored as.
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __getnewargs__(self) -> tuple[Any, ...]:
        return (self[0], self[1], self[2], self.timestamp_ms, self[4], self[5])
