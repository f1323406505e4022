"""The same delivery paths on the embedded SQLite store, across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from tests.gateway.harness import node_settings, serve_app
from tests.gateway.helpers import events_until, make_thread, recv, seqs, subscribe, ws_connect


async def test_a_demo_run_streams_resumes_and_survives_a_restart(tmp_path: Path) -> None:
    settings = node_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}")
    async with serve_app(settings) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            async with ws_connect(node, "alice") as ws:
                await subscribe(ws, "t1", after_seq=0)
                started = await http.post(
                    "/v1/threads/t1/runs",
                    json={"agent": "demo", "input": {"prompt": "p", "steps": 3, "delay_ms": 0}},
                    headers=node.auth("alice"),
                )
                assert started.status_code == 202
                events: list[dict[str, Any]] = []
                while not events or events[-1]["type"] != "agent_completed":
                    events.append((await recv(ws))["event"])
            assert seqs(events) == list(range(1, len(events) + 1))
            head = events[-1]["seq"]
            legacy = await http.post(
                "/v1/events",
                json={"run_id": "run_t1_0000abcd", "type": "agent_message", "data": {"x": 1}},
                headers=node.service_auth(),
            )
            assert legacy.status_code == 202, legacy.text
            assert legacy.json()["accepted"][0]["seq"] == head + 1
    async with serve_app(settings) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            page = await http.get(
                "/v1/threads/t1/events", params={"after_seq": head - 2}, headers=node.auth("alice")
            )
            assert [e["seq"] for e in page.json()["events"]] == [head - 1, head, head + 1]
            legacy_run = await http.get("/v1/runs/run_t1_0000abcd", headers=node.auth("alice"))
            assert legacy_run.status_code == 200
        async with ws_connect(node, "alice") as ws:
            answer = await subscribe(ws, "t1", after_seq=head)
            assert answer["head_seq"] == head + 1
            assert seqs(await events_until(ws, head + 1)) == [head + 1]


async def test_concurrent_writers_on_sqlite_reach_a_subscriber_in_order(tmp_path: Path) -> None:
    settings = node_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'tw.db'}")
    async with serve_app(settings) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            async with ws_connect(node, "alice") as ws:
                await subscribe(ws, "t1", after_seq=0)

                async def worker(w: int) -> None:
                    for i in range(25):
                        body = {
                            "run_id": f"run_t1_{w:08x}",
                            "type": "agent_message",
                            "data": {"i": i},
                        }
                        answer = await http.post(
                            "/v1/events", json=body, headers=node.service_auth()
                        )
                        assert answer.status_code == 202

                await asyncio.gather(*(worker(w) for w in range(4)))
                assert seqs(await events_until(ws, 100)) == list(range(1, 101))
