"""The load generator: subscribers, HTTP publishers and the credit loop, in one process.

    python -m benchmarks.fanout.loadgen '<Session as JSON>'

Connects `connections` subscribers in rooms of `room_size`, then runs each phase:
publishing starts, `warmup` seconds pass, then a window of `measure` seconds is
measured (deliveries received, latency of each from the timestamp in its payload,
server CPU from /proc/<pid>/stat, this process's CPU), then publishing stops and the
in-flight events drain. Prints one `PhaseResult` JSON line per phase on stdout.

Both ways of publishing run the same closed loop per room: event k is published only
once event k - window has reached all of the room's subscribers. `http` publishes
from here, one keep-alive connection per room, one event per POST; `inproc` starts the
server's own publishers (threadwire: one run of the `fanout` agent per thread) and
grants them credit over UDP.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Final

from benchmarks.fanout.wire import HttpClient, WsClient, http_request, open_http
from benchmarks.fanout.workload import (
    EVENT_RE,
    RELAYS,
    STOP,
    PhaseResult,
    Session,
    encode_credits,
    now_us,
    payload,
)

CONNECT_CONCURRENCY: Final = 64
CONNECT_TIMEOUT: Final = 120.0
CREDIT_FLUSH: Final = 0.001
"""Seconds a credit grant may wait to be batched with others into one datagram."""
CREDIT_REFRESH: Final = 0.1
"""Every room's grant is sent again this often (a lost datagram costs no more)."""
STALL_AFTER: Final = 3.0
"""A room whose oldest event has not reached every subscriber for this long is
counted as stalled and moves on (the missing deliveries show as lost)."""
DRAIN_QUIET: Final = 0.5
DRAIN_MAX: Final = 10.0
AGENT: Final = "fanout"


class Room:
    """One room (threadwire: one thread of its own user) and its closed-loop state."""

    __slots__ = (
        "completed",
        "counts",
        "http",
        "index",
        "max_seen",
        "name",
        "published",
        "run_id",
        "snapshot",
        "stuck_since",
        "subs",
        "token",
        "waiter",
    )

    def __init__(self, index: int, name: str, subs: int) -> None:
        self.index = index
        self.name = name
        self.subs = subs
        self.token = ""
        self.run_id = ""
        self.http: HttpClient | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.reset()

    def reset(self) -> None:
        """A new phase: events are numbered from 0 again."""
        self.completed = 0
        """Events 0 .. completed-1 reached every subscriber."""
        self.counts: dict[int, int] = {}
        self.max_seen = -1
        self.published = 0
        self.snapshot = 0
        self.stuck_since = 0.0


class Subscriber(WsClient):
    """One subscriber connection: counts, checks the order of and times every event."""

    def __init__(self, gen: LoadGen, room: Room, uri: str, headers: dict[str, str]) -> None:
        super().__init__(uri, headers)
        self.gen = gen
        self.room = room
        self.count = 0
        self.next_index = 0
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_open(self) -> None:
        kind = self.gen.session.server
        if kind == "threadwire":
            frame = {"op": "subscribe", "thread_id": self.room.name}
            self.send_text(json.dumps(frame).encode())
        elif kind in RELAYS:
            self._ready()

    def _ready(self) -> None:
        if not self.ready.done():
            self.ready.set_result(None)

    def on_frames(self, buffer: bytes, frames: list[tuple[int, int]]) -> None:
        gen = self.gen
        room = self.room
        now = now_us()
        search = EVENT_RE.search
        record = gen.latencies.append if gen.recording else None
        counts = room.counts
        events = 0
        for start, stop in frames:
            match = search(buffer, start, stop)
            if match is None:
                self.on_control(buffer[start:stop])
                continue
            index = int(match.group(1))
            events += 1
            if record is not None:
                record(now - int(match.group(2)))
            if index != self.next_index:
                gen.out_of_order += 1
            self.next_index = index + 1
            if index > room.max_seen:
                room.max_seen = index
            seen = counts.get(index, 0) + 1
            if seen < room.subs:
                counts[index] = seen
            else:
                counts.pop(index, None)
                if index >= room.completed:
                    room.completed = index + 1
                    gen.advance(room)
        self.count += events
        gen.received += events

    def on_control(self, frame: bytes) -> None:
        kind = self.gen.session.server
        if kind == "threadwire":
            message = json.loads(frame)
            if message.get("type") == "subscribed":
                self._ready()
            elif message.get("type") == "error":
                self.gen.error(f"error frame: {frame[:200]!r}")
        elif frame == b"2":  # engine.io ping
            self.send_text(b"3")
        elif frame[:1] == b"0":  # engine.io open: join the default namespace
            self.send_text(b"40")
        elif frame[:2] == b"40":
            self._ready()
        elif frame[:2] in (b"41", b"44"):
            self.gen.error(f"socket.io refused: {frame[:200]!r}")

    def on_lost(self) -> None:
        self.gen.closes[self.close_code or 1006] += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed {self.close_code} before ready"))


class LoadGen:
    """Drives one server through the session's phases."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.rooms = [Room(r, f"room{r:04d}", session.room_size) for r in range(session.rooms)]
        self.subscribers: list[Subscriber] = []
        self.service_token = ""
        self.received = 0
        self.recording = False
        self.latencies: array[int] = array("q")
        self.out_of_order = 0
        self.stalls = 0
        self.errors: list[str] = []
        self.closes: Counter[int] = Counter()
        self.publishing = False
        self.crediting = False
        self.dirty: set[int] = set()
        self.flush_pending = False
        self.udp: asyncio.DatagramTransport | None = None

    # -- setup ----------------------------------------------------------------------------

    def error(self, message: str) -> None:
        """Keep the first few errors for the report."""
        if len(self.errors) < 5:
            self.errors.append(message)

    async def setup(self) -> None:
        """threadwire: one user and one thread per room, tokens, one external run per room
        (recorded by a first event, before any subscriber connects)."""
        if self.session.server != "threadwire":
            return
        from threadwire.gateway.auth import issue_token
        from threadwire.ids import new_run_id

        s = self.session
        self.service_token = issue_token(s.secret, "bench-publisher", service=True)
        client = await open_http(s.host, s.http_port)
        try:
            for room in self.rooms:
                room.token = issue_token(s.secret, f"bench-user-{room.index:04d}")
                raw = http_request("POST", s.host, s.http_port, "/v1/threads", b"{}", room.token)
                status, body = await client.request(raw)
                if status != 201:
                    raise RuntimeError(f"creating a thread answered {status}: {body[:200]!r}")
                room.name = json.loads(body)["thread_id"]
                room.run_id = new_run_id(room.name)
                # The external run's first sight (threadwire records it) is setup, not
                # the steady state the HTTP phase measures.
                first = {"run_id": room.run_id, "thread_id": room.name, "type": "bench_setup"}
                raw = http_request(
                    "POST",
                    s.host,
                    s.http_port,
                    "/v1/events",
                    json.dumps(first).encode(),
                    self.service_token,
                )
                status, body = await client.request(raw)
                if status != 202:
                    raise RuntimeError(f"the first ingest answered {status}: {body[:200]!r}")
        finally:
            client.close()

    def _target(self, room: Room) -> tuple[str, dict[str, str]]:
        s = self.session
        if s.server == "threadwire":
            return f"ws://{s.host}:{s.ws_port}/v1/ws", {"Authorization": f"Bearer {room.token}"}
        if s.server in RELAYS:
            return f"ws://{s.host}:{s.ws_port}/room/{room.name}", {}
        query = f"EIO=4&transport=websocket&room={room.name}"
        return f"ws://{s.host}:{s.ws_port}/socket.io/?{query}", {}

    async def connect(self) -> None:
        """Open every subscriber and wait until each is subscribed to its room."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def one(room: Room) -> None:
            uri, headers = self._target(room)
            async with gate:
                _, sub = await self.loop.create_connection(
                    lambda: Subscriber(self, room, uri, headers),
                    self.session.host,
                    self.session.ws_port,
                )
                self.subscribers.append(sub)
                await sub.ready

        jobs = [one(room) for room in self.rooms for _ in range(room.subs)]
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await asyncio.gather(*jobs)

    def close(self) -> None:
        """Drop every connection."""
        for sub in self.subscribers:
            sub.close()
        for room in self.rooms:
            if room.http is not None:
                room.http.close()

    # -- the closed loop ----------------------------------------------------------------

    def advance(self, room: Room) -> None:
        """`room.completed` moved: let its publisher go on."""
        waiter = room.waiter
        if waiter is not None:
            room.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if self.crediting:
            self.dirty.add(room.index)
            if not self.flush_pending:
                self.flush_pending = True
                self.loop.call_later(CREDIT_FLUSH, self._flush_credits)

    def _flush_credits(self) -> None:
        self.flush_pending = False
        if not self.dirty or not self.crediting or self.udp is None:
            self.dirty.clear()
            return
        window = self.session.window
        rooms = self.rooms
        grants = {r: rooms[r].completed + window for r in self.dirty}
        self.dirty.clear()
        self.udp.sendto(encode_credits(grants))

    async def _refresh_credits(self) -> None:
        window = self.session.window
        while self.crediting and self.udp is not None:
            grants = {room.index: room.completed + window for room in self.rooms}
            # At most 180 rooms per datagram (well under any loopback limit).
            items = list(grants.items())
            for at in range(0, len(items), 180):
                self.udp.sendto(encode_credits(dict(items[at : at + 180])))
            await asyncio.sleep(CREDIT_REFRESH)

    async def _watch_stalls(self) -> None:
        while self.publishing:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for room in self.rooms:
                if room.completed != room.snapshot or room.max_seen < room.completed:
                    room.snapshot = room.completed
                    room.stuck_since = now
                elif now - room.stuck_since >= STALL_AFTER:
                    self.stalls += 1
                    self.error(f"room {room.index} stalled at event {room.completed}")
                    room.counts.clear()
                    room.completed = room.snapshot = room.max_seen + 1
                    room.stuck_since = now
                    self.advance(room)

    async def _publish_http(self, room: Room) -> None:
        s = self.session
        pad = "x" * s.pad
        if s.server == "threadwire":
            path, token = "/v1/events", self.service_token
            prefix = f'{{"run_id":"{room.run_id}","thread_id":"{room.name}","type":"bench","data":'
            suffix = "}"
        else:
            path, token, prefix, suffix = f"/publish/{room.name}", None, "", ""
        head = http_request("POST", s.host, s.http_port, path, b"", token)
        head = head[: head.rindex(b"Content-Length: ") + 16]
        client = room.http
        assert client is not None
        window = s.window
        index = 0
        while self.publishing:
            if index >= room.completed + window:
                room.waiter = self.loop.create_future()
                await room.waiter
                continue
            body = (prefix + payload(index, now_us(), pad) + suffix).encode()
            status, answer = await client.request(
                head + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            if status >= 300:
                self.error(f"POST {path} answered {status}: {answer[:200]!r}")
                return
            index += 1
            room.published = index

    # -- phases ---------------------------------------------------------------------------

    async def run_phase(self, phase: str) -> PhaseResult:
        """Publish, warm up, measure a window, stop, drain; the window's figures."""
        s = self.session
        await self._reset()
        if phase == "http":
            workers = [asyncio.create_task(self._publish_http(room)) for room in self.rooms]
        else:
            await self._start_inproc()
            workers = [asyncio.create_task(self._refresh_credits())]
        watcher = asyncio.create_task(self._watch_stalls())

        await asyncio.sleep(s.warmup)
        _announce({"mark": "measuring", "phase": phase})
        start = _Mark.take(self)
        self.recording = True
        await asyncio.sleep(s.measure)
        self.recording = False
        end = _Mark.take(self)
        _announce({"mark": "measured", "phase": phase})

        await self._stop(phase, [*workers, watcher])
        lost = sum(max(0, sub.room.published - sub.count) for sub in self.subscribers)
        if self.closes:
            self.error(f"connections closed (code: count): {dict(self.closes)}")
        latencies = sorted(self.latencies)
        return PhaseResult(
            server=s.server,
            connections=s.connections,
            phase=phase,
            seconds=end.wall - start.wall,
            deliveries=end.received - start.received,
            p50_ms=_percentile(latencies, 0.50) / 1000,
            p99_ms=_percentile(latencies, 0.99) / 1000,
            server_cpu_s=end.server_cpu - start.server_cpu,
            server_wait_s=end.server_wait - start.server_wait,
            client_cpu_s=end.client_cpu - start.client_cpu,
            published=sum(room.published for room in self.rooms),
            lost=lost,
            out_of_order=self.out_of_order,
            stalls=self.stalls,
            errors=self.errors,
        )

    async def _reset(self) -> None:
        for room in self.rooms:
            room.reset()
            room.http = await open_http(self.session.host, self.session.http_port)
        for sub in self.subscribers:
            sub.count = 0
            sub.next_index = 0
        self.out_of_order = self.stalls = 0
        self.errors = []
        self.closes.clear()
        self.latencies = array("q")
        self.publishing = True

    async def _stop(self, phase: str, tasks: list[asyncio.Task[None]]) -> None:
        """Stop publishing, let what is in flight arrive, close the HTTP connections."""
        self.publishing = False
        if phase == "inproc":
            await self._stop_inproc()
        for room in self.rooms:
            if room.waiter is not None and not room.waiter.done():
                room.waiter.set_result(None)
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._drain()
        for room in self.rooms:
            if room.http is not None:
                room.http.close()
                room.http = None
            if phase == "inproc":
                room.published = room.max_seen + 1

    async def _start_inproc(self) -> None:
        s = self.session
        self.udp, _ = await self.loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=(s.host, s.credit_port)
        )
        self.crediting = True
        if s.server == "threadwire":
            starts = []
            for room in self.rooms:
                spec = {"room": room.index, "events": s.max_events, "pad": s.pad}
                start = {"agent": AGENT, "input": {**spec, "credit_port": s.credit_port}}
                path = f"/v1/threads/{room.name}/runs"
                raw = http_request(
                    "POST", s.host, s.http_port, path, json.dumps(start).encode(), room.token
                )
                assert room.http is not None
                starts.append(room.http.request(raw))
            answers = await asyncio.gather(*starts)
        else:
            config = {
                "rooms": [room.name for room in self.rooms],
                "events": s.max_events,
                "pad": s.pad,
                "credit_port": s.credit_port,
            }
            client = self.rooms[0].http
            assert client is not None
            raw = http_request(
                "POST", s.host, s.http_port, "/inproc/start", json.dumps(config).encode()
            )
            answers = [await client.request(raw)]
        for status, body in answers:
            if status != 202:
                raise RuntimeError(f"starting in-process publishers answered {status}: {body!r}")

    async def _stop_inproc(self) -> None:
        self.crediting = False
        if self.udp is not None:
            for _ in range(3):
                self.udp.sendto(STOP)
                await asyncio.sleep(0.01)
            self.udp.close()
            self.udp = None

    async def _drain(self) -> None:
        """Wait until nothing has arrived for DRAIN_QUIET seconds (at most DRAIN_MAX)."""
        deadline = time.monotonic() + DRAIN_MAX
        last, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if self.received != last:
                last, quiet_since = self.received, time.monotonic()
            elif time.monotonic() - quiet_since >= DRAIN_QUIET:
                return


@dataclass(frozen=True)
class _Mark:
    """Counters at one edge of the measured window."""

    wall: float
    received: int
    server_cpu: float
    server_wait: float
    client_cpu: float

    @classmethod
    def take(cls, gen: LoadGen) -> _Mark:
        pid = gen.session.server_pid
        return cls(
            time.perf_counter(),
            gen.received,
            _server_cpu(pid),
            _run_queue_wait(pid),
            time.process_time(),
        )


def _announce(mark: dict[str, str]) -> None:
    """Tell the orchestrator where the window starts and ends (it may profile it)."""
    print(json.dumps(mark), flush=True)


def _server_cpu(pid: int) -> float:
    """User plus system CPU seconds of process `pid` (all its threads) so far."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_queue_wait(pid: int) -> float:
    """Seconds the threads of `pid` spent ready to run but waiting for a CPU (schedstat)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as stat:
                total += int(stat.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile, or no schedstats in this kernel
    return total / 1e9


def _percentile(ordered: list[int], q: float) -> float:
    if not ordered:
        return float("nan")
    return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


async def run(session: Session) -> None:
    """Set up, connect, run every phase; one JSON line per phase on stdout."""
    gen = LoadGen(session)
    try:
        await gen.setup()
        started = time.perf_counter()
        await gen.connect()
        print(
            f"{session.server}: {len(gen.subscribers)} subscribers ready in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        for phase in session.phases:
            result = await gen.run_phase(phase)
            print(result.to_json(), flush=True)
    finally:
        gen.close()


def main() -> None:
    session = Session.from_json(sys.argv[1])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(session))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(run(session))


if __name__ == "__main__":
    main()
