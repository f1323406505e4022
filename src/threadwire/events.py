"""The Event type, its JSON codec and the event types of a run's life (protocol spec 1)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

RUN_QUEUED: Final = "run_queued"
AGENT_STARTED: Final = "agent_started"
AGENT_THINKING: Final = "agent_thinking"
TOOL_EXECUTING: Final = "tool_executing"
TOOL_COMPLETED: Final = "tool_completed"
AGENT_MESSAGE: Final = "agent_message"
AGENT_COMPLETED: Final = "agent_completed"
AGENT_ERROR: Final = "agent_error"
RUN_CANCELLED: Final = "run_cancelled"

TERMINAL_TYPES: Final = frozenset({AGENT_COMPLETED, AGENT_ERROR, RUN_CANCELLED})
"""Exactly one of these ends every run."""

EVENT_TYPE_RE: Final = re.compile(r"[a-z0-9_.:\-]{1,64}")
"""Grammar of an event `type` accepted from producers (protocol spec 4.1)."""


def is_valid_event_type(value: object) -> bool:
    """True when `value` is a string in the event-type grammar."""
    return isinstance(value, str) and EVENT_TYPE_RE.fullmatch(value) is not None


@functools.lru_cache(maxsize=256)  # a busy node stamps many events with one millisecond
def format_ts(ts: datetime) -> str:
    """Wire form of a timestamp: UTC, millisecond precision, `Z` suffix."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    """Inverse of :func:`format_ts` (accepts any ISO 8601 with offset or `Z`)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Aware UTC now, truncated to the millisecond the wire carries."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def dumps(obj: Any) -> bytes:
    """Compact JSON used everywhere on the wire (UTF-8 bytes, no NaN)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event on its way to the store: everything but the seq the store assigns.

    `run_id` and `thread_id` are canonical and already resolved by the caller.
    """

    event_id: str
    thread_id: str
    run_id: str
    type: str
    ts: datetime
    data: dict[str, Any] = field(default_factory=dict)
    data_json: bytes | None = field(default=None, compare=False, repr=False)
    """`dumps(data)` when the producer already made it (it checked the data is JSON)."""


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event, as every subscriber sees it."""

    event_id: str
    thread_id: str
    run_id: str
    seq: int
    type: str
    ts: datetime
    data: dict[str, Any]
    data_json: bytes | None = field(default=None, compare=False, repr=False)
    """`dumps(data)`, carried from the producer so that no one serializes it again."""

    @classmethod
    def stored(cls, new: NewEvent, seq: int) -> Event:
        """The stored form of `new` once the store has given it `seq`."""
        return cls(
            new.event_id,
            new.thread_id,
            new.run_id,
            seq,
            new.type,
            new.ts,
            new.data,
            new.data_json,
        )

    def to_dict(self) -> dict[str, Any]:
        """The event's JSON object (protocol spec 1)."""
        return {
            "event_id": self.event_id,
            "thread_id": self.thread_id,
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "ts": format_ts(self.ts),
            "data": self.data,
        }

    def to_json(self) -> bytes:
        """Serialized once by the publisher; the same bytes go to every subscriber.

        The same bytes as `dumps(self.to_dict())`; the data's JSON is reused when the
        producer made it."""
        data = self.data_json
        if data is None:
            return dumps(self.to_dict())
        # Only threadwire's producers (RunContext, Ingestor) set data_json, after
        # checking every field here against a grammar with no character JSON escapes
        # (IDs, event types), so formatting them is exact.
        head = (
            f'{{"event_id":"{self.event_id}","thread_id":"{self.thread_id}",'
            f'"run_id":"{self.run_id}","seq":{self.seq},"type":"{self.type}",'
            f'"ts":"{format_ts(self.ts)}","data":'
        )
        return head.encode() + data + b"}"

    @property
    def is_terminal(self) -> bool:
        """True for the one event that ends a run."""
        return self.type in TERMINAL_TYPES

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Event:
        """Rebuild an event from its JSON object (bus messages, clients)."""
        return cls(
            event_id=str(obj["event_id"]),
            thread_id=str(obj["thread_id"]),
            run_id=str(obj["run_id"]),
            seq=int(obj["seq"]),
            type=str(obj["type"]),
            ts=parse_ts(str(obj["ts"])),
            data=dict(obj.get("data") or {}),
        )
