"""A real `threadwire serve` subprocess for black-box tests, and wire-level helpers.

Everything here speaks to the server only through its sockets and its files: HTTP with
httpx, WebSocket with the `websockets` client, tokens minted with PyJWT from the
secret the server was given (or the one it wrote to `./.threadwire-secret`).
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import jwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SECRET: Final = "e2e-conformance-secret-" + "0123456789abcdef" * 4
BANNER_LINES: Final = 5
START_TIMEOUT: Final = 60.0
PROBLEM_JSON: Final = "application/problem+json"


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any THREADWIRE_* variable (so `serve` runs with
    its defaults), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREADWIRE_")}
    env.update(extra)
    return env


def threadwire(*args: str) -> list[str]:
    """The command line that runs the threadwire CLI with this interpreter."""
    return [sys.executable, "-m", "threadwire", *args]


@dataclass
class Server:
    """A running `threadwire serve` process: its URL, cwd, log and token helpers."""

    proc: subprocess.Popen[bytes]
    url: str
    demo_token: str
    cwd: Path
    log: Path
    secret: str

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/v1/ws"

    def token(self, sub: str, *, ttl: int | None = 3600, **claims: Any) -> str:
        """An HS256 token for `sub` signed with the server's secret."""
        now = int(time.time())
        body: dict[str, Any] = {"sub": sub, "iat": now}
        if ttl is not None:
            body["exp"] = now + ttl
        body.update(claims)
        return jwt.encode(body, self.secret, algorithm="HS256")

    def service_token(self, name: str = "worker") -> str:
        return self.token(name, scope="events:write")

    def auth(self, sub: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}

    def service_auth(self, name: str = "worker") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.service_token(name)}"}

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    def ws(
        self,
        sub: str | None,
        *,
        query_token: str | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> connect:
        """A WebSocket to /v1/ws as `sub` (header), with `query_token` as access_token, or
        with explicit `headers`."""
        url = self.ws_url
        if query_token is not None:
            url += f"?access_token={query_token}"
        elif headers is None and sub is not None:
            headers = self.auth(sub)
        return connect(url, additional_headers=headers, open_timeout=10, **kwargs)

    def stop(self) -> int:
        """SIGTERM, then wait; SIGKILL if it hangs. Returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def start_server(cwd: Path, *args: str, secret: str | None = SECRET, **env: str) -> Server:
    """Start `threadwire serve --port 0 --print-demo-token ARGS` in `cwd` and wait for
    its banner (five lines: the URL first, the demo token last)."""
    extra = dict(env)
    if secret is not None:
        extra["THREADWIRE_JWT_SECRET"] = secret
    log = cwd / "serve.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            threadwire("serve", "--port", "0", "--print-demo-token", *args),
            cwd=cwd,
            env=clean_env(**extra),
            stdout=subprocess.PIPE,
            stderr=err,
        )
    try:
        lines = _read_lines(proc, BANNER_LINES, START_TIMEOUT)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    first = lines[0]
    assert first.startswith("threadwire is serving on "), (first, log.read_text())
    resolved = secret if secret is not None else (cwd / ".threadwire-secret").read_text().strip()
    return Server(proc, first.rsplit(" ", 1)[1], lines[-1], cwd, log, resolved)


def _read_lines(proc: subprocess.Popen[bytes], count: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buffer = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while buffer.count(b"\n") < count:
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no banner from threadwire serve: {buffer!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"threadwire serve exited ({proc.wait()}): {buffer!r}")
            buffer += chunk
    return [line.strip() for line in buffer.decode().splitlines()[:count]]


# -- names and tokens --------------------------------------------------------------------


def unique(prefix: str = "u") -> str:
    """A fresh name in the thread-ID grammar (the server is shared by many tests)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def alg_none_token(sub: str) -> str:
    """An unsigned token (`alg: none`)."""
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": sub, "exp": int(time.time()) + 3600}).encode())
    return f"{header}.{claims}."


# -- HTTP --------------------------------------------------------------------------------


def problem(answer: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Assert an RFC 9457 problem with `status` (and `code`); returns its body."""
    assert answer.status_code == status, (answer.status_code, answer.text)
    assert answer.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON, answer.headers
    body: dict[str, Any] = answer.json()
    assert isinstance(body.get("code"), str), body
    if code is not None:
        assert body["code"] == code, body
    return body


async def new_thread(http: httpx.AsyncClient, server: Server, user: str, **body: Any) -> str:
    answer = await http.post("/v1/threads", json=body, headers=server.auth(user))
    assert answer.status_code == 201, answer.text
    thread_id: str = answer.json()["thread_id"]
    return thread_id


async def ingest(
    http: httpx.AsyncClient, server: Server, body: dict[str, Any], status: int = 202
) -> httpx.Response:
    answer = await http.post("/v1/events", json=body, headers=server.service_auth())
    assert answer.status_code == status, answer.text
    return answer


async def fill(
    http: httpx.AsyncClient, server: Server, thread_id: str, count: int, run_id: str
) -> list[dict[str, Any]]:
    """Ingest `count` agent_message events on the thread (batches of 500)."""
    accepted: list[dict[str, Any]] = []
    while len(accepted) < count:
        n = min(500, count - len(accepted))
        events = [
            {"run_id": run_id, "type": "agent_message", "data": {"i": len(accepted) + i}}
            for i in range(n)
        ]
        answer = await ingest(http, server, {"events": events})
        accepted.extend(answer.json()["accepted"])
    return accepted


async def all_events(
    http: httpx.AsyncClient, server: Server, user: str, thread_id: str
) -> list[dict[str, Any]]:
    answer = await http.get(
        f"/v1/threads/{thread_id}/events", params={"limit": 1000}, headers=server.auth(user)
    )
    assert answer.status_code == 200, answer.text
    events: list[dict[str, Any]] = answer.json()["events"]
    return events


# -- WebSocket ---------------------------------------------------------------------------


async def send(ws: ClientConnection, frame: dict[str, Any]) -> None:
    await ws.send(json.dumps(frame))


async def recv(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await ws.recv())
    return frame


async def subscribe(
    ws: ClientConnection, thread_id: str, after_seq: int | None = None
) -> dict[str, Any]:
    frame: dict[str, Any] = {"op": "subscribe", "thread_id": thread_id}
    if after_seq is not None:
        frame["after_seq"] = after_seq
    await send(ws, frame)
    answer = await recv(ws)
    assert answer["type"] == "subscribed", answer
    return answer


async def events_until(
    ws: ClientConnection, stop: int | None = None, *, terminal: bool = False
) -> list[dict[str, Any]]:
    """Event frames until seq `stop` (or a terminal event); any other frame fails."""
    events: list[dict[str, Any]] = []
    while True:
        frame = await recv(ws)
        assert frame["type"] == "event", frame
        events.append(frame["event"])
        if stop is not None and frame["event"]["seq"] >= stop:
            return events
        if terminal and frame["event"]["type"] in TERMINAL:
            return events


async def quiet(ws: ClientConnection) -> None:
    """Ping and assert the very next frame is the pong: nothing else was pending."""
    await send(ws, {"op": "ping"})
    assert await recv(ws) == {"type": "pong"}


async def close_code(ws: ClientConnection) -> tuple[int | None, list[str | bytes]]:
    """Read until the server closes; its close code and any frames seen before."""
    seen: list[str | bytes] = []
    try:
        while True:
            seen.append(await ws.recv())
    except ConnectionClosed as exc:
        return (exc.rcvd.code if exc.rcvd is not None else None), seen


TERMINAL: Final = frozenset({"agent_completed", "agent_error", "run_cancelled"})
