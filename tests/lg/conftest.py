"""Fixtures of the LangGraph API tests: a real node (the gateway harness) and the real
`langgraph-sdk` async client pointed at its `/lg`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from langgraph_sdk import get_client
from tests.gateway.harness import Node, node_settings, serve_app


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """A node on the memory store with the built-in agents."""
    async with serve_app(node_settings()) as running:
        yield running


@pytest.fixture
async def client(node: Node) -> AsyncIterator[Any]:
    """The SDK client of user `alice`."""
    async with get_client(url=node.url + "/lg", api_key=node.token("alice")) as sdk:
        yield sdk
