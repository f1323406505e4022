"""The fan-out workload, shared by every process of the benchmark.

An event is a JSON object of EVENT_BYTES bytes, `{"i": k, "t": us, "pad": "..."}`:
`i` counts the room's events from 0, `t` is CLOCK_MONOTONIC in microseconds when the
publisher made it (Python's `time.monotonic_ns`, Node's `process.hrtime`, one clock
for every process on the machine), so a receiver computes latency without parsing
the rest of the frame.

In-process publishers are paced by credits, the same closed loop the HTTP publishers
run in the load generator: a room may have at most `window` events published and not
yet received by all its subscribers. The load generator grants them over UDP on
loopback (a few hundred small datagrams a second, the same for every server).
"""

from __future__ import annotations

import json
import re
import struct
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Final

EVENT_BYTES: Final = 300
ROOM_SIZE: Final = 10
EVENT_TYPE: Final = "bench"
"""The threadwire event type of the benchmark's events."""
SOCKETIO_EVENT: Final = "ev"

EVENT_RE: Final = re.compile(rb'"i":(\d+),"t":(\d+)')
"""Finds the room index and timestamp of an event inside any server's frame."""

CREDIT: Final = b"C"
"""Datagram: CREDIT then little-endian uint32 pairs (room, events allowed so far)."""
STOP: Final = b"S"
"""Datagram: stop publishing now."""

SERVERS: Final = (
    "threadwire",
    "socketio-python",
    "socketio-node",
    "bare-websockets",
    "uvicorn-floor",
)
DEFAULT_SERVERS: Final = SERVERS[:4]
"""What runs unless `--servers` says otherwise: the floor is a diagnosis, not a peer."""
PEERS: Final = ("socketio-python", "socketio-node")
"""The frameworks threadwire's HTTP bar is held against (the bare relay is the limit)."""
BARE: Final = "bare-websockets"
FLOOR: Final = "uvicorn-floor"
"""threadwire's own server stack relaying, nothing stored (fanout/uvicorn_floor.py)."""
RELAYS: Final = (BARE, FLOOR)
"""Servers that speak the bare relay's protocol (`/room/<name>`, `/publish/<name>`)."""
PHASES: Final = ("http", "inproc")


def now_us() -> int:
    """CLOCK_MONOTONIC in microseconds (the clock every process stamps events with)."""
    return time.monotonic_ns() // 1000


def payload(index: int, stamp_us: int, pad: str) -> str:
    """One event's JSON object, compact, `i` and `t` first (the receivers rely on it)."""
    return f'{{"i":{index},"t":{stamp_us},"pad":"{pad}"}}'


def pad_length() -> int:
    """Padding that makes a typical event (5-digit index, today's clock) EVENT_BYTES long."""
    return EVENT_BYTES - len(payload(10_000, now_us(), ""))


def encode_credits(allowed: dict[int, int]) -> bytes:
    """A credit datagram granting each room `allowed[room]` events in total."""
    flat = [value for pair in allowed.items() for value in pair]
    return CREDIT + struct.pack(f"<{len(flat)}I", *flat)


def decode_credits(data: bytes) -> list[tuple[int, int]]:
    """The (room, allowed) pairs of a credit datagram."""
    body = data[1:]
    count = len(body) // 4
    flat = struct.unpack(f"<{count}I", body[: count * 4])
    return list(zip(flat[0::2], flat[1::2], strict=False))


@dataclass
class Session:
    """What the load generator needs to drive one server for one connection count."""

    server: str
    connections: int
    host: str
    ws_port: int
    http_port: int
    credit_port: int
    server_pid: int
    pad: int
    window: int
    warmup: float
    measure: float
    phases: list[str] = field(default_factory=lambda: list(PHASES))
    room_size: int = ROOM_SIZE
    secret: str = ""
    """threadwire's THREADWIRE_JWT_SECRET (tokens for users and the service)."""
    max_events: int = 1_000_000
    """Cap on the events an in-process publisher emits per room."""

    @property
    def rooms(self) -> int:
        """Rooms (threadwire: threads, each with its own owner) of `room_size` subscribers."""
        return self.connections // self.room_size

    def to_json(self) -> str:
        """The session as one JSON line (handed to the load generator)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Session:
        """The session `to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)


@dataclass
class PhaseResult:
    """One measured window: a server, a connection count, a way of publishing."""

    server: str
    connections: int
    phase: str
    seconds: float
    deliveries: int
    """Events received by subscribers within the window."""
    p50_ms: float
    p99_ms: float
    server_cpu_s: float
    client_cpu_s: float
    server_wait_s: float = 0.0
    """Time the server's threads were ready to run but waited for the CPU (contention)."""
    published: int = 0
    """Events published over the whole phase (warm-up and drain included)."""
    lost: int = 0
    """Deliveries missing after the drain (published x subscribers - received)."""
    out_of_order: int = 0
    stalls: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Deliveries per second over the window."""
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_delivery(self) -> float:
        """Server CPU (user + system, all threads) per delivery, in microseconds."""
        return self.server_cpu_s * 1e6 / self.deliveries if self.deliveries else float("nan")

    @property
    def server_util(self) -> float:
        """Share of one CPU the server used during the window."""
        return self.server_cpu_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def server_wait(self) -> float:
        """Share of the window the server's threads waited for a CPU (other load)."""
        return self.server_wait_s / self.seconds if self.seconds > 0 else 0.0

    @property
    def per_cpu_second(self) -> float:
        """Deliveries per second of server CPU: the rate one whole core would sustain."""
        return self.deliveries / self.server_cpu_s if self.server_cpu_s > 0 else float("nan")

    @property
    def client_util(self) -> float:
        """Share of one CPU the load generator used during the window."""
        return self.client_cpu_s / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PhaseResult:
        """The result `to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        return cls(**data)
