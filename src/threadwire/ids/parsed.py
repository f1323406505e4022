"""`ParsedRunId`: the immutable value a parsed run ID becomes (ids.md section 2.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
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


def plausible_ms(number: int | Decimal) -> int | None:
    """`number` as epoch milliseconds, if read as seconds or milliseconds it lands in
    2000..2200; None otherwise. Fractions of a millisecond are dropped.

    >>> plausible_ms(1764021712123), plausible_ms(Decimal("1764021712.1234")), plausible_ms(5)
    (1764021712123, 1764021712123, None)
    """
    whole = int(number)
    if _MIN_MS <= whole <= _MAX_MS:
        return whole
    if _MIN_S <= whole <= _MAX_S:
        return int(number * 1000)
    return None


def plausible_datetime(number: int) -> datetime | None:
    """`number` read as epoch seconds or milliseconds, if either lands in 2000..2200.

    >>> plausible_datetime(1764021712123)
    datetime.datetime(2025, 11, 24, 22, 1, 52, 123000, tzinfo=datetime.timezone.utc)
    >>> plausible_datetime(1764021712)
    datetime.datetime(2025, 11, 24, 22, 1, 52, tzinfo=datetime.timezone.utc)
    >>> plausible_datetime(12345) is None
    True
    """
    ms = plausible_ms(number)
    return None if ms is None else _EPOCH + timedelta(milliseconds=ms)


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

    # A tuple, so that a parse builds its value in one C call: (raw, format, thread_id,
    # timestamp digits, rand, is_canonical). A canonical ID is stored as (raw,
    # "canonical", None, None, None, True) and its parts are cut from raw when asked for:
    # parsing then does no slicing at all, which is what keeps it under uuid.UUID(str).
    # Equality and hashing go by the fields, never by the stored layout.
    __slots__ = ()

    def __new__(
        cls,
        raw: str,
        format: str,
        thread_id: str | None = None,
        timestamp_ms: int | None = None,
        rand: str | None = None,
        is_canonical: bool | None = None,
        created_at: datetime | None = None,
    ) -> ParsedRunId:
        """Build a value from its fields; `ParsedRunId(**p.to_dict()) == p`.

        `is_canonical` defaults to `format == "canonical"`. `created_at` is derived from
        `timestamp_ms`; it is accepted so that `to_dict()` round-trips, and must agree.
        """
        digits = None if timestamp_ms is None else str(int(timestamp_ms))
        canonical = format == "canonical" if is_canonical is None else bool(is_canonical)
        value = tuple.__new__(cls, (raw, format, thread_id, digits, rand, canonical))
        if created_at is not None and created_at != value.created_at:
            raise ValueError(
                f"created_at {created_at!r} disagrees with timestamp_ms {timestamp_ms!r}"
            )
        return value

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

    def _compact(self) -> bool:
        return self[2] is None and self[5]

    def _ts_start(self) -> int:
        # In a canonical ID the timestamp holds no "_" and ends 9 characters from the end.
        return self[0].rfind("_", 0, -9) + 1

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
        if self._compact():
            return self[0][7 : self._ts_start() - 5]
        return self[2]

    @property
    def timestamp_ms(self) -> int | None:
        """The number the ID carries (milliseconds for canonical IDs), or None."""
        digits = self._digits()
        return None if digits is None else int(digits)

    @property
    def created_at(self) -> datetime | None:
        """The timestamp as an aware UTC datetime, if it is a plausible epoch."""
        digits = self._digits()
        return None if digits is None else plausible_datetime(int(digits))

    def _digits(self) -> str | None:
        if self._compact():
            return self[0][self._ts_start() : -9]
        return self[3]

    @property
    def rand(self) -> str | None:
        """The random part, or None."""
        if self._compact():
            return self[0][-8:]
        return self[4]

    @property
    def is_canonical(self) -> bool:
        """True for `thread_{thread_id}_run_{timestamp_ms}_{rand8}` IDs."""
        return self[5]

    def _fields(self) -> tuple[str, str, str | None, int | None, str | None, bool]:
        return (self[0], self[1], self.thread_id, self.timestamp_ms, self.rand, self[5])

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (what `UnifiedIDManager.parse_run_id` returns)."""
        return {
            "raw": self[0],
            "format": self[1],
            "thread_id": self.thread_id,
            "timestamp_ms": self.timestamp_ms,
            "created_at": self.created_at,
            "rand": self.rand,
            "is_canonical": self[5],
        }

    def __str__(self) -> str:
        return self[0]

    def __repr__(self) -> str:
        raw, format, thread_id, timestamp_ms, rand, is_canonical = self._fields()
        return (
            f"ParsedRunId(raw={raw!r}, format={format!r}, thread_id={thread_id!r}, "
            f"timestamp_ms={timestamp_ms!r}, rand={rand!r}, is_canonical={is_canonical!r})"
        )

    def __eq__(self, other: object) -> bool:
        # False, not NotImplemented: that would let tuple.__eq__ compare the layouts.
        return isinstance(other, ParsedRunId) and self._fields() == other._fields()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((ParsedRunId, self[0], self[1], self.thread_id))

    def __getnewargs__(self) -> tuple[str, str, str | None, int | None, str | None, bool]:
        return self._fields()
