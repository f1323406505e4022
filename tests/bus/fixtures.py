"""Redis fixtures the bus and cluster suites share (their conftests import them)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.bus.redis_server import RedisServer, redis_server_binary

from threadwire.bus.redis import RedisBus

MakeBus = Callable[..., RedisBus]

async def open_pair(make_bus: MakeBus, url: str, **options: Any) -> tuple[RedisBus, RedisBus]:
    """A publishing node's bus and a subscribing node's bus on one Redis, both open."""
    publisher, subscriber = make_bus(url, **options), make_bus(url, **options)
    await publisher.open()
    await subscriber.open()
    return publisher, subscriber


FAST: dict[str, Any] = {
    "health_interval": 0.2,
    "backoff": (0.01, 0.1),
    "connect_timeout": 1.0,
    "flush_timeout": 0.2,
}
"""RedisBus options that make failure tests quick: a dead link seen in 0.4 s, quick retries."""


@pytest.fixture
def namespace() -> str:
    """A namespace of this test's own, so concurrent test runs on one Redis never meet."""
    return f"twtest-{secrets.token_hex(6)}"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server that the test may stop, freeze and restart."""
    server = RedisServer(redis_server_binary(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def make_bus(namespace: str) -> AsyncIterator[MakeBus]:
    """Build RedisBus objects in this test's namespace; every one is closed at teardown."""
    made: list[RedisBus] = []

    def make(url: str, **options: Any) -> RedisBus:
        options.setdefault("namespace", namespace)
        bus = RedisBus(url, **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()
