"""Per-connection and per-user limits: message rate, subscriptions, connections."""

from __future__ import annotations

import time
from collections import Counter
from typing import Final

MAX_SEQ: Final = 2**63 - 1
"""The largest seq a store can hold (a signed 64-bit column). A client's larger
`after_seq` asks for nothing more than this one does, and is clamped to it before it
reaches a store that could not bind it."""


class TokenBucket:
    """Allows `rate` messages per second on average, bursts of up to twice that.

    A rate of 0 or less disables the limit.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, 2 * rate)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def allow(self) -> bool:
        """Take one token; False when the bucket is empty."""
        if self.rate <= 0:
            return True
        now = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class UserConnections:
    """Counts open connections per user against a maximum (0 or less: unlimited)."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._open: Counter[str] = Counter()

    def acquire(self, user: str) -> bool:
        """Count one more connection of `user`; False (and nothing counted) at the limit."""
        if self.maximum > 0 and self._open[user] >= self.maximum:
            return False
        self._open[user] += 1
        return True

    def release(self, user: str) -> None:
        """Forget one connection of `user`."""
        self._open[user] -= 1
        if self._open[user] <= 0:
            del self._open[user]

    def count(self, user: str) -> int:
        """Open connections of `user`."""
        return self._open[user]
