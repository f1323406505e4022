"""The bus message: a stored event's JSON wrapped with its origin and send time.

The event is serialized once by the publisher and embedded as it is, so a receiving
node delivers it without reading the store. The origin lets a node skip its own
messages (it delivered them locally already); the send time gives the lag metric.

>>> message = encode(b'{"seq":1}', origin="n1", sent_at=1.5)
>>> message
b'{"o":"n1","t":1.5,"e":{"seq":1}}'
>>> decode_envelope(message)
Envelope(origin='n1', sent_at=1.5, event={'seq': 1})
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from threadwire.events import dumps


class BadMessage(ValueError):
    """A bus message that is not an envelope this code wrote."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decoded bus message: who sent it, when (Unix seconds), and the event object."""

    origin: str
    sent_at: float
    event: dict[str, Any]


def encode(event_json: bytes, *, origin: str, sent_at: float) -> bytes:
    """Wrap an event's JSON (already serialized) without parsing or copying it twice."""
    if not math.isfinite(sent_at):
        raise ValueError(f"sent_at must be a finite number, got {sent_at!r}")
    return b"".join(
        (b'{"o":', dumps(origin), b',"t":', repr(float(sent_at)).encode(), b',"e":',
         event_json, b"}")
    )


def decode_envelope(data: bytes | str) -> Envelope:
    """Parse a bus message; raises BadMessage quoting the start of anything else."""
    try:
        obj = json.loads(data)
    except ValueError as exc:
        raise BadMessage(f"bus message is not JSON: {_preview(data)}") from exc
    if not isinstance(obj, dict):
        raise BadMessage(f"bus message is not a JSON object: {_preview(data)}")
    origin, sent_at, event = obj.get("o"), obj.get("t"), obj.get("e")
    if not isinstance(origin, str) or not isinstance(event, dict):
        raise BadMessage(f"bus message lacks origin or event: {_preview(data)}")
    if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
        raise BadMessage(f"bus message lacks a send time: {_preview(data)}")
    return Envelope(origin, float(sent_at), event)


def _preview(data: bytes | str, limit: int = 80) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
