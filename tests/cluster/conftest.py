"""Cluster fixtures: the bus suite's Redis fixtures (private namespace, throwaway server)."""

from __future__ import annotations

from tests.bus.fixtures import make_bus, namespace, redis_server

__all__ = ["make_bus", "namespace", "redis_server"]
