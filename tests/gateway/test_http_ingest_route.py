"""`POST /v1/events` answered by `IngestRoute` before the router (decision 0112).

The lean path must be invisible: every request gets what FastAPI's route gave it. Two
nodes in the same state take the same requests, one through the app (lean path), one
through the same gateway middleware without it (the FastAPI route), and their answers,
metrics and access-log lines are compared. Then what only a real socket shows: bodies
in pieces, bodies refused before they are sent, clients that leave mid-body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx
import pytest
from prometheus_client import REGISTRY
from starlette.types import Message, Receive, Scope, Send
from tests.gateway.harness import Node, node_settings, serve_app
from tests.gateway.helpers import make_thread
from tests.gateway.hostile import PROBLEM

from threadwire.gateway.app import CLIENT_CLOSED, GatewayMiddleware
from threadwire.ids import new_run_id

MIB: Final = 1024 * 1024
RUN: Final = new_run_id("t1")
GOOD: Final = {"run_id": RUN, "type": "agent_message", "data": {"text": "hi"}}
JSON: Final = {"Content-Type": "application/json"}


@dataclass
class Pair:
    """Two nodes in the same state: `lean` serves through its app, `plain` through the
    gateway middleware alone (the FastAPI route answers every ingest)."""

    lean: Node
    plain: Node
    lean_http: httpx.AsyncClient
    plain_http: httpx.AsyncClient


def _plain_app(node: Node) -> Any:
    lean = getattr(node.app, "lean_ingest", None)
    assert lean is not None and isinstance(lean.entry, GatewayMiddleware)
    plain = GatewayMiddleware(lean.entry.app, node.gateway)  # no IngestRoute

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = node.app
        await plain(scope, receive, send)

    return app


async def _world(http: httpx.AsyncClient, node: Node) -> None:
    for user, thread in (("alice", "t1"), ("alice", "t2"), ("bob", "bobs")):
        await make_thread(http, node, user, thread)


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async with serve_app(node_settings()) as lean, serve_app(node_settings()) as plain:
        lean_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=lean.app), base_url="http://tw", timeout=10
        )
        plain_http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_plain_app(plain)), base_url="http://tw", timeout=10
        )
        async with lean_http, plain_http:
            await _world(lean_http, lean)
            await _world(plain_http, plain)
            yield Pair(lean, plain, lean_http, plain_http)


@contextmanager
def _access_lines() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    access = logging.getLogger("threadwire.access")
    old_level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        yield records
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)


def _counters() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the default registry that counts (not times) something."""
    values = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if not sample.name.startswith("threadwire_"):
                continue  # the process and GC collectors change on their own
            if sample.name.endswith(("_created", "_sum", "_bucket")):
                continue
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


@dataclass
class Seen:
    """One answer with what it left behind: counter changes and access-log fields."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: Any
    counted: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    logged: list[dict[str, Any]]


async def _see(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Seen:
    sent_id = dict(kwargs.get("headers") or {}).get("X-Request-ID")
    before = _counters()
    with _access_lines() as records:
        answer = await client.request(method, url, **kwargs)
    after = _counters()
    counted = {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}
    request_id = answer.headers["x-request-id"]
    assert request_id.startswith("req_") and request_id != sent_id
    logged = []
    for record in records:
        fields = {k: vars(record)[k] for k in ("method", "path", "route", "status")}
        logged.append({"msg": record.getMessage(), **fields})
    assert len(records) == 1 and getattr(records[0], "request_id", request_id) == request_id
    headers = [(k, v) for k, v in answer.headers.raw if k.lower() != b"x-request-id"]
    body: Any = answer.content
    if answer.headers.get("content-type") == "application/json":
        body = json.loads(answer.content)
        for accepted in body.get("accepted", []):
            accepted["event_id"] = "<event_id>"  # random per node
            # A legacy ID's canonical form carries the time of its first sight.
            accepted["run_id"] = re.sub(r"_run_\d+_", "_run_<ms>_", accepted["run_id"])
    return Seen(answer.status_code, headers, body, counted, logged)


async def _same(pair: Pair, method: str, url: str, **kwargs: Any) -> Seen:
    lean = await _see(pair.lean_http, method, url, **kwargs)
    plain = await _see(pair.plain_http, method, url, **kwargs)
    assert lean == plain, (method, url, kwargs)
    return lean


def _body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


BODIES: Final[list[tuple[str, Any]]] = [
    ("one event", GOOD),
    (
        "a batch with a key",
        {"events": [GOOD, {**GOOD, "type": "tool_completed"}], "idempotency_key": "k1"},
    ),
    (
        "that batch again: the first answer",
        {"events": [GOOD, {**GOOD, "type": "tool_completed"}], "idempotency_key": "k1"},
    ),
    ("a key on one event", {**GOOD, "idempotency_key": "k2"}),
    ("a legacy run ID", {"run_id": "run_t1_0000abcd", "type": "x", "thread_id": "t1"}),
    ("no data, data null", {"run_id": RUN, "type": "x", "data": None}),
    ("thread of another user", {"run_id": new_run_id("bobs"), "type": "x"}),
    ("a missing thread", {"run_id": new_run_id("nope"), "type": "x"}),
    ("thread_id disagrees", {**GOOD, "thread_id": "t2"}),
    ("bad thread_id", {**GOOD, "thread_id": "a b"}),
    ("a bare UUID", {"run_id": "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e", "type": "x"}),
    (
        "a UUID with its thread",
        {"run_id": "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e", "type": "x", "thread_id": "t2"},
    ),
    ("run_id of bad charset", {"run_id": "run_t1_$$", "type": "x"}),
    ("run_id not a string", {"run_id": 5, "type": "x"}),
    ("run_id null", {"run_id": None, "type": "x"}),
    ("no run_id", {"type": "x"}),
    ("bad type", {**GOOD, "type": "Bad Type"}),
    ("data not an object", {**GOOD, "data": [1]}),
    ("the second event bad", {"events": [GOOD, {**GOOD, "type": ""}]}),
    ("events not a list", {"events": 5}),
    ("no events", {"events": []}),
    ("an empty object", {}),
    ("a bad key", {**GOOD, "idempotency_key": ""}),
    ("NaN in data", b'{"run_id": "%s", "type": "x", "data": {"v": NaN}}' % RUN.encode()),
    ("a lone surrogate", b'{"run_id": "%s", "type": "x", "data": {"v": "\\ud800"}}' % RUN.encode()),
    ("65 levels", {**GOOD, "data": json.loads('{"a":' * 64 + "1" + "}" * 64)}),
    ("duplicate members", b'{"run_id": "x", "run_id": "%s", "type": "x"}' % RUN.encode()),
    ("a terminal event", {**GOOD, "type": "agent_completed", "data": {"result": 1}}),
    ("after the terminal event", GOOD),
    ("no body", b""),
    ("whitespace", b"  "),
    ("JSON null", b"null"),
    ("a list", b"[]"),
    ("a list of an event", _body([GOOD])),
    ("a string", b'"text"'),
    ("a number", b"12"),
    ("cut short", b'{"run_id": '),
    ("trailing garbage", _body(GOOD) + b"x"),
    ("not UTF-8", b'{"run_id": "\xff"}'),
    ("UTF-16", json.dumps(GOOD).encode("utf-16")),
    ("a UTF-8 BOM", b"\xef\xbb\xbf" + _body(GOOD)),
    ("nested past the parser", b"[" * 100_000),
    ("a 5000-digit number", b'{"n": ' + b"1" * 5000 + b"}"),
    ("over 1 MiB", _body({**GOOD, "data": {"pad": "x" * MIB}})),
]


async def test_every_body_gets_what_the_fastapi_route_gave_it(pair: Pair) -> None:
    auth = pair.lean.service_auth()  # both nodes share the test secret
    for name, value in BODIES:
        seen = await _same(
            pair, "POST", "/v1/events", content=_body(value), headers={**auth, **JSON}
        )
        assert seen.status in {202, 400, 404, 409, 413, 422}, (name, seen)
    lean = await pair.lean.gateway.store.read_events("t1", after_seq=0, limit=100)
    plain = await pair.plain.gateway.store.read_events("t1", after_seq=0, limit=100)
    assert [(e.seq, e.type, e.data) for e in lean] == [(e.seq, e.type, e.data) for e in plain]
    assert len(lean) >= 5


CONTENT_TYPES: Final[list[dict[str, str] | list[tuple[str, str]]]] = [
    {},  # none at all
    {"Content-Type": ""},
    {"Content-Type": "application/json; charset=utf-8"},
    {"Content-Type": "APPLICATION/JSON"},
    {"Content-Type": "application/vnd.worker+json"},
    {"Content-Type": "application/jsonx"},
    {"Content-Type": "text/json"},
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {"Content-Type": "application"},
    {"Content-Type": ";;;"},
    [("Content-Type", "text/plain"), ("Content-Type", "application/json")],
    [("Content-Type", "application/json"), ("Content-Type", "text/plain")],
]


async def test_every_content_type_is_judged_as_the_fastapi_route_judged_it(pair: Pair) -> None:
    auth = list(pair.lean.service_auth().items())
    statuses = set()
    for content_type in CONTENT_TYPES:
        pairs = list(content_type.items()) if isinstance(content_type, dict) else content_type
        for body in (_body(GOOD), b"[]"):
            seen = await _same(pair, "POST", "/v1/events", content=body, headers=auth + pairs)
            statuses.add(seen.status)
    assert statuses == {202, 422}


async def test_tokens_methods_and_paths_around_the_route_answer_as_before(pair: Pair) -> None:
    service, user = pair.lean.service_auth(), pair.lean.auth("alice")
    body = _body(GOOD)
    cases: list[tuple[str, str, dict[str, str]]] = [
        ("POST", "/v1/events", JSON),  # no token
        ("POST", "/v1/events", {**JSON, "Authorization": "Bearer nonsense"}),
        ("POST", "/v1/events", {**JSON, "Authorization": "Basic abc"}),
        ("POST", "/v1/events", {**JSON, **user}),
        ("POST", "/v1/events?x=1&access_token=y", {**JSON, **service}),
        ("POST", "/v1/events/", {**JSON, **service}),
        ("POST", "/v1//events", {**JSON, **service}),
        ("POST", "/V1/events", {**JSON, **service}),
        ("POST", "/v1/events", {**JSON, **service, "X-Request-ID": "req_mine"}),
        ("POST", "/v1/events", {**JSON, **service, "Content-Length": str(MIB + 1)}),
    ]
    for method in ("GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"):
        cases.append((method, "/v1/events", {**JSON, **service}))
        cases.append((method, "/v1/events", JSON))
    for method, url, headers in cases:
        content = body if method in {"POST", "PUT", "PATCH"} else None
        if headers.get("Content-Length") == str(MIB + 1):
            content = body + b" " * (MIB + 1 - len(body))
        await _same(pair, method, url, content=content, headers=headers)


async def _same_good_ingest(pair: Pair) -> Seen:
    """A well-formed ingest request, answered alike by both nodes."""
    return await _same(
        pair,
        "POST",
        "/v1/events",
        content=_body(GOOD),
        headers={**pair.lean.service_auth(), **JSON},
    )


async def test_while_draining_an_ingest_is_refused_as_before(pair: Pair) -> None:
    pair.lean.gateway.draining = pair.plain.gateway.draining = True
    try:
        seen = await _same_good_ingest(pair)
    finally:
        pair.lean.gateway.draining = pair.plain.gateway.draining = False
    assert seen.status == 503 and json.loads(seen.body)["code"] == "shutting_down"


async def test_a_bug_in_ingest_is_a_500_problem_with_the_request_id(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    for node in (pair.lean, pair.plain):
        monkeypatch.setattr(node.gateway.ingestor, "ingest", broken)
    seen = await _same_good_ingest(pair)
    assert seen.status == 500 and json.loads(seen.body)["code"] == "internal"


async def test_the_usual_request_skips_the_router_and_others_reach_it(
    node: Node, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_thread(http, node, "alice", "t1")
    lean = getattr(node.app, "lean_ingest", None)
    assert lean is not None
    answered: list[bool] = []
    answer = lean.answer

    async def spy(*args: Any) -> bool:
        answered.append(await answer(*args))
        return answered[-1]

    monkeypatch.setattr(lean, "answer", spy)
    auth = node.service_auth()
    for content, headers in (
        (_body(GOOD), JSON),
        (_body([GOOD]), JSON),
        (_body(GOOD), {"Content-Type": "text/plain"}),
        (_body({**GOOD, "type": "Bad"}), JSON),
    ):
        await http.post("/v1/events", content=content, headers={**auth, **headers})
    assert answered == [True, False, False, True]


# -- ASGI messages the lean path must read right ----------------------------------------


async def _call(
    node: Node,
    messages: list[Message],
    headers: list[tuple[bytes, bytes]],
    *,
    path: str = "/v1/events",
    token: str | None = None,
) -> tuple[list[Message], int]:
    """Drive the app with `messages` as the request; the messages it sent and how many
    times it called receive."""
    received = 0
    sent: list[Message] = []
    queue = list(messages)

    async def receive() -> Message:
        nonlocal received
        received += 1
        if queue:
            return queue.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    bearer = (token or node.service_token()).encode()
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", b"Bearer " + bearer), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await node.app(scope, receive, send)
    return sent, received


def _pieces(body: bytes, size: int) -> list[Message]:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


async def test_a_body_in_one_byte_messages_without_content_length_is_read_whole(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    body = _body({**GOOD, "data": {"text": "é" * 40}})
    sent, received = await _call(node, _pieces(body, 1), [(b"content-type", b"application/json")])
    assert received == len(body)
    assert sent[0]["status"] == 202, sent
    (stored,) = await node.gateway.store.read_events("t1", after_seq=0, limit=10)
    assert stored.data == {"text": "é" * 40}
    assert json.loads(sent[1]["body"])["accepted"][0]["event_id"] == stored.event_id


async def test_a_body_past_the_limit_is_refused_without_reading_the_rest(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    messages = _pieces(b"x" * (2 * MIB), 64 * 1024)
    sent, received = await _call(node, messages, [(b"content-type", b"application/json")])
    assert sent[0]["status"] == 413
    assert received == MIB // (64 * 1024) + 1  # the first message that crossed the limit
    announced = [(b"content-type", b"application/json"), (b"content-length", str(2 * MIB).encode())]
    sent, received = await _call(node, messages, announced)
    assert (sent[0]["status"], received) == (413, 0)
    assert await node.gateway.store.read_events("t1", after_seq=0, limit=10) == []


async def test_a_client_gone_mid_body_is_answered_nothing_and_stores_nothing(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    # What arrived is a whole JSON event; the rest (spaces) never came.
    head: list[Message] = [{"type": "http.request", "body": _body(GOOD), "more_body": True}]
    with _access_lines() as records:
        sent, _ = await _call(
            node, [*head, {"type": "http.disconnect"}], [(b"content-type", b"application/json")]
        )
    assert sent == []
    assert await node.gateway.store.read_events("t1", after_seq=0, limit=10) == []
    (line,) = records
    assert (vars(line)["status"], vars(line)["route"]) == (CLIENT_CLOSED, "unmatched")
    # Every route reads its body through the same middleware, and is spared the same way.
    thread: list[Message] = [
        {"type": "http.request", "body": b'{"thread_id": "t9"}', "more_body": True}
    ]
    sent, _ = await _call(
        node,
        [*thread, {"type": "http.disconnect"}],
        [(b"content-type", b"application/json")],
        path="/v1/threads",
        token=node.token("alice"),
    )
    assert sent == [] and await node.gateway.store.get_thread("t9") is None


# -- over a real socket -------------------------------------------------------------------


async def _raw(node: Node, request: bytes, *, close_after: bool = False) -> bytes:
    host, port = node.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        if close_after:
            return b""
        return await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()


def _head(node: Node, length: int, *, chunked: bool = False) -> bytes:
    lines = [
        "POST /v1/events HTTP/1.1",
        "Host: tw",
        f"Authorization: Bearer {node.service_token()}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_chunked_body_over_tcp_is_stored(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    body = _body({**GOOD, "data": {"pad": "p" * 300_000}})

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 999):
            yield body[start : start + 999]

    answer = await http.post(
        "/v1/events", content=pieces(), headers={**node.service_auth(), **JSON}
    )
    assert answer.status_code == 202, answer.text
    (stored,) = await node.gateway.store.read_events("t1", after_seq=0, limit=10)
    assert stored.data == {"pad": "p" * 300_000}


async def test_an_announced_oversized_body_is_refused_before_it_is_sent(node: Node) -> None:
    answer = await _raw(node, _head(node, MIB + 1))  # the body never comes
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large", answer
    assert b"content-type: " + PROBLEM.encode() in rest.lower()
    assert b'"code":"too_large"' in rest


async def test_a_client_that_leaves_mid_body_over_tcp_stores_nothing(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    logged = asyncio.Event()
    statuses: list[int] = []

    class Wait(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if vars(record).get("path") == "/v1/events":
                statuses.append(vars(record)["status"])
                logged.set()

    access = logging.getLogger("threadwire.access")
    handler, old_level = Wait(), access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        body = _body(GOOD)
        await _raw(node, _head(node, len(body) + 100) + body, close_after=True)
        await asyncio.wait_for(logged.wait(), timeout=10)
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    assert statuses == [CLIENT_CLOSED]
    assert await node.gateway.store.read_events("t1", after_seq=0, limit=10) == []
    assert (await http.get("/healthz")).status_code == 200
