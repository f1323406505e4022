"""The gateway: HTTP API, WebSocket and SSE delivery, auth, metrics (protocol spec 3-4).

`create_app` is imported on first use, so `threadwire token` and other commands that
only need `gateway.auth` do not load FastAPI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from threadwire.gateway.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from threadwire.gateway.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
