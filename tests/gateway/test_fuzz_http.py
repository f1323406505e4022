"""Property-based fuzzing of the HTTP API against a real server (uvicorn on a free port).

Every answer to hostile input must be a clear refusal: never a 5xx, always
`X-Request-ID`, a 4xx always problem+json with a `code`, and nothing the store held
before a refused request is changed or made unreadable by it. IDs (traversal,
encodings, controls, unicode, lengths), query parameters, bodies and tokens are
generated; the last tests pin each bug the fuzzing found.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, reject
from hypothesis import strategies as st
from tests.gateway.harness import Node, node_settings, serve_app
from tests.gateway.helpers import emit, make_thread
from tests.gateway.hostile import (
    FUZZ,
    PROBLEM,
    authorization_values,
    bad_tokens,
    check_answer,
    deep,
    hostile_ids,
    json_values,
    nasty_json,
    nasty_objects,
    query_values,
    snapshot,
)

from threadwire.ids import InvalidIdError, parse_run_id, validate_thread_id
from threadwire.runtime.errors import RuntimeRefusal

ALICE_THREAD: Final = "t1"
BOB_THREAD: Final = "bobs"


@pytest.fixture
async def world(node: Node, http: httpx.AsyncClient) -> str:
    """alice owns t1 (3 events), bob owns bobs (2 events and a finished run); returns
    bob's run ID. No run is left in flight, so the store only changes when asked to."""
    await make_thread(http, node, "alice", ALICE_THREAD)
    await make_thread(http, node, "bob", BOB_THREAD)
    await emit(node, ALICE_THREAD, 3)
    await emit(node, BOB_THREAD, 2)
    started = await http.post(
        f"/v1/threads/{BOB_THREAD}/runs",
        json={"agent": "demo", "input": {"prompt": "p", "steps": 1, "delay_ms": 0}},
        headers=node.auth("bob"),
    )
    assert started.status_code == 202, started.text
    run_id: str = started.json()["run_id"]
    await node.gateway.supervisor.wait(run_id, timeout=10)
    return run_id


def _path_segment(ident: str) -> str:
    """`ident` percent-encoded so the server decodes exactly it (dots too: a client
    would otherwise fold `..` away before sending)."""
    return quote(ident, safe="").replace(".", "%2E")


async def _send(http: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    """Send and read the answer; an event stream is checked and closed unread."""
    answer = await http.send(request, stream=True)
    try:
        if not answer.headers.get("content-type", "").startswith("text/event-stream"):
            await answer.aread()
    finally:
        await answer.aclose()
    return answer


async def _settle(node: Node, answer: httpx.Response) -> None:
    """A run the fuzzer managed to start is cancelled and awaited, so the next example
    starts from a store nothing else is writing to."""
    if answer.status_code != 202:
        return
    run_id = answer.json().get("run_id")
    if isinstance(run_id, str):
        with contextlib.suppress(RuntimeRefusal):  # it may have finished already
            await node.gateway.supervisor.cancel(run_id)
        await node.gateway.supervisor.wait(run_id, timeout=10)


THREAD_ENDPOINTS: Final = [
    ("GET", "/v1/threads/{}"),
    ("GET", "/v1/threads/{}/runs"),
    ("GET", "/v1/threads/{}/events"),
    ("GET", "/v1/threads/{}/stream"),
    ("POST", "/v1/threads/{}/runs"),
]
RUN_ENDPOINTS: Final = [("GET", "/v1/runs/{}"), ("POST", "/v1/runs/{}/cancel")]
RUN_BODY: Final = {"agent": "demo", "input": {"prompt": "p", "steps": 0, "delay_ms": 0}}


def _expected(kind: str, ident: str) -> tuple[int, str] | None:
    """What the spec says a well-routed ID gets: the ID error code with 400, or 404."""
    try:
        if kind == "thread":
            validate_thread_id(ident)
        else:
            parse_run_id(ident)
    except InvalidIdError as exc:
        return (404, "not_found") if exc.code == "unknown_run" else (400, exc.code)
    if kind == "thread" and ident == ALICE_THREAD:
        return None  # hers: any success
    return 404, "not_found"


@FUZZ
@given(
    ident=hostile_ids,
    endpoint=st.sampled_from(
        [("thread", *e) for e in THREAD_ENDPOINTS] + [("run", *e) for e in RUN_ENDPOINTS]
    ),
    encoded=st.booleans(),
)
async def test_hostile_path_ids_get_a_coded_refusal_and_change_nothing(
    node: Node,
    http: httpx.AsyncClient,
    world: str,
    ident: str,
    endpoint: tuple[str, str, str],
    encoded: bool,
) -> None:
    kind, method, template = endpoint
    segment = _path_segment(ident) if encoded else ident
    body = RUN_BODY if template.endswith("/runs") and method == "POST" else None
    before = await snapshot(node)
    try:
        request = http.build_request(
            method, template.format(segment), json=body, headers=node.auth("alice")
        )
        answer = await _send(http, request)
    except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeError):
        reject()  # the client refuses to send it; nothing reached the server
    problem = check_answer(answer)
    await _settle(node, answer)
    if problem is not None:
        assert await snapshot(node) == before
    # An encoded ID without '/' reaches its handler whole: the spec fixes the answer.
    expected = _expected(kind, ident) if encoded and ident and "/" not in ident else None
    if expected is not None:
        assert problem is not None, f"{method} {template} {ident!r}: {answer.status_code}"
        assert (answer.status_code, problem["code"]) == expected, problem


@FUZZ
@given(
    path=st.sampled_from(
        ["/v1/threads", f"/v1/threads/{ALICE_THREAD}/runs", f"/v1/threads/{ALICE_THREAD}/events"]
    ),
    params=st.dictionaries(
        st.sampled_from(["limit", "before", "after_seq", "access_token", "x"]),
        query_values,
        max_size=3,
    ),
)
async def test_hostile_query_parameters_page_or_get_invalid_request(
    node: Node, http: httpx.AsyncClient, world: str, path: str, params: dict[str, str]
) -> None:
    before = await snapshot(node)
    answer = await http.get(path, params=params, headers=node.auth("alice"))
    problem = check_answer(answer)
    assert await snapshot(node) == before
    if problem is not None:
        assert (answer.status_code, problem["code"]) == (422, "invalid_request"), problem
        return
    page = answer.json()
    if path.endswith("/events"):
        seqs = [e["seq"] for e in page["events"]]
        assert seqs == sorted(set(seqs)) and len(seqs) <= 1000
        assert page["next_after_seq"] in (None, *seqs[-1:])
        with contextlib.suppress(ValueError):
            after = int(params.get("after_seq", "0"))
            assert all(seq > after for seq in seqs)


header_text = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)


@FUZZ
@given(after_seq=st.none() | query_values, last_event_id=st.none() | header_text)
async def test_hostile_stream_positions_open_a_stream_or_get_invalid_request(
    node: Node,
    http: httpx.AsyncClient,
    world: str,
    after_seq: str | None,
    last_event_id: str | None,
) -> None:
    headers: dict[str, Any] = {"Authorization": f"Bearer {node.token('alice')}".encode()}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id.encode("latin-1")
    params = {} if after_seq is None else {"after_seq": after_seq}
    url = f"/v1/threads/{ALICE_THREAD}/stream"
    try:
        async with http.stream("GET", url, params=params, headers=headers) as answer:
            if answer.status_code == 200:
                first = await anext(answer.aiter_lines())
                assert first.startswith(": subscribed head_seq=")
                return
            await answer.aread()
    except httpx.LocalProtocolError:
        reject()  # a header value the client will not send
    problem = check_answer(answer)
    assert problem is not None
    assert (answer.status_code, problem["code"]) == (422, "invalid_request"), problem


def _object(members: dict[str, str]) -> bytes:
    """A JSON object from raw member texts (so NaN, lone surrogates and 30000 levels of
    nesting can be members)."""
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in members.items()) + "}").encode()


_member_text = st.one_of(nasty_json, json_values.map(json.dumps), hostile_ids.map(json.dumps))
thread_bodies = st.one_of(
    st.binary(max_size=200),
    nasty_json.map(str.encode),
    st.dictionaries(st.sampled_from(["thread_id", "metadata", "extra"]), _member_text).map(_object),
    st.builds(lambda m: _object({"metadata": m}), nasty_objects),
)
run_bodies = st.one_of(
    st.binary(max_size=200),
    nasty_json.map(str.encode),
    st.dictionaries(st.sampled_from(["agent", "input"]), _member_text).map(_object),
    st.builds(lambda i: _object({"agent": '"demo"', "input": i}), nasty_objects),
    st.builds(
        lambda steps, delay: _object(
            {
                "agent": '"demo"',
                "input": f'{{"prompt": "p", "steps": {steps}, "delay_ms": {delay}}}',
            }
        ),
        st.sampled_from(["-1", "0", "1001", "1e3", "true", "null", '"3"', "3.5", "NaN", "9" * 40]),
        st.sampled_from(["-1", "0", "60001", "true", "1e400"]),
    ),
)
content_types = st.sampled_from(
    [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "",
        "application/json; charset=latin-1",
    ]
)


@FUZZ
@given(body=thread_bodies, content_type=content_types)
async def test_hostile_thread_bodies_never_store_what_cannot_be_read_back(
    node: Node, http: httpx.AsyncClient, world: str, body: bytes, content_type: str
) -> None:
    before = await snapshot(node)
    headers = {**node.auth("alice"), "Content-Type": content_type}
    answer = await http.post("/v1/threads", content=body, headers=headers)
    problem = check_answer(answer)
    if problem is not None:
        assert await snapshot(node) == before
    else:
        assert answer.status_code == 201
        created = answer.json()
        path = f"/v1/threads/{_path_segment(created['thread_id'])}"
        again = await http.get(path, headers=node.auth("alice"))
        assert check_answer(again) is None and again.json() == created
    # Whatever was stored, the owner's whole list still reads back.
    listing = await http.get("/v1/threads", params={"limit": 1000}, headers=node.auth("alice"))
    assert check_answer(listing) is None


@FUZZ
@given(body=run_bodies, content_type=content_types)
async def test_hostile_run_bodies_are_refused_with_a_code_and_change_nothing(
    node: Node, http: httpx.AsyncClient, world: str, body: bytes, content_type: str
) -> None:
    before = await snapshot(node)
    headers = {**node.auth("alice"), "Content-Type": content_type}
    answer = await http.post(f"/v1/threads/{ALICE_THREAD}/runs", content=body, headers=headers)
    problem = check_answer(answer)
    await _settle(node, answer)
    if problem is not None:
        assert problem["code"] in {"invalid_request", "invalid_input", "unknown_agent"}, problem
        assert await snapshot(node) == before
    listing = await http.get(f"/v1/threads/{ALICE_THREAD}/runs", headers=node.auth("alice"))
    assert check_answer(listing) is None


async def test_every_kind_of_bad_token_is_401_on_every_endpoint(
    node: Node, http: httpx.AsyncClient, world: str
) -> None:
    before = await snapshot(node)
    requests = [
        ("GET", "/v1/threads", None),
        ("POST", "/v1/threads", {"thread_id": "new"}),
        ("GET", f"/v1/threads/{ALICE_THREAD}/stream", None),
        ("POST", f"/v1/threads/{ALICE_THREAD}/runs", RUN_BODY),
        ("POST", "/v1/events", {"run_id": "run_t1_0000abcd", "type": "x"}),
    ]
    for name, value in authorization_values(node):
        for method, path, body in requests:
            headers = {b"Authorization": value.encode("latin-1")}
            answer = await http.request(method, path, json=body, headers=headers)
            problem = check_answer(answer)
            assert problem is not None and answer.status_code == 401, (name, path, answer.text)
            assert problem["code"] == "unauthorized"
            assert answer.headers["www-authenticate"].startswith("Bearer")
    assert await snapshot(node) == before


@FUZZ
@given(value=header_text)
async def test_any_authorization_text_is_refused_401(
    node: Node, http: httpx.AsyncClient, value: str
) -> None:
    try:
        answer = await http.get("/v1/threads", headers={b"Authorization": value.encode("latin-1")})
    except httpx.LocalProtocolError:
        reject()
    problem = check_answer(answer)
    assert problem is not None and (answer.status_code, problem["code"]) == (401, "unauthorized")


async def test_the_query_token_counts_only_on_streams_and_never_beside_a_bad_header(
    node: Node, http: httpx.AsyncClient, world: str
) -> None:
    good = node.token("alice")
    # access_token is for EventSource, which cannot set headers; elsewhere it is ignored.
    answer = await http.get("/v1/threads", params={"access_token": good})
    assert answer.status_code == 401
    stream = f"/v1/threads/{ALICE_THREAD}/stream"
    # An Authorization header that is present but bad is not rescued by the query.
    answer = await http.get(
        stream, params={"access_token": good}, headers={"Authorization": "Basic x"}
    )
    assert answer.status_code == 401
    for _, token in bad_tokens():
        if len(token) > 60_000:
            continue  # longer than a URL the client will build
        answer = await http.get(stream, params={"access_token": token})
        problem = check_answer(answer)
        assert problem is not None and answer.status_code == 401


async def test_tokens_of_the_wrong_kind_are_403(
    node: Node, http: httpx.AsyncClient, world: str
) -> None:
    service_on_user_api = await http.get("/v1/threads", headers=node.service_auth())
    user_on_ingest = await http.post(
        "/v1/events", json={"run_id": "run_t1_0000abcd", "type": "x"}, headers=node.auth("alice")
    )
    for answer in (service_on_user_api, user_on_ingest):
        problem = check_answer(answer)
        assert problem is not None and (answer.status_code, problem["code"]) == (403, "forbidden")


def _same_but_id(a: bytes, a_id: str, b: bytes, b_id: str) -> None:
    assert len(a_id) == len(b_id)
    assert a.replace(a_id.encode(), b"<ID>") == b.replace(b_id.encode(), b"<ID>")


async def test_foreign_and_missing_threads_and_runs_answer_the_same_bytes(
    node: Node, http: httpx.AsyncClient, world: str
) -> None:
    missing_thread = "n" * len(BOB_THREAD)
    bobs_run = world
    missing_run = bobs_run[:-8] + ("0" if bobs_run[-8] != "0" else "1") + bobs_run[-7:]
    alice = node.auth("alice")
    for method, template in THREAD_ENDPOINTS:
        body = RUN_BODY if method == "POST" else None
        foreign = await http.request(method, template.format(BOB_THREAD), json=body, headers=alice)
        missing = await http.request(
            method, template.format(missing_thread), json=body, headers=alice
        )
        assert foreign.status_code == missing.status_code == 404, template
        _same_but_id(foreign.content, BOB_THREAD, missing.content, missing_thread)
    for method, template in RUN_ENDPOINTS:
        foreign = await http.request(method, template.format(bobs_run), headers=alice)
        missing = await http.request(method, template.format(missing_run), headers=alice)
        assert foreign.status_code == missing.status_code == 404, template
        _same_but_id(foreign.content, bobs_run, missing.content, missing_run)


# -- what the fuzzing found (each fixed in the gateway) ----------------------------------


POISON: Final = [
    ("NaN", b'{"x": NaN}'),
    ("Infinity", b'{"x": -Infinity}'),
    ("a lone surrogate", b'{"x": "\\ud800"}'),
    ("a lone surrogate as a key", b'{"\\udfff": 1}'),
    ("65 levels", deep(65).encode()),
]


@pytest.fixture(params=["memory", "sqlite"])
async def any_store_node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    """A node on the memory store and one on SQLite (a file in tmp_path)."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'tw.db'}"
    async with serve_app(node_settings(database_url=url)) as running:
        yield running


def _refused(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    problem = check_answer(answer)
    assert problem is not None, answer.text
    assert (answer.status_code, problem["code"]) == (status, code), problem
    return problem


async def test_metadata_and_input_the_wire_cannot_carry_are_422_and_stored_nowhere(
    any_store_node: Node,
) -> None:
    node = any_store_node
    headers = {**node.auth("alice"), "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        await make_thread(http, node, "alice", ALICE_THREAD)
        before = await snapshot(node)
        for name, value in POISON:
            body = b'{"metadata": ' + value + b"}"
            answer = await http.post("/v1/threads", content=body, headers=headers)
            assert _refused(answer, 422, "invalid_request")["field"] == "metadata", name
            run = b'{"agent": "demo", "input": {"prompt": "p", "z": ' + value + b"}}"
            url = f"/v1/threads/{ALICE_THREAD}/runs"
            answer = await http.post(url, content=run, headers=headers)
            assert _refused(answer, 422, "invalid_request")["field"] == "input", name
        assert await snapshot(node) == before
        listing = await http.get("/v1/threads", headers=node.auth("alice"))
        assert listing.status_code == 200 and len(listing.json()["threads"]) == 1


async def test_metadata_nested_64_levels_is_stored_and_read_back(
    node: Node, http: httpx.AsyncClient
) -> None:
    metadata = deep(64)  # the metadata object is the outermost of the 64
    body = ('{"thread_id": "d64", "metadata": ' + metadata + "}").encode()
    headers = {**node.auth("alice"), "Content-Type": "application/json"}
    answer = await http.post("/v1/threads", content=body, headers=headers)
    assert answer.status_code == 201, answer.text
    again = await http.get("/v1/threads/d64", headers=node.auth("alice"))
    assert again.json()["metadata"] == json.loads(metadata)


async def test_bodies_json_cannot_read_are_422_invalid_request(
    node: Node, http: httpx.AsyncClient
) -> None:
    headers = {**node.auth("alice"), "Content-Type": "application/json"}
    for body in (
        b'{"metadata": {"x": "\xff\xfe"}}',  # not UTF-8
        b'{"metadata": ' + b"[" * 30000 + b"]" * 30000 + b"}",  # past the parser's stack
        b'{"metadata": {"x": ' + b"9" * 5000 + b"}}",  # over Python's 4300 digits
    ):
        answer = await http.post("/v1/threads", content=body, headers=headers)
        _refused(answer, 422, "invalid_request")


async def test_after_seq_beyond_any_seq_is_an_empty_page_on_every_store(
    any_store_node: Node,
) -> None:
    node = any_store_node
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        await make_thread(http, node, "alice", ALICE_THREAD)
        await emit(node, ALICE_THREAD, 2)
        for after_seq in (2**63 - 1, 2**63, 2**64, 10**30):
            url = f"/v1/threads/{ALICE_THREAD}/events"
            params = {"after_seq": after_seq}
            answer = await http.get(url, params=params, headers=node.auth("alice"))
            assert check_answer(answer) is None
            assert answer.json() == {"events": [], "next_after_seq": None}
            url = f"/v1/threads/{ALICE_THREAD}/stream"
            for headers in (
                {**node.auth("alice"), "Last-Event-ID": str(after_seq)[:19]},
                node.auth("alice"),
            ):
                async with http.stream("GET", url, params=params, headers=headers) as stream:
                    assert stream.status_code == 200
                    assert await anext(stream.aiter_lines()) == ": subscribed head_seq=2"


async def test_a_last_event_id_that_is_not_ascii_digits_is_422(
    node: Node, http: httpx.AsyncClient, world: str
) -> None:
    for value in ("\xb2", "\xb9", "1\xb3", "-1", "+1", "0x1", "1_0", "1" * 20):
        headers = {
            b"Authorization": f"Bearer {node.token('alice')}".encode(),
            b"Last-Event-ID": value.encode("latin-1"),
        }
        answer = await http.get(f"/v1/threads/{ALICE_THREAD}/stream", headers=headers)
        _refused(answer, 422, "invalid_request")


async def test_an_unexpected_error_is_a_500_problem_with_x_request_id(
    node: Node, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, not the client's fault")

    monkeypatch.setattr(node.gateway.store, "list_threads", broken)
    answer = await http.get("/v1/threads", headers=node.auth("alice"))
    assert answer.status_code == 500
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["x-request-id"].startswith("req_")
    assert answer.json()["code"] == "internal"
    assert "a bug" not in answer.text


async def test_a_forged_cursor_is_422_on_sqlite(tmp_path: Path) -> None:
    import base64

    forged = base64.urlsafe_b64encode(f"{2**64}:x".encode()).decode().rstrip("=")
    async with serve_app(node_settings(database_url=f"sqlite:///{tmp_path / 'tw.db'}")) as node:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            answer = await http.get(
                "/v1/threads", params={"before": forged}, headers=node.auth("alice")
            )
            check_answer(answer)
