"""The web page: one static page at `/`, its ES modules and stylesheet under `/ui/`.

No build step: the files under `static/` are what the browser loads, and they travel
inside the wheel (hatchling packages everything under `src/threadwire`). The page
talks to the same node through `/v1` and `/v1/ws` with the user's bearer token.

    app = create_app(settings)
    threadwire.web.mount(app)
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR: Final = Path(__file__).parent / "static"
"""The page's files: index.html, the ES modules, style.css."""

INDEX: Final = STATIC_DIR / "index.html"
ASSETS_PATH: Final = "/ui"
"""Where the assets are served; index.html names them relative to the page (`ui/...`)."""

_ASSETS_NAME: Final = "threadwire-ui"

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        # 'self' covers ws:/wss: to the same host in CSP 3 browsers.
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
"""The page runs only its own modules and talks only to its own node; event data it
renders is untrusted, so no inline script or style is ever allowed."""

_PAGE_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


async def index(request: Request) -> Response:
    """The page itself (revalidated on every load, so an upgrade shows at once)."""
    return FileResponse(INDEX, media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


def mount(app: FastAPI) -> None:
    """Serve the page at `/` and its assets under `/ui/` on `app`.

    Replaces any other `GET /` route (the gateway's placeholder), so calling it before
    or after the gateway registers its own gives the same app; calling it twice
    changes nothing.
    """
    routes = app.router.routes
    routes[:] = [route for route in routes if not _serves_root(route)]
    routes.insert(0, Route("/", index, methods=["GET"], include_in_schema=False))
    if not any(getattr(route, "name", None) == _ASSETS_NAME for route in routes):
        app.mount(ASSETS_PATH, StaticFiles(directory=STATIC_DIR), name=_ASSETS_NAME)


def _serves_root(route: BaseRoute) -> bool:
    if isinstance(route, Mount):
        return False
    methods = getattr(route, "methods", None) or ()
    return getattr(route, "path", None) == "/" and "GET" in methods


__all__ = ["ASSETS_PATH", "CONTENT_SECURITY_POLICY", "STATIC_DIR", "mount"]
