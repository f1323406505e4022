"""The gateway: HTTP API, WebSocket and SSE delivery, auth, metrics (protocol spec 3-4)."""

from __future__ import annotations

from threadwire.gateway.app import create_app

__all__ = ["create_app"]
