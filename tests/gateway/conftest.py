"""Fixtures of the gateway tests: a running node on the memory store, an HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.gateway.harness import Node, node_settings, serve_app


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    """A node on the memory store with default limits."""
    async with serve_app(node_settings()) as running:
        yield running


@pytest.fixture
async def http(node: Node) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client pointed at `node`."""
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        yield client
