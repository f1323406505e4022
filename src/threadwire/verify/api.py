"""HTTP to a deployment of one or more nodes: tokens, failover between nodes, paged reads.

A node that refuses the connection, times out or answers 503 (draining) is skipped
for the next one; every other answer is the deployment's and is returned as is.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any, Final

import httpx
import jwt

SERVICE_SCOPE: Final = "events:write"
_RETRY_STATUS: Final = frozenset({502, 503, 504})


def sign_token(secret: str, subject: str, *, service: bool = False, ttl: int = 24 * 3600) -> str:
    """An HS256 token for `subject` (scope `events:write` when `service`)."""
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl}
    if service:
        claims["scope"] = SERVICE_SCOPE
    return jwt.encode(claims, secret, algorithm="HS256")


class Unreachable(Exception):
    """No node answered within the attempts allowed."""


class Deployment:
    """The nodes of a deployment, tried in turn; one pooled HTTP client for all."""

    def __init__(self, urls: Sequence[str], *, timeout: float = 10.0) -> None:
        if not urls:
            raise ValueError("a deployment needs at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self._next = itertools.count()
        self._http = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=200))
        self.failovers = 0
        """Requests that had to move to another node."""

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def ws_urls(self) -> list[str]:
        """The WebSocket endpoint of every node."""
        return ["ws" + u.removeprefix("http") + "/v1/ws" for u in self.urls]

    async def request(
        self, method: str, path: str, token: str, *, deadline: float = 30.0, **kwargs: Any
    ) -> httpx.Response:
        """Send to one node after another until one answers (not 502-504), for up to
        `deadline` seconds: long enough for a killed node to come back."""
        start = next(self._next)
        headers = {"Authorization": f"Bearer {token}"}
        stop_at = time.monotonic() + deadline
        last: BaseException | None = None
        for attempt in itertools.count():
            url = self.urls[(start + attempt) % len(self.urls)] + path
            try:
                answer = await self._http.request(method, url, headers=headers, **kwargs)
            except (httpx.TransportError, OSError) as exc:
                last = exc
            else:
                if answer.status_code not in _RETRY_STATUS:
                    return answer
                last = RuntimeError(f"{answer.status_code} from {url}")
            self.failovers += 1
            if time.monotonic() >= stop_at:
                break
            if (attempt + 1) % len(self.urls) == 0:  # every node tried: back off
                await asyncio.sleep(min(0.05 * 2 ** (attempt // len(self.urls)), 0.5))
        raise Unreachable(f"{method} {path}: no node answered in {deadline:g} s ({last!r})")

    async def json(
        self, method: str, path: str, token: str, *, expect: int, **kwargs: Any
    ) -> dict[str, Any]:
        """`request`, checking the status; the JSON body."""
        answer = await self.request(method, path, token, **kwargs)
        if answer.status_code != expect:
            raise RuntimeError(
                f"{method} {path}: expected {expect}, got {answer.status_code}: {answer.text[:300]}"
            )
        body: dict[str, Any] = answer.json()
        return body

    async def thread_events(self, thread_id: str, token: str) -> list[dict[str, Any]]:
        """Every stored event of a thread, in seq order, read page by page."""
        events: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.json(
                "GET",
                f"/v1/threads/{thread_id}/events",
                token,
                expect=200,
                params={"after_seq": after, "limit": 1000},
            )
            events.extend(page["events"])
            if page["next_after_seq"] is None:
                return events
            after = int(page["next_after_seq"])
