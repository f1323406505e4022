"""WebSocket subscribers driven directly over `websockets`, with client-side faults.

Each `Subscriber` is one user's connection following all of that user's threads; it
reconnects (to the next node) after any close and resumes every thread with
`after_seq` = the last seq it received, or, under `resume` chaos, an earlier one. The
`Spy` subscribes to other users' threads and must be refused every time.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from threadwire.verify.config import Chaos
from threadwire.verify.ledger import Examples, Latencies, ThreadLedger

FATAL_CLOSE: Final = frozenset({4401, 4403})
CLOSE_LAGGING: Final = 4008
POLL: Final = 0.2
"""Seconds between checks of the stop flag and the reconnect timer while reading."""
ACK_EVERY: Final = 50


class _ClientClose(Exception):
    """This subscriber ended the connection on purpose (chaos)."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


@dataclass(slots=True)
class Disconnect:
    """A connection that ended: when, why, and when every thread was subscribed again."""

    at: float
    cause: str
    """`drop`, `reconnect` (client chaos), `lagging` (4008), `server` (any other close),
    or `connect` (a connection attempt that failed)."""
    code: int | None = None
    node: str = ""
    recovered_at: float | None = None


@dataclass(slots=True)
class Counters:
    """What happened to one subscriber's connections."""

    frames: int = 0
    events: int = 0
    misrouted: int = 0
    unsolicited: int = 0
    refused: int = 0
    lagging_closes: int = 0
    drops: int = 0
    reconnects: int = 0
    rewinds: int = 0
    slow_sessions: int = 0
    connect_failures: int = 0
    disconnects: list[Disconnect] = field(default_factory=list)


class Subscriber:
    """One user's WebSocket connection (reconnected as needed) following its threads."""

    def __init__(
        self,
        name: str,
        token: str,
        threads: Sequence[str],
        owned: frozenset[str],
        ws_urls: Sequence[str],
        chaos: Chaos,
        rng: random.Random,
        latencies: Latencies,
        examples: Examples,
    ) -> None:
        self.name = name
        self.token = token
        self.owned = owned
        self.ws_urls = list(ws_urls)
        self.chaos = chaos
        self.chaos_on = chaos.client_side
        self.rng = rng
        self.latencies = latencies
        self.examples = examples
        self.ledgers = {t: ThreadLedger(t) for t in threads}
        self.counters = Counters()
        self.fatal: str | None = None
        self._node = rng.randrange(len(self.ws_urls))
        self._pending: dict[str, deque[int]] = {}
        self._targets: dict[str, int] | None = None
        self._open_disconnect: Disconnect | None = None
        self.reached = asyncio.Event()
        """Set once every thread's live session got up to its stored head."""
        self.caught_up = asyncio.Event()
        """Set once, moreover, no session has a gap left open."""
        self.subscribed = asyncio.Event()
        """Set once every thread has been subscribed (the first time)."""

    # -- settling -------------------------------------------------------------------

    def settle(self, heads: dict[str, int]) -> None:
        """Stop injecting faults; set `reached` once every thread's session got to its
        head, and `caught_up` once it has no gap either."""
        self.chaos_on = False
        self._targets = {t: heads.get(t, 0) for t in self.ledgers}
        self._check_caught_up()

    def _check_caught_up(self) -> None:
        targets = self._targets
        if targets is None or self.caught_up.is_set():
            return
        if not self.reached.is_set():
            if not all(self.ledgers[t].reached(head) for t, head in targets.items()):
                return
            self.reached.set()
        if all(self.ledgers[t].caught_up(head) for t, head in targets.items()):
            self.caught_up.set()

    # -- connection loop --------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, follow, reconnect, until `stop` is set or the token is refused."""
        delay = 0.05
        while not stop.is_set() and self.fatal is None:
            url = self.ws_urls[self._node % len(self.ws_urls)]
            cause: str | None = None
            code: int | None = None
            try:
                async with connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    close_timeout=2,
                    max_size=None,
                ) as ws:
                    delay = 0.05
                    await self._follow(ws, stop)
            except _ClientClose as exc:
                cause = exc.cause
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                cause = "lagging" if code == CLOSE_LAGGING else "server"
                if code in FATAL_CLOSE:
                    self.fatal = f"{self.name}: the server closed with {code} ({exc.rcvd})"
            except (OSError, InvalidHandshake, TimeoutError):
                cause = "connect"
                self.counters.connect_failures += 1
            finally:
                for ledger in self.ledgers.values():
                    ledger.close()
                self._pending.clear()
            if cause is None or stop.is_set():
                continue
            self._record_disconnect(cause, code, url)
            if cause in ("drop", "reconnect"):
                self._node = self.rng.randrange(len(self.ws_urls))
                continue  # a client's own reconnect: at once
            self._node += 1
            await asyncio.sleep(delay * (0.5 + self.rng.random()))
            delay = min(delay * 2, 0.5)

    def _record_disconnect(self, cause: str, code: int | None, url: str) -> None:
        if cause == "lagging":
            self.counters.lagging_closes += 1
        if cause != "connect":
            self.counters.reconnects += 1
        if self._open_disconnect is None:
            self._open_disconnect = Disconnect(time.time(), cause, code, url)
            self.counters.disconnects.append(self._open_disconnect)

    async def _follow(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        rewind = self.chaos_on and self.rng.random() < self.chaos.resume
        for thread_id, ledger in self.ledgers.items():
            after = ledger.last
            if rewind and after:
                after = self.rng.randint(0, after)
                self.counters.rewinds += 1
            await self._subscribe(ws, thread_id, after)
        slow = self.chaos_on and self.rng.random() < self.chaos.slow
        self.counters.slow_sessions += slow
        reconnect_at = float("inf")
        if self.chaos_on and self.chaos.reconnect:
            reconnect_at = time.monotonic() + self.rng.expovariate(1 / self.chaos.reconnect)
        while not stop.is_set():
            if self.chaos_on and time.monotonic() >= reconnect_at:
                raise _ClientClose("reconnect")
            try:
                async with asyncio.timeout(POLL):
                    raw = await ws.recv()
            except TimeoutError:
                continue
            await self._on_frame(ws, raw)
            if slow and self.chaos_on:
                await asyncio.sleep(self.chaos.slow_ms / 1000)

    async def _subscribe(self, ws: ClientConnection, thread_id: str, after: int) -> None:
        self._pending.setdefault(thread_id, deque()).append(after)
        frame = {"op": "subscribe", "thread_id": thread_id, "after_seq": after}
        await ws.send(json.dumps(frame))

    async def _on_frame(self, ws: ClientConnection, raw: str | bytes) -> None:
        now = time.time()
        self.counters.frames += 1
        frame: dict[str, Any] = json.loads(raw)
        kind = frame.get("type")
        if kind == "event":
            await self._on_event(ws, frame["event"], now)
        elif kind == "subscribed":
            thread_id = frame.get("thread_id")
            pending = self._pending.get(thread_id) if isinstance(thread_id, str) else None
            if not pending or thread_id not in self.ledgers:
                self.counters.unsolicited += 1
                self.examples.add(f"unsolicited: {self.name} got {frame!r}")
                return
            self.ledgers[thread_id].open(pending.popleft(), int(frame["head_seq"]), now)
            if not any(self._pending.values()):
                self.subscribed.set()
                if self._open_disconnect is not None:
                    self._open_disconnect.recovered_at = now
                    self._open_disconnect = None
            self._check_caught_up()
        elif kind == "error":
            await self._on_error(ws, frame)

    async def _on_event(self, ws: ClientConnection, event: dict[str, Any], now: float) -> None:
        self.counters.events += 1
        thread_id = event.get("thread_id")
        if thread_id not in self.owned:
            self.counters.misrouted += 1
            self.examples.add(
                f"misrouted: {self.name} got {thread_id} seq {event.get('seq')}, not its user's"
            )
            return
        ledger = self.ledgers.get(thread_id)
        if ledger is None or ledger.session is None:
            self.counters.unsolicited += 1
            self.examples.add(f"unsolicited: {self.name} got {thread_id} seq {event.get('seq')}")
            return
        ledger.event(event, now, self.latencies, self.examples)
        seq = int(event["seq"])
        if seq % ACK_EVERY == 0:
            await ws.send(json.dumps({"op": "ack", "thread_id": thread_id, "seq": seq}))
        self._check_caught_up()
        if not self.chaos_on:
            return
        if self.rng.random() < self.chaos.drop:
            self.counters.drops += 1
            ws.transport.abort()
            raise _ClientClose("drop")
        if self.rng.random() < self.chaos.resume / 20:
            self.counters.rewinds += 1
            await self._subscribe(ws, thread_id, self.rng.randint(0, ledger.last))

    async def _on_error(self, ws: ClientConnection, frame: dict[str, Any]) -> None:
        code = frame.get("code")
        thread_id = frame.get("thread_id")
        if isinstance(thread_id, str) and thread_id in self.ledgers:
            pending = self._pending.get(thread_id)
            after = pending.popleft() if pending else self.ledgers[thread_id].last
            if code in ("unavailable", "rate_limited"):
                await asyncio.sleep(0.05)
                await self._subscribe(ws, thread_id, after)
                return
        self.counters.refused += 1
        self.examples.add(f"refused: {self.name} got {frame!r}")


class Spy:
    """A user who subscribes to other users' threads: each must be refused, nothing seen."""

    def __init__(self, token: str, victims: Sequence[str], ws_urls: Sequence[str]) -> None:
        self.token = token
        self.victims = list(victims)
        self.ws_urls = list(ws_urls)
        self.refusals = 0
        self.breaches = 0
        self.events = 0
        self.examples = Examples()

    async def run(self, stop: asyncio.Event) -> None:
        """Ask for every victim thread on each connection; watch until `stop`."""
        node = 0
        while not stop.is_set():
            url = self.ws_urls[node % len(self.ws_urls)]
            try:
                async with connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {self.token}"},
                    open_timeout=5,
                    close_timeout=2,
                ) as ws:
                    for thread_id in self.victims:
                        frame = {"op": "subscribe", "thread_id": thread_id, "after_seq": 0}
                        await ws.send(json.dumps(frame))
                    while not stop.is_set():
                        try:
                            async with asyncio.timeout(POLL):
                                raw = await ws.recv()
                        except TimeoutError:
                            continue
                        self._judge(json.loads(raw))
            except (ConnectionClosed, OSError, InvalidHandshake, TimeoutError):
                node += 1
                await asyncio.sleep(0.1)

    def _judge(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "error" and frame.get("code") == "forbidden":
            self.refusals += 1
        elif kind == "event":
            self.events += 1
            event = frame.get("event", {})
            self.examples.add(f"misrouted: spy got {event.get('thread_id')} seq {event.get('seq')}")
        elif kind == "subscribed":
            self.breaches += 1
            self.examples.add(f"isolation: spy was subscribed to {frame.get('thread_id')}")
        else:
            self.examples.add(f"spy: unexpected frame {frame!r}"[:200])
