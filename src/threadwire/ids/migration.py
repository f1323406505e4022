"""`to_canonical`: the canonical run ID a legacy one becomes (ids.md section 2.4)."""

from __future__ import annotations

import hashlib
import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

from threadwire.ids.errors import InvalidIdError, quote
from threadwire.ids.formats import parse_run_id
from threadwire.ids.grammar import validate_thread_id
from threadwire.ids.parsed import ParsedRunId, plausible_ms

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_RAND8: Final = re.compile("[0-9A-Fa-f]{8}")


def _epoch_ms(created_at: datetime | int | float) -> int:
    if isinstance(created_at, datetime):
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)  # naive times are UTC, as stored
        ms: int = (created_at - _EPOCH) // _ONE_MS
        if ms < 0:
            raise ValueError(f"created_at {created_at!r} is before 1970")
        return ms
    if isinstance(created_at, int | float) and not isinstance(created_at, bool):
        # repr() of a float is its shortest exact decimal: 1764021712.123 s is ...123 ms.
        number = Decimal(repr(created_at)) if isinstance(created_at, float) else created_at
        plausible = plausible_ms(number) if math.isfinite(created_at) else None
        if plausible is None:
            raise ValueError(
                f"created_at {created_at!r} is not an epoch in seconds or milliseconds "
                "between 2000 and 2200"
            )
        return plausible
    raise TypeError(f"created_at must be a datetime or an epoch number, not {created_at!r}")


def to_canonical(
    parsed: ParsedRunId | str,
    *,
    created_at: datetime | int | float,
    thread_id: str | None = None,
) -> str:
    """The canonical run ID for a legacy one; a canonical ID comes back unchanged.

    Same thread ID, same `rand8` where the legacy ID has one (otherwise eight hex digits
    derived from the old ID, so migrating is repeatable), and the timestamp of
    `created_at`: the stored run's creation time, as an aware datetime (naive means UTC)
    or epoch seconds or milliseconds. `thread_id` supplies the thread for IDs that embed
    none (a bare UUID) and must agree with the embedded one otherwise.

    >>> from datetime import datetime, UTC
    >>> when = datetime(2025, 11, 24, 22, 1, 52, 123000, tzinfo=UTC)
    >>> to_canonical(parse_run_id("run_user_42_0badf00d"), created_at=when)
    'thread_user_42_run_1764021712123_0badf00d'
    >>> to_canonical("thread_user_42_run_1764021712123_0badf00d", created_at=0)
    'thread_user_42_run_1764021712123_0badf00d'
    """
    if not isinstance(parsed, ParsedRunId):
        parsed = parse_run_id(parsed)
    if parsed.is_canonical:
        return parsed.raw  # migrating twice changes nothing
    thread = parsed.thread_id
    if thread_id is not None:
        if thread is not None and thread != thread_id:
            raise ValueError(
                f"thread_id {thread_id!r} disagrees with the thread {thread!r} "
                f"embedded in {quote(parsed.raw)}"
            )
        thread = thread_id
    if thread is None:
        raise InvalidIdError(
            "unknown_run",
            f"run ID of format {parsed.format} embeds no thread ID; pass thread_id=: "
            f"{quote(parsed.raw)}",
        )
    thread = validate_thread_id(thread)
    rand = parsed.rand
    if rand is not None and _RAND8.fullmatch(rand):
        rand = rand.lower()
    else:
        rand = hashlib.blake2b(parsed.raw.encode(), digest_size=4).hexdigest()
    return f"thread_{thread}_run_{_epoch_ms(created_at)}_{rand}"
