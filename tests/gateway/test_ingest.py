"""`POST /v1/events` (protocol spec 4.1): external workers' events, legacy run IDs
included, reach the thread's subscribers (guarantee 2.6)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from tests.gateway.harness import Node, node_settings, serve_app
from tests.gateway.helpers import events_until, make_thread, recv, subscribe, ws_connect

from threadwire.config import Settings
from threadwire.ids import parse_run_id, registry


async def test_legacy_run_ids_reach_the_threads_subscribers(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "user_42")
    async with ws_connect(node, "alice") as ws:
        await subscribe(ws, "user_42", after_seq=0)
        answer = await http.post(
            "/v1/events",
            json={
                "run_id": "run_user_42_7f3a9c01",
                "type": "agent_message",
                "data": {"text": "hi"},
            },
            headers=node.service_auth(),
        )
        assert answer.status_code == 202, answer.text
        accepted = answer.json()["accepted"]
        assert len(accepted) == 1
        canonical = accepted[0]["run_id"]
        assert parse_run_id(canonical).is_canonical
        assert accepted[0]["thread_id"] == "user_42" and accepted[0]["seq"] >= 1
        events = await events_until(ws, accepted[0]["seq"])
    mine = [e for e in events if e["type"] == "agent_message"]
    assert len(mine) == 1
    assert mine[0]["run_id"] == canonical
    assert mine[0]["data"]["legacy_run_id"] == "run_user_42_7f3a9c01"
    run = await http.get("/v1/runs/run_user_42_7f3a9c01", headers=node.auth("alice"))
    assert run.status_code == 200 and run.json()["run_id"] == canonical


async def test_a_batch_is_accepted_in_order_and_retries_are_idempotent(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    body = {
        "events": [
            {"run_id": "run_t1_0000abcd", "type": "agent_started"},
            {"run_id": "run_t1_0000abcd", "type": "agent_message", "data": {"text": "a"}},
        ],
        "idempotency_key": "worker-1:1",
    }
    first = await http.post("/v1/events", json=body, headers=node.service_auth())
    again = await http.post("/v1/events", json=body, headers=node.service_auth())
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    assert [a["seq"] for a in first.json()["accepted"]] == [1, 2]
    assert set(first.json()["accepted"][0]) == {"event_id", "thread_id", "run_id", "seq"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"run_id": "run_nope_0000abcd", "type": "x"}, 404, "not_found"),
        ({"run_id": "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e", "type": "x"}, 404, "unknown_run"),
        ({"run_id": "run_t1_0000abcd", "type": "x", "thread_id": "t2"}, 409, "thread_mismatch"),
        ({"run_id": "run_t1_0000abcd", "type": "Bad Type"}, 422, "invalid_event"),
        ({"run_id": "run_t1_0000abcd", "type": "x", "data": [1]}, 422, "invalid_event"),
        ({"run_id": "bad id", "type": "x"}, 400, "bad_charset"),
        ({"events": []}, 422, "invalid_request"),
    ],
)
async def test_refused_events_answer_with_a_code_and_store_nothing(
    node: Node, http: httpx.AsyncClient, body: dict[str, Any], status: int, code: str
) -> None:
    await make_thread(http, node, "alice", "t1")
    await make_thread(http, node, "alice", "t2")
    answer = await http.post("/v1/events", json=body, headers=node.service_auth())
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == code
    assert await node.gateway.store.head_seq("t1") == 0


async def test_a_bad_event_in_a_batch_names_its_index(node: Node, http: httpx.AsyncClient) -> None:
    await make_thread(http, node, "alice", "t1")
    body = {
        "events": [
            {"run_id": "run_t1_0000abcd", "type": "ok"},
            {"run_id": "run_t1_0000abcd", "type": "NOT OK"},
        ]
    }
    answer = await http.post("/v1/events", json=body, headers=node.service_auth())
    assert answer.status_code == 422
    assert answer.json()["index"] == 1
    assert await node.gateway.store.head_seq("t1") == 0


async def test_ingested_events_reach_a_live_subscriber_once(
    node: Node, http: httpx.AsyncClient
) -> None:
    await make_thread(http, node, "alice", "t1")
    async with ws_connect(node, "alice") as ws:
        await subscribe(ws, "t1")
        for i in range(3):
            body = {"run_id": "run_t1_0000abcd", "type": "agent_message", "data": {"i": i}}
            assert (
                await http.post("/v1/events", json=body, headers=node.service_auth())
            ).status_code == 202
        got = [await recv(ws) for _ in range(3)]
    assert [f["event"]["seq"] for f in got] == [1, 2, 3]


async def test_switching_legacy_formats_off_refuses_legacy_ids_with_the_id_error() -> None:
    with registry.scoped():
        async with serve_app(node_settings(id_formats=("canonical",))) as node:
            async with httpx.AsyncClient(base_url=node.url) as http:
                await make_thread(http, node, "alice", "t1")
                body = {"run_id": "run_t1_0000abcd", "type": "agent_message"}
                answer = await http.post("/v1/events", json=body, headers=node.service_auth())
                assert answer.status_code == 400
                assert answer.json()["code"] == "unknown_format"
                run = await http.get("/v1/runs/run_t1_0000abcd", headers=node.auth("alice"))
                assert run.status_code == 400 and run.json()["code"] == "unknown_format"
    assert registry.is_enabled("legacy_run")


def test_id_formats_come_from_the_environment() -> None:
    settings = Settings.from_env({"THREADWIRE_ID_FORMATS": "canonical, legacy_run"})
    assert settings.id_formats == ("canonical", "legacy_run")
