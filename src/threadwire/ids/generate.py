"""Making IDs: thread IDs (UUIDv7 hex), canonical run IDs, and ULID-based event IDs.

All generators share one lock, one clock reading and one buffer of CSPRNG bytes.
"""

from __future__ import annotations

import os
import threading
import time
from decimal import Decimal
from typing import Final

from threadwire.ids.grammar import validate_thread_id

_MAX_MS: Final = (1 << 48) - 1  # UUIDv7 and ULID keep 48 bits of milliseconds

# Captured at import; compared on every call to notice a test replacing time.time.
_REAL_TIME: Final = time.time


def now_ms() -> int:
    """Milliseconds since the epoch, clamped to what a 48-bit field holds.

    Reads `time.time_ns()`; if `time.time` has been replaced (a test freezing the clock
    with monkeypatch), reads that instead, so a frozen clock is honoured either way.
    """
    if time.time is _REAL_TIME:
        ms = time.time_ns() // 1_000_000
    else:
        # repr() is the shortest decimal that round-trips, so 1764021712.123 gives
        # ...123 ms, not the ...122.99 that float multiplication would floor to.
        ms = int(Decimal(repr(time.time())) * 1000)
    if 0 <= ms <= _MAX_MS:
        return ms
    return 0 if ms < 0 else _MAX_MS


class _Entropy:
    """CSPRNG output read ahead in blocks: one `os.urandom` call serves many IDs.

    Not locked itself; callers hold `_LOCK`. Emptied in a forked child so that parent and
    child never hand out the same bytes.
    """

    _BLOCK = 1024

    def __init__(self) -> None:
        self._hex = ""
        self._pos = 0

    def hex(self, n: int) -> str:
        """`n` random lowercase hex digits (n <= 2 * _BLOCK)."""
        pos = self._pos
        end = pos + n
        if end > len(self._hex):
            self._hex = os.urandom(self._BLOCK).hex()
            pos, end = 0, n
        self._pos = end
        return self._hex[pos:end]

    def reset(self) -> None:
        self._hex = ""
        self._pos = 0


class _Monotonic:
    """Random values that increase within one millisecond (ULID and RFC 9562 style)."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.last_ms = -1
        self.last = 0

    def next(self, ms: int) -> int:
        if ms == self.last_ms:
            value = self.last + 1
            if value >> self.bits:  # ran past the top: start again from a fresh value
                value = _fresh(self.bits)
        else:
            value = _fresh(self.bits)
            self.last_ms = ms
        self.last = value
        return value

    def reset(self) -> None:
        self.last_ms = -1
        self.last = 0


def _fresh(bits: int) -> int:
    digits = (bits + 3) // 4
    return int(_entropy.hex(digits), 16) >> (digits * 4 - bits)


_LOCK = threading.Lock()
_entropy = _Entropy()
_uuid7_random = _Monotonic(74)
_ulid_random = _Monotonic(80)
# Run IDs handed out in the current millisecond: a new rand8 is drawn until the ID is not
# among them. Cleared whenever the millisecond changes, so it holds one ms of IDs.
_issued_ms = -1
_issued: set[str] = set()


def _after_fork() -> None:
    global _issued_ms, _ulid_time_ms, _LOCK
    _LOCK = threading.Lock()  # the parent may have held it at the fork
    _entropy.reset()
    _uuid7_random.reset()
    _ulid_random.reset()
    _issued_ms = -1
    _issued.clear()
    _ulid_time_ms = -1


# Windows has no fork, and no register_at_fork either.
getattr(os, "register_at_fork", lambda **hooks: None)(after_in_child=_after_fork)


def new_thread_id() -> str:
    """A fresh thread ID: the 32 lowercase hex digits of a UUIDv7 (time-ordered).

    >>> len(new_thread_id()), new_thread_id()[12]
    (32, '7')
    """
    ms = now_ms()
    _LOCK.acquire()
    try:
        rand = _uuid7_random.next(ms)
    finally:
        _LOCK.release()
    value = (
        (ms << 80)
        | (0x7 << 76)  # version 7
        | ((rand >> 62) << 64)  # rand_a: 12 bits
        | (0b10 << 62)  # RFC 9562 variant
        | (rand & ((1 << 62) - 1))  # rand_b: 62 bits
    )
    return f"{value:032x}"


def new_run_id(thread_id: str) -> str:
    """A fresh canonical run ID for `thread_id`: `thread_{thread_id}_run_{ms}_{rand8}`.

    Raises `InvalidIdError` when `thread_id` is not a valid thread ID. Never returns the
    same ID twice in one process, even with the clock standing still.

    >>> from threadwire.ids import parse_run_id
    >>> parse_run_id(new_run_id("user_42")).thread_id
    'user_42'
    """
    global _issued_ms
    thread_id = validate_thread_id(thread_id)
    # acquire/release in try/finally costs half of `with` on the hot path. The clock is
    # read under the lock, so a thread that read an older millisecond can never clear
    # the set after a newer one was issued and then repeat an ID of its own millisecond.
    _LOCK.acquire()
    try:
        ms = now_ms()
        prefix = f"thread_{thread_id}_run_{ms}_"
        if ms != _issued_ms:
            _issued_ms = ms
            _issued.clear()
        run_id = prefix + _entropy.hex(8)
        while run_id in _issued:
            run_id = prefix + _entropy.hex(8)
        _issued.add(run_id)
    finally:
        _LOCK.release()
    return run_id


CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of Crockford characters, indexed by the 10 bits they encode: a ULID is then
# 13 table lookups, several times faster than base64.b32encode and a translation.
_PAIRS: Final = tuple(a + b for a in CROCKFORD for b in CROCKFORD)
_ulid_time_ms = -1
_ulid_time_text = ""


def new_ulid() -> str:
    """A 26-character ULID: 48-bit milliseconds then 80 random bits, Crockford base32.

    Monotonic within a millisecond in this process, so IDs sort in the order made.
    """
    global _ulid_time_ms, _ulid_time_text
    ms = now_ms()
    _LOCK.acquire()
    try:
        r = _ulid_random.next(ms)
        if ms != _ulid_time_ms:  # the time part changes once a millisecond at most
            _ulid_time_ms = ms
            _ulid_time_text = (
                f"{_PAIRS[ms >> 40]}{_PAIRS[(ms >> 30) & 1023]}{_PAIRS[(ms >> 20) & 1023]}"
                f"{_PAIRS[(ms >> 10) & 1023]}{_PAIRS[ms & 1023]}"
            )
        time_text = _ulid_time_text
    finally:
        _LOCK.release()
    p = _PAIRS
    return (
        f"{time_text}{p[r >> 70]}{p[(r >> 60) & 1023]}{p[(r >> 50) & 1023]}"
        f"{p[(r >> 40) & 1023]}{p[(r >> 30) & 1023]}{p[(r >> 20) & 1023]}"
        f"{p[(r >> 10) & 1023]}{p[r & 1023]}"
    )


def new_event_id() -> str:
    """A fresh event ID: `evt_` and a ULID.

    >>> event_id = new_event_id()
    >>> event_id[:4], len(event_id)
    ('evt_', 30)
    """
    return "evt_" + new_ulid()


def new_connection_id() -> str:
    """A fresh connection ID (one per WebSocket): `conn_` and a ULID."""
    return "conn_" + new_ulid()


def new_request_id() -> str:
    """A fresh request ID (one per HTTP request, `X-Request-ID`): `req_` and a ULID."""
    return "req_" + new_ulid()
