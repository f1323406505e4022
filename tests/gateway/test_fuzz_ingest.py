"""Hostile ingest (`POST /v1/events`, protocol spec 4.1) against a real server.

Every limit on both sides of its edge (500 events, 1 MiB, 128-character keys, 64
levels of data, the type grammar), every bad kind of run ID, and batches with one bad
event anywhere: a refusal names the first bad event's `index` and stores nothing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Final

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.gateway.harness import Node
from tests.gateway.helpers import make_thread
from tests.gateway.hostile import FUZZ, PROBLEM, check_answer, deep, snapshot

from threadwire.ids import parse_run_id

MIB: Final = 1024 * 1024
GOOD: Final = {"run_id": "run_t1_0000abcd", "type": "agent_message", "data": {"text": "hi"}}
UUID: Final = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"


@pytest.fixture
async def world(node: Node, http: httpx.AsyncClient) -> None:
    """alice owns t1 and t2; bob owns bobs."""
    for user, thread in (("alice", "t1"), ("alice", "t2"), ("bob", "bobs")):
        await make_thread(http, node, user, thread)


async def _post(node: Node, http: httpx.AsyncClient, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**node.service_auth(), "Content-Type": "application/json"}
    return await http.post("/v1/events", content=content, headers=headers)


async def _refused(
    node: Node, http: httpx.AsyncClient, body: Any, status: int, code: str
) -> dict[str, Any]:
    """Post `body`, expect the refusal, and prove the store did not change."""
    before = await snapshot(node)
    answer = await _post(node, http, body)
    problem = check_answer(answer)
    assert problem is not None, answer.text
    assert (answer.status_code, problem["code"]) == (status, code), problem
    assert await snapshot(node) == before
    return problem


async def _accepted(node: Node, http: httpx.AsyncClient, body: Any) -> list[dict[str, Any]]:
    answer = await _post(node, http, body)
    assert check_answer(answer) is None and answer.status_code == 202, answer.text
    accepted: list[dict[str, Any]] = answer.json()["accepted"]
    return accepted


async def test_a_batch_of_500_is_stored_in_order_and_501_is_refused(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    events = [{**GOOD, "data": {"i": i}} for i in range(501)]
    problem = await _refused(node, http, {"events": events}, 422, "invalid_request")
    assert "index" not in problem
    await _refused(node, http, {"events": []}, 422, "invalid_request")
    accepted = await _accepted(node, http, {"events": events[:500]})
    assert [a["seq"] for a in accepted] == list(range(1, 501))
    stored = await node.gateway.store.read_events("t1", after_seq=0, limit=1000)
    assert [e.data["i"] for e in stored] == list(range(500))


def _sized(size: int) -> bytes:
    """A valid one-event body of exactly `size` bytes."""
    head, tail = b'{"run_id": "run_t1_0000abcd", "type": "x", "data": {"pad": "', b'"}}'
    return head + b"a" * (size - len(head) - len(tail)) + tail


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 65536):
        yield body[start : start + 65536]


async def test_one_mib_is_the_most_a_request_may_carry(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    for size in (MIB - 1, MIB):
        body = _sized(size)
        assert len(body) == size
        assert len(await _accepted(node, http, body)) == 1
    over = _sized(MIB + 1)
    problem = await _refused(node, http, over, 413, "too_large")
    assert str(MIB) in problem["detail"]
    # Without a Content-Length (chunked), the count of bytes read decides the same way.
    before = await snapshot(node)
    headers = {**node.service_auth(), "Content-Type": "application/json"}
    answer = await http.post("/v1/events", content=_chunks(over), headers=headers)
    assert answer.status_code == 413 and answer.headers["content-type"] == PROBLEM
    assert await snapshot(node) == before
    answer = await http.post("/v1/events", content=_chunks(_sized(MIB)), headers=headers)
    assert answer.status_code == 202, answer.text


BAD_KEYS: Final[list[Any]] = ["k" * 129, "", 7, True, ["k"], {"k": 1}, "\ud800", "a\x00b"]
"""129 characters, empty, not strings, a lone surrogate, a NUL."""


async def test_a_bad_idempotency_key_is_invalid_request_wherever_it_sits(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    for key in BAD_KEYS:
        await _refused(node, http, {**GOOD, "idempotency_key": key}, 422, "invalid_request")
        batch = {"events": [GOOD], "idempotency_key": key}
        await _refused(node, http, batch, 422, "invalid_request")


async def test_a_128_character_key_makes_a_retry_store_nothing_new(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    key = "é" * 128  # characters, not bytes
    first = await _accepted(node, http, {**GOOD, "idempotency_key": key})
    before = await snapshot(node)
    again = await _accepted(node, http, {**GOOD, "idempotency_key": key})
    assert again == first
    assert await snapshot(node) == before


GOOD_TYPES: Final = ["a", "a" * 64, "0", ":", "-", ".", "_", "a.b:c-d_e", "tool_completed"]
BAD_TYPES: Final = ["", "a" * 65, "A", "Agent", "a b", " a", "a\n", "é", "a/b", "a+b", "∂"]


async def test_the_type_grammar_holds_at_its_edges(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    for type_ in GOOD_TYPES:
        await _accepted(node, http, {**GOOD, "type": type_})
    not_strings: list[Any] = [None, 5, True, [], {}, ["a"]]
    for bad in [*BAD_TYPES, *not_strings]:
        problem = await _refused(node, http, {**GOOD, "type": bad}, 422, "invalid_event")
        assert problem["index"] == 0
    problem = await _refused(node, http, {"run_id": GOOD["run_id"]}, 422, "invalid_event")
    assert problem["index"] == 0


BAD_DATA: Final = [
    b"[]",
    b'"text"',
    b"1",
    b"true",
    b'{"x": NaN}',
    b'{"x": Infinity}',
    b'{"x": "\\ud800"}',
    b'{"\\udc00": 1}',
    deep(65).encode(),
]
"""Not an object, NaN, Infinity, lone surrogates (value and key), 65 levels."""


async def test_data_that_is_not_a_storable_object_is_invalid_event(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    for data in BAD_DATA:
        body = b'{"run_id": "run_t1_0000abcd", "type": "x", "data": ' + data + b"}"
        problem = await _refused(node, http, body, 422, "invalid_event")
        assert problem["index"] == 0


async def test_data_may_be_null_wide_or_64_levels_deep(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    for data in (
        b"null",
        b"{}",
        deep(64).encode(),
        b'{"xs": [' + b",".join([b"0"] * 20000) + b"]}",
        b'{"nul": "a\\u0000b", "big": ' + b"9" * 400 + b"}",
    ):
        body = b'{"run_id": "run_t1_0000abcd", "type": "x", "data": ' + data + b"}"
        accepted = await _accepted(node, http, body)
        stored = await node.gateway.store.read_events(
            "t1", after_seq=accepted[0]["seq"] - 1, limit=1
        )
        expected = {**(json.loads(data) or {}), "legacy_run_id": "run_t1_0000abcd"}
        assert stored[0].data == expected


BAD_RUN_IDS: Final[list[tuple[str, Any, int, str]]] = [
    ("null", None, 400, "empty"),
    ("a number", 42, 400, "empty"),
    ("true", True, 400, "empty"),
    ("a list", ["run_t1_0000abcd"], 400, "empty"),
    ("an object", {"id": 1}, 400, "empty"),
    ("empty", "", 400, "empty"),
    ("blank", " ", 400, "bad_charset"),
    ("257 characters", "run_" + "a" * 253, 400, "too_long"),
    ("a slash", "run_t1/x_0000abcd", 400, "bad_charset"),
    ("a newline", "run_t1_0000abcd\n", 400, "bad_charset"),
    ("unicode", "run_té_0000abcd", 400, "bad_charset"),
    ("no format", "run_", 400, "unknown_format"),
    ("an empty thread", "thread__run_1764000000000_0000abcd", 400, "unknown_format"),
    ("upper-case rand", "thread_t1_run_1764000000000_0000ABCD", 400, "unknown_format"),
    ("leading zero", "thread_t1_run_01764000000000_0000abcd", 400, "unknown_format"),
    ("thread over 128", "thread_" + "a" * 129 + "_run_1764000000000_0000abcd", 400, "too_long"),
    ("an unknown UUID", UUID, 404, "unknown_run"),
    ("legacy, thread missing", "run_nothere_0000abcd", 404, "not_found"),
    ("canonical, thread missing", "thread_nothere_run_1764000000000_0000abcd", 404, "not_found"),
]


async def test_every_bad_kind_of_run_id_is_refused_with_its_id_code(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    for name, run_id, status, code in BAD_RUN_IDS:
        problem = await _refused(node, http, {**GOOD, "run_id": run_id}, status, code)
        assert problem["index"] == 0, name


async def test_thread_id_must_agree_with_the_run_and_be_a_thread_id(
    node: Node, http: httpx.AsyncClient, world: None
) -> None:
    await _refused(node, http, {**GOOD, "thread_id": "t2"}, 409, "thread_mismatch")
    await _refused(node, http, {**GOOD, "thread_id": 12}, 400, "empty")
    await _refused(node, http, {**GOOD, "thread_id": "a b"}, 400, "bad_charset")
    await _refused(node, http, {**GOOD, "run_id": UUID, "thread_id": "nothere"}, 404, "not_found")
    # A UUID learns its thread from the first event that names it; then it must agree.
    await _accepted(node, http, {**GOOD, "run_id": UUID, "thread_id": "t2"})
    await _accepted(node, http, {**GOOD, "run_id": UUID})
    await _refused(node, http, {**GOOD, "run_id": UUID, "thread_id": "t1"}, 409, "thread_mismatch")


BAD_EVENTS: Final[list[tuple[str, Any, int, str]]] = [
    ("bad type", {**GOOD, "type": "Bad"}, 422, "invalid_event"),
    ("data a list", {**GOOD, "data": [1]}, 422, "invalid_event"),
    ("not an object", "event", 422, "invalid_event"),
    ("no run_id", {"type": "x"}, 422, "invalid_event"),
    ("bad run_id", {**GOOD, "run_id": "bad id"}, 400, "bad_charset"),
    ("missing thread", {**GOOD, "run_id": "run_nothere_0000abcd"}, 404, "not_found"),
    ("mismatch", {**GOOD, "thread_id": "t2"}, 409, "thread_mismatch"),
    ("unknown UUID", {**GOOD, "run_id": UUID}, 404, "unknown_run"),
]


@pytest.mark.parametrize(
    ("bad", "status", "code"), [e[1:] for e in BAD_EVENTS], ids=[e[0] for e in BAD_EVENTS]
)
async def test_one_bad_event_anywhere_in_a_batch_stores_nothing_and_names_its_index(
    node: Node,
    http: httpx.AsyncClient,
    world: None,
    bad: Any,
    status: int,
    code: str,
) -> None:
    for position in (0, 3, 6):
        events: list[Any] = [{**GOOD, "run_id": f"run_t{1 + i % 2}_0000abcd"} for i in range(7)]
        events[position] = bad
        problem = await _refused(node, http, {"events": events}, status, code)
        assert problem["index"] == position


# -- generated batches -------------------------------------------------------------

_good_event = st.builds(
    lambda thread, rand, type_, data: {
        "run_id": f"run_{thread}_{rand:08x}",
        "type": type_,
        "data": data,
        **({"thread_id": thread} if rand % 2 else {}),
    },
    st.sampled_from(["t1", "t2"]),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(GOOD_TYPES),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)
_bad_event = st.sampled_from([(e[1], e[2], e[3]) for e in BAD_EVENTS]) | st.sampled_from(
    [({**GOOD, "type": t}, 422, "invalid_event") for t in BAD_TYPES]
)
_slot = st.one_of(
    _good_event.map(lambda e: (e, None)), _bad_event.map(lambda b: (b[0], (b[1], b[2])))
)


@FUZZ
@given(slots=st.lists(_slot, min_size=1, max_size=12))
async def test_a_generated_batch_is_stored_whole_in_order_or_not_at_all(
    node: Node,
    http: httpx.AsyncClient,
    world: None,
    slots: list[tuple[dict[str, Any], tuple[int, str] | None]],
) -> None:
    events = [event for event, _ in slots]
    first_bad = next((i for i, (_, verdict) in enumerate(slots) if verdict is not None), None)
    if first_bad is not None:
        status, code = slots[first_bad][1]  # type: ignore[misc]
        problem = await _refused(node, http, {"events": events}, status, code)
        assert problem["index"] == first_bad
        return
    heads = {t: await node.gateway.store.head_seq(t) for t in ("t1", "t2")}
    accepted = await _accepted(node, http, {"events": events})
    threads = [parse_run_id(e["run_id"]).thread_id for e in events]
    assert [a["thread_id"] for a in accepted] == threads
    for thread in ("t1", "t2"):
        seqs = [a["seq"] for a in accepted if a["thread_id"] == thread]
        assert seqs == list(range(heads[thread] + 1, heads[thread] + 1 + len(seqs)))
