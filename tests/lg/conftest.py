"""Fixtures of the LangGraph API tests: a real node (the gateway harness) and the real
`langgraph-sdk` async client pointed at its `/lg`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client
from tests.gateway.harness import Node, node_settings, serve_app


@pytest.fixture(params=["memory", "sqlite"])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    """A node with the built-in agents, on the memory store and on the embedded SQLite
    store `threadwire serve` uses by default."""
    url = "memory://" if request.param == "memory" else f"sqlite+aiosqlite:///{tmp_path}/tw.db"
    async with serve_app(node_settings(database_url=url)) as running:
        yield running


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Any]:
    """The SDK client of user `alice`."""
    async with get_client(url=node.url + "/lg", api_key=node.token("alice")) as sdk:
        yield sdk
