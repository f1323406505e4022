"""Helpers the LangGraph API tests share: reading SDK streams, the stored events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
from tests.gateway.harness import Node

FAST: dict[str, Any] = {"prompt": "tides", "steps": 3, "delay_ms": 0}
"""A demo input that finishes at once."""
SLOW: dict[str, Any] = {"prompt": "tides", "steps": 1000, "delay_ms": 50}
"""A demo input that runs for a minute unless cancelled."""


async def collect(stream: AsyncIterator[Any]) -> list[Any]:
    """Every part of an SDK stream, to its end."""
    return [part async for part in stream]


async def take(stream: AsyncIterator[Any], count: int) -> list[Any]:
    """The next `count` parts of an SDK stream (which stays open)."""
    return [await anext(stream) for _ in range(count)]


async def take_until(stream: AsyncIterator[Any], event_type: str) -> list[Any]:
    """Parts up to and including the first `custom` part of a threadwire `event_type`."""
    parts = []
    async for part in stream:
        parts.append(part)
        if part.event == "custom" and part.data["type"] == event_type:
            return parts
    raise AssertionError(f"the stream ended before a {event_type!r} event")


def customs(parts: list[Any]) -> list[dict[str, Any]]:
    """The data of the `custom` parts (threadwire events), in order."""
    return [part.data for part in parts if part.event == "custom"]


def seqs(parts: list[Any]) -> list[int]:
    """The seq of each `custom` part."""
    return [data["seq"] for data in customs(parts)]


async def stored_events(node: Node, user: str, thread_id: str) -> list[dict[str, Any]]:
    """The thread's events as threadwire's own API has them."""
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        answer = await http.get(
            f"/v1/threads/{thread_id}/events", params={"limit": 1000}, headers=node.auth(user)
        )
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


def run_events(events: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """The events of one run, as custom parts carry them."""
    return [
        {"type": e["type"], "data": e["data"], "seq": e["seq"]}
        for e in events
        if e["run_id"] == run_id
    ]
