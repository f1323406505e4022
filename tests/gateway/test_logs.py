"""Structured logs: JSON lines carrying the request and connection IDs in scope."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from tests.gateway.harness import Node
from tests.gateway.helpers import recv, send, ws_connect

from threadwire.gateway.logs import JsonFormatter


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("threadwire")
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_each_request_is_logged_with_its_x_request_id(
    node: Node, http: httpx.AsyncClient, log_lines: io.StringIO
) -> None:
    answer = await http.get("/v1/threads", headers=node.auth("alice"))
    request_id = answer.headers["x-request-id"]
    access = [line for line in _lines(log_lines) if line.get("request_id") == request_id]
    assert access and access[0]["status"] == 200 and access[0]["route"] == "/v1/threads"
    assert access[0]["logger"] == "threadwire.access"


async def test_websocket_logs_carry_the_connection_id(node: Node, log_lines: io.StringIO) -> None:
    async with ws_connect(node, "alice") as ws:
        await send(ws, {"op": "ping"})
        await recv(ws)
    connected = [line for line in _lines(log_lines) if line["msg"] == "websocket connected"]
    assert connected and str(connected[0]["connection_id"]).startswith("conn_")
