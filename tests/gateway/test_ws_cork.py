"""Events offered during one pass of the event loop leave in one write, in order with
the connection's answers (`Connection.offer` / `uncork`).

A unit test with a recording socket: the order of bytes on the wire is what matters,
and only a stand-in for the transport can say which write carried which frame.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from threadwire.config import Settings
from threadwire.events import Event
from threadwire.gateway.auth import Principal
from threadwire.gateway.hub import Wire
from threadwire.gateway.ws import CLOSE_LAGGING, Connection
from threadwire.gateway.wsproto import EXTENSION, text_frame


class RecordingSocket:
    """The parts of a Starlette WebSocket a Connection uses, writing into lists."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []  # direct frame writes, one entry per write
        self.sent: list[str] = []  # ASGI sends
        self.open = True
        self.scope: dict[str, Any] = {"extensions": {EXTENSION: {"write": self._write}}}

    def _write(self, frames: bytes) -> bool:
        if self.open:
            self.writes.append(frames)
        return self.open

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message["text"])


def make_connection(socket: RecordingSocket, queue_size: int = 100) -> Connection:
    settings = Settings(jwt_secret="x" * 32, ws_queue_size=queue_size)
    gateway: Any = SimpleNamespace(settings=settings)
    return Connection(gateway, socket, Principal("alice", frozenset()))  # type: ignore[arg-type]


TS = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
"""One timestamp for every test event: a wire made twice has the same bytes."""


def wire(seq: int, thread_id: str = "t1") -> Wire:
    event = Event(
        event_id=f"evt_{seq:026d}",
        thread_id=thread_id,
        run_id="run",
        type="note",
        ts=TS,
        data={"n": seq},
        seq=seq,
    )
    return Wire(event)


async def end_of_pass() -> None:
    """Let the loop finish the current pass (the cork's flush is scheduled in it)."""
    await asyncio.sleep(0)


async def test_events_offered_in_one_pass_leave_in_one_write_in_order() -> None:
    socket = RecordingSocket()
    conn = make_connection(socket)
    wires = [wire(n) for n in (1, 2, 3)]
    assert all(conn.offer(w) for w in wires)
    assert socket.writes == []  # nothing written before the pass ends
    await end_of_pass()
    assert socket.writes == [b"".join(w.frame for w in wires)]
    assert socket.writes[0].startswith(text_frame(wires[0].json.encode()))


async def test_an_answer_queued_after_a_corked_event_keeps_its_place() -> None:
    socket = RecordingSocket()
    conn = make_connection(socket)
    sender = asyncio.create_task(conn._send_loop())
    try:
        conn.offer(wire(1, "t1"))  # corked
        conn._send_control({"type": "subscribed", "thread_id": "t2", "head_seq": 0})
        conn.offer(wire(1, "t2"))  # must not overtake the answer before it
        for _ in range(5):
            await end_of_pass()
        assert socket.writes == [wire(1, "t1").frame]
        assert [json.loads(text)["type"] for text in socket.sent] == ["subscribed", "event"]
        assert json.loads(socket.sent[1])["event"]["thread_id"] == "t2"
    finally:
        sender.cancel()


async def test_a_socket_that_cannot_take_the_cork_gets_it_through_the_queue_first() -> None:
    socket = RecordingSocket()
    conn = make_connection(socket)
    socket.open = False  # the transport is paused: direct writes are refused
    conn.offer(wire(1))
    conn.offer(wire(2))
    sender = asyncio.create_task(conn._send_loop())
    try:
        for _ in range(5):
            await end_of_pass()
        assert socket.writes == []
        assert [json.loads(t)["event"]["seq"] for t in socket.sent] == [1, 2]
    finally:
        sender.cancel()


async def test_corked_events_count_toward_the_send_queue_bound() -> None:
    socket = RecordingSocket()
    conn = make_connection(socket, queue_size=2)
    assert conn.offer(wire(1))
    assert conn.offer(wire(2))
    assert not conn.offer(wire(3))  # two already corked: the third overflows
    assert conn._close is not None and conn._close[0] == CLOSE_LAGGING


def test_a_loop_that_ends_mid_pass_leaves_the_next_loop_its_own_passes() -> None:
    first, second = RecordingSocket(), RecordingSocket()
    loop = asyncio.new_event_loop()

    def offer_and_stop() -> None:
        make_connection(first).offer(wire(1))
        loop.stop()  # the loop ends before the pass that would write the frame

    loop.call_soon(offer_and_stop)
    loop.run_forever()
    loop.close()
    assert first.writes == []

    async def offer_and_wait() -> None:
        make_connection(second).offer(wire(1))
        await end_of_pass()

    asyncio.run(offer_and_wait())
    assert second.writes == [wire(1).frame]
