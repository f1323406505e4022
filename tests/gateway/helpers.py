"""Small helpers the gateway tests share: threads, events, WebSocket frames."""

from __future__ import annotations

import json
from typing import Any

import httpx
from tests.gateway.harness import Node
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from threadwire.events import Event, NewEvent, utcnow
from threadwire.ids import new_event_id, new_run_id


async def make_thread(http: httpx.AsyncClient, node: Node, user: str, thread_id: str) -> None:
    """Create `thread_id` owned by `user` through the API."""
    answer = await http.post("/v1/threads", json={"thread_id": thread_id}, headers=node.auth(user))
    assert answer.status_code == 201, answer.text


async def emit(
    node: Node, thread_id: str, count: int, *, type_: str = "agent_message"
) -> list[Event]:
    """Store and publish `count` events on `thread_id` through the coordinator."""
    run_id = new_run_id(thread_id)
    batch = [
        NewEvent(new_event_id(), thread_id, run_id, type_, utcnow(), {"i": i}) for i in range(count)
    ]
    return await node.gateway.coordinator.emit(batch)


def ws_connect(node: Node, user: str | None, **kwargs: Any) -> connect:
    """Open a WebSocket to the node as `user` (None: without a token)."""
    headers = node.auth(user) if user is not None else {}
    return connect(node.ws_url, additional_headers=headers, open_timeout=10, **kwargs)


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    """Send one JSON frame."""
    await ws.send(json.dumps(frame))


async def recv(ws: ClientConnection) -> dict[str, Any]:
    """Receive one JSON frame."""
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


async def subscribe(
    ws: ClientConnection, thread_id: str, after_seq: int | None = None
) -> dict[str, Any]:
    """Subscribe and return the `subscribed` answer."""
    frame: dict[str, Any] = {"op": "subscribe", "thread_id": thread_id}
    if after_seq is not None:
        frame["after_seq"] = after_seq
    await send(ws, frame)
    answer = await recv(ws)
    assert answer["type"] == "subscribed", answer
    return answer


async def events_until(ws: ClientConnection, last_seq: int) -> list[dict[str, Any]]:
    """Receive frames until the event with `last_seq`; returns the events (others fail)."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["seq"] < last_seq:
        frame = await recv(ws)
        assert frame["type"] == "event", frame
        events.append(frame["event"])
    return events


async def close_code(ws: ClientConnection) -> int | None:
    """Read until the server closes; the close code it sent."""
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None


def seqs(events: list[dict[str, Any]]) -> list[int]:
    """The seq of each event."""
    return [e["seq"] for e in events]
