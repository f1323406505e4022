"""Bus fixtures: a private namespace on the shared test Redis, a throwaway server, a bus maker."""

from __future__ import annotations

from tests.bus.fixtures import make_bus, namespace, redis_server

__all__ = ["make_bus", "namespace", "redis_server"]
