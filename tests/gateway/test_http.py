"""The HTTP API (protocol spec 4): shapes, paging, ownership and every error's problem."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from tests.gateway.harness import TEST_SECRET, Node
from tests.gateway.helpers import emit, make_thread

PROBLEM = "application/problem+json"


def _problem(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["x-request-id"].startswith("req_")
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


async def _run(node: Node, http: httpx.AsyncClient, user: str, thread: str, **inp: Any) -> str:
    answer = await http.post(
        f"/v1/threads/{thread}/runs",
        json={"agent": "demo", "input": {"prompt": "hi", "delay_ms": 0, **inp}},
        headers=node.auth(user),
    )
    assert answer.status_code == 202, answer.text
    run_id: str = answer.json()["run_id"]
    return run_id


async def test_create_thread_answers_201_with_the_thread(
    node: Node, http: httpx.AsyncClient
) -> None:
    answer = await http.post(
        "/v1/threads",
        json={"thread_id": "thread_abc_123", "metadata": {"k": 1}},
        headers=node.auth("alice"),
    )
    assert answer.status_code == 201
    assert answer.headers["x-request-id"].startswith("req_")
    body = answer.json()
    assert set(body) == {"thread_id", "owner", "created_at", "metadata", "head_seq"}
    assert body["thread_id"] == "thread_abc_123" and body["owner"] == "alice"
    assert body["metadata"] == {"k": 1} and body["head_seq"] == 0


async def test_create_thread_without_a_body_picks_an_id(
    node: Node, http: httpx.AsyncClient
) -> None:
    answer = await http.post("/v1/threads", headers=node.auth("alice"))
    assert answer.status_code == 201
    thread_id = answer.json()["thread_id"]
    assert len(thread_id) == 32 and int(thread_id, 16) >= 0


async def test_a_taken_thread_id_is_409_whoever_owns_it(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "shared")
    mine = await http.post("/v1/threads", json={"thread_id": "shared"}, headers=node.auth("alice"))
    theirs = await http.post("/v1/threads", json={"thread_id": "shared"}, headers=node.auth("bob"))
    a, b = _problem(mine, 409, "thread_exists"), _problem(theirs, 409, "thread_exists")
    assert a == b
    assert "alice" not in theirs.text


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"thread_id": "a b"}, 400, "bad_charset"),
        ({"thread_id": "x" * 129}, 400, "too_long"),
        ({"thread_id": ""}, 400, "empty"),
        ({"thread_id": 7}, 422, "invalid_request"),
        ({"metadata": [1]}, 422, "invalid_request"),
        ([], 422, "invalid_request"),
    ],
)
async def test_bad_thread_bodies_are_refused_with_a_code(
    node: Node, http: httpx.AsyncClient, body: object, status: int, code: str
) -> None:
    answer = await http.post("/v1/threads", json=body, headers=node.auth("alice"))
    _problem(answer, status, code)


async def test_a_body_that_is_not_json_is_invalid_request(
    node: Node, http: httpx.AsyncClient
) -> None:
    answer = await http.post(
        "/v1/threads",
        content=b"{nope",
        headers={**node.auth("alice"), "content-type": "application/json"},
    )
    _problem(answer, 422, "invalid_request")


async def test_missing_and_foreign_threads_get_the_same_404(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "bob", "bobs")
    foreign = _problem(
        await http.get("/v1/threads/bobs", headers=node.auth("alice")), 404, "not_found"
    )
    missing = _problem(
        await http.get("/v1/threads/nope", headers=node.auth("alice")), 404, "not_found"
    )
    assert foreign.pop("thread_id") == "bobs" and missing.pop("thread_id") == "nope"
    foreign["detail"] = foreign["detail"].replace("bobs", "X")
    missing["detail"] = missing["detail"].replace("nope", "X")
    assert foreign == missing
    for path in ("/runs", "/events", "/stream"):
        a = await http.get(f"/v1/threads/bobs{path}", headers=node.auth("alice"))
        b = await http.get(f"/v1/threads/nope{path}", headers=node.auth("alice"))
        _problem(a, 404, "not_found"), _problem(b, 404, "not_found")
    start = await http.post(
        "/v1/threads/bobs/runs", json={"agent": "demo"}, headers=node.auth("alice")
    )
    _problem(start, 404, "not_found")


async def test_a_path_thread_id_outside_the_grammar_is_400(
    node: Node, http: httpx.AsyncClient
) -> None:
    _problem(await http.get("/v1/threads/a%20b", headers=node.auth("alice")), 400, "bad_charset")
    long = "x" * 200
    _problem(
        await http.get(f"/v1/threads/{long}/events", headers=node.auth("alice")), 400, "too_long"
    )


async def test_threads_are_listed_newest_first_in_pages(
    node: Node, http: httpx.AsyncClient
) -> None:
    for i in range(5):
        await make_thread(http, node, "alice", f"t{i}")
    await make_thread(http, node, "bob", "other")
    seen: list[str] = []
    before: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"before": before} if before else {})}
        page = (await http.get("/v1/threads", params=params, headers=node.auth("alice"))).json()
        assert set(page) == {"threads", "next_before"}
        seen += [t["thread_id"] for t in page["threads"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    big = await http.get("/v1/threads", params={"limit": 5000}, headers=node.auth("alice"))
    assert len(big.json()["threads"]) == 5
    zero = await http.get("/v1/threads", params={"limit": 0}, headers=node.auth("alice"))
    _problem(zero, 422, "invalid_request")


async def test_a_cursor_the_store_did_not_hand_out_is_422_not_500(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "paged")
    for path in ("/v1/threads", "/v1/threads/paged/runs"):
        answer = await http.get(path, params={"before": "forged!"}, headers=node.auth("alice"))
        _problem(answer, 422, "invalid_request")


async def test_registered_agents_are_listed_by_name(node: Node, http: httpx.AsyncClient) -> None:
    answer = await http.get("/v1/agents", headers=node.auth("alice"))
    assert answer.status_code == 200
    agents = {a["name"]: a["description"] for a in answer.json()["agents"]}
    assert {"demo", "chat"} <= set(agents)
    assert agents["demo"]
    _problem(await http.get("/v1/agents"), 401, "unauthorized")


async def test_a_demo_run_starts_202_and_ends_completed(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    answer = await http.post(
        "/v1/threads/t1/runs",
        json={"agent": "demo", "input": {"prompt": "hello", "steps": 1, "delay_ms": 0}},
        headers=node.auth("alice"),
    )
    assert answer.status_code == 202
    started = answer.json()
    assert started["thread_id"] == "t1" and started["status"] == "queued"
    run_id = started["run_id"]
    await node.gateway.supervisor.wait(run_id, timeout=10)
    run = (await http.get(f"/v1/runs/{run_id}", headers=node.auth("alice"))).json()
    assert set(run) == {
        "run_id",
        "thread_id",
        "agent",
        "status",
        "created_at",
        "started_at",
        "finished_at",
        "result",
        "error",
    }
    assert run["status"] == "completed" and run["run_id"] == run_id
    runs = (await http.get("/v1/threads/t1/runs", headers=node.auth("alice"))).json()
    assert [r["run_id"] for r in runs["runs"]] == [run_id] and runs["next_before"] is None
    events = (await http.get("/v1/threads/t1/events", headers=node.auth("alice"))).json()
    types = [e["type"] for e in events["events"]]
    assert types == [
        "run_queued",
        "agent_started",
        "agent_thinking",
        "tool_executing",
        "tool_completed",
        "agent_message",
        "agent_completed",
    ]
    cancel = await http.post(f"/v1/runs/{run_id}/cancel", headers=node.auth("alice"))
    _problem(cancel, 409, "run_finished")


async def test_a_running_run_can_be_cancelled(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    run_id = await _run(node, http, "alice", "t1", steps=5, delay_ms=60000)
    answer = await http.post(f"/v1/runs/{run_id}/cancel", headers=node.auth("alice"))
    assert answer.status_code == 202, answer.text
    assert answer.json()["run_id"] == run_id
    run = await node.gateway.supervisor.wait(run_id, timeout=10)
    assert run.status == "cancelled"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"agent": "nope"}, "unknown_agent"),
        ({"agent": "demo", "input": {"prompt": "x", "steps": 1001}}, "invalid_input"),
        ({"agent": "demo", "input": {"prompt": "x", "delay_ms": -1}}, "invalid_input"),
        ({"input": {}}, "invalid_request"),
        ({"agent": "demo", "input": [1]}, "invalid_request"),
    ],
)
async def test_bad_run_requests_are_422_with_a_code(
    node: Node, http: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    await make_thread(http, node, "alice", "t1")
    answer = await http.post("/v1/threads/t1/runs", json=body, headers=node.auth("alice"))
    _problem(answer, 422, code)
    runs = (await http.get("/v1/threads/t1/runs", headers=node.auth("alice"))).json()
    assert runs["runs"] == []


@pytest.mark.parametrize(
    ("run_id", "status", "code"),
    [
        ("run%20x", 400, "bad_charset"),
        ("hello", 400, "unknown_format"),
        ("r" * 300, 400, "too_long"),
        ("thread_t1_run_1700000000000_0badc0de", 404, "not_found"),
        ("run_t1_0badc0de", 404, "not_found"),
        ("0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e", 404, "not_found"),
    ],
)
async def test_run_ids_that_do_not_parse_are_400_and_unknown_ones_404(
    node: Node, http: httpx.AsyncClient, run_id: str, status: int, code: str
) -> None:
    await make_thread(http, node, "alice", "t1")
    _problem(await http.get(f"/v1/runs/{run_id}", headers=node.auth("alice")), status, code)
    cancel = await http.post(f"/v1/runs/{run_id}/cancel", headers=node.auth("alice"))
    _problem(cancel, status, code)


async def test_another_users_run_is_404_like_a_missing_one(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "bob", "bobs")
    run_id = await _run(node, http, "bob", "bobs", steps=0)
    foreign = await http.get(f"/v1/runs/{run_id}", headers=node.auth("alice"))
    _problem(foreign, 404, "not_found")
    assert (await http.get(f"/v1/runs/{run_id}", headers=node.auth("bob"))).status_code == 200


async def test_events_are_paged_with_next_after_seq(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    await emit(node, "t1", 5)

    async def page(**params: Any) -> tuple[list[int], int | None]:
        answer = await http.get("/v1/threads/t1/events", params=params, headers=node.auth("alice"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"events", "next_after_seq"}
        return [e["seq"] for e in body["events"]], body["next_after_seq"]

    assert await page(limit=2) == ([1, 2], 2)
    assert await page(after_seq=2, limit=2) == ([3, 4], 4)
    assert await page(after_seq=4, limit=2) == ([5], None)
    assert await page(after_seq=5) == ([], None)
    assert await page(after_seq=50) == ([], None)
    assert await page() == ([1, 2, 3, 4, 5], None)
    assert await page(limit=5000) == ([1, 2, 3, 4, 5], None)
    for bad in ({"limit": 0}, {"limit": -3}, {"after_seq": -1}, {"after_seq": "x"}):
        answer = await http.get("/v1/threads/t1/events", params=bad, headers=node.auth("alice"))
        _problem(answer, 422, "invalid_request")


async def test_pruned_events_answer_410_gone_with_first_seq(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    run_id = await _run(node, http, "alice", "t1", steps=2)
    await node.gateway.supervisor.wait(run_id, timeout=10)
    # A cutoff a second ahead: a fast run's events can share the millisecond of "now".
    result = await node.gateway.store.prune(timedelta(seconds=-1))
    assert result
    thread = await node.gateway.store.get_thread("t1")
    assert thread is not None and thread.low_seq > 0
    answer = await http.get("/v1/threads/t1/events", headers=node.auth("alice"))
    body = _problem(answer, 410, "gone")
    assert body["first_seq"] == thread.low_seq + 1
    tail = await http.get(
        "/v1/threads/t1/events", params={"after_seq": thread.low_seq}, headers=node.auth("alice")
    )
    assert tail.status_code == 200


async def test_no_or_bad_token_is_401_and_the_wrong_kind_403(
    node: Node, http: httpx.AsyncClient
) -> None:
    body = _problem(await http.get("/v1/threads"), 401, "unauthorized")
    assert body["status"] == 401
    answer = await http.get("/v1/threads", headers={"Authorization": "Bearer nope"})
    assert answer.headers["www-authenticate"].startswith("Bearer")
    _problem(answer, 401, "unauthorized")
    expired = jwt.encode({"sub": "alice", "exp": int(time.time()) - 5}, TEST_SECRET, "HS256")
    answer = await http.get("/v1/threads", headers={"Authorization": f"Bearer {expired}"})
    _problem(answer, 401, "unauthorized")
    _problem(await http.get("/v1/threads", headers=node.service_auth()), 403, "forbidden")
    ingest = await http.post("/v1/events", json={}, headers=node.auth("alice"))
    _problem(ingest, 403, "forbidden")
    # A query token is for SSE and WebSocket only.
    query = await http.get("/v1/threads", params={"access_token": node.token("alice")})
    _problem(query, 401, "unauthorized")


async def test_bodies_over_the_limit_are_413_too_large(node: Node, http: httpx.AsyncClient) -> None:
    big = {"run_id": "run_t1_0badc0de", "type": "x", "data": {"pad": "x" * (1024 * 1024)}}
    answer = await http.post("/v1/events", json=big, headers=node.service_auth())
    _problem(answer, 413, "too_large")
    meta = {"metadata": {"pad": "y" * (1024 * 1024 + 10)}}
    _problem(
        await http.post("/v1/threads", json=meta, headers=node.auth("alice")), 413, "too_large"
    )


async def test_unknown_routes_and_methods_are_problems(node: Node, http: httpx.AsyncClient) -> None:
    _problem(await http.get("/nowhere"), 404, "not_found")
    _problem(await http.delete("/healthz"), 405, "method_not_allowed")


async def test_health_readiness_metrics_and_openapi(node: Node, http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = (await http.get("/readyz")).json()
    assert ready["status"] == "ok" and ready["checks"]["store"] == "ok"
    await http.get("/v1/threads", headers=node.auth("alice"))
    metrics = (await http.get("/metrics")).text
    for name in (
        "threadwire_http_requests_total",
        "threadwire_ws_connections",
        "threadwire_events_published_total",
        "threadwire_refusals_total",
        "threadwire_id_parse_total",
    ):
        assert name in metrics, name
    spec = (await http.get("/openapi.json")).json()
    for path in (
        "/v1/threads",
        "/v1/threads/{thread_id}",
        "/v1/threads/{thread_id}/runs",
        "/v1/runs/{run_id}",
        "/v1/runs/{run_id}/cancel",
        "/v1/threads/{thread_id}/events",
        "/v1/threads/{thread_id}/stream",
        "/v1/events",
    ):
        assert path in spec["paths"], path
