"""Graceful shutdown (protocol spec 3): a real `threadwire serve` process and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from tests.gateway.harness import TEST_SECRET, node_settings, serve_app
from tests.gateway.helpers import close_code, make_thread, recv, send, subscribe, ws_connect
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus


@asynccontextmanager
async def _serve_process(
    tmp_path: Path,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, str]]:
    """`threadwire serve` on a free port; yields the process, its URL and the demo token."""
    env = {**os.environ, "THREADWIRE_JWT_SECRET": TEST_SECRET}
    log = (tmp_path / "serve.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "threadwire",
        "serve",
        "--port",
        "0",
        "--database-url",
        "memory://",
        "--shutdown-grace",
        "1",
        "--print-demo-token",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    try:
        assert proc.stdout is not None
        lines = [(await proc.stdout.readline()).decode().strip() for _ in range(5)]
        assert lines[0].startswith("threadwire is serving on "), (
            tmp_path / "serve.log"
        ).read_text()
        yield proc, lines[0].rsplit(" ", 1)[1], lines[4]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_closes_websockets_1001_ends_streams_and_exits_0(
    tmp_path: Path, sig: signal.Signals
) -> None:
    async with _serve_process(tmp_path) as (proc, url, token):
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth) as http:
            assert (await http.post("/v1/threads", json={"thread_id": "t1"})).status_code == 201
            run = await http.post(
                "/v1/threads/t1/runs",
                json={"agent": "demo", "input": {"prompt": "p", "steps": 50, "delay_ms": 60000}},
            )
            assert run.status_code == 202
            ws_url = url.replace("http://", "ws://") + "/v1/ws"
            async with connect(ws_url, additional_headers=auth) as ws:
                await subscribe(ws, "t1", after_seq=0)
                async with http.stream("GET", "/v1/threads/t1/stream") as stream:
                    lines = stream.aiter_lines()
                    assert (await anext(lines)).startswith(": subscribed")
                    proc.send_signal(sig)
                    assert await close_code(ws) == 1001
                    async for _ in lines:
                        pass  # the stream ends instead of hanging
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        log = (tmp_path / "serve.log").read_text()
        assert "node stopped" in log


async def test_while_draining_new_requests_get_503_and_new_websockets_are_refused() -> None:
    async with serve_app(node_settings()) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            async with ws_connect(node, "alice") as ws:
                await subscribe(ws, "t1")
                await node.gateway.drain()
                assert await close_code(ws) == 1001
            answer = await http.get("/v1/threads", headers=node.auth("alice"))
            assert answer.status_code == 503
            assert answer.json()["code"] == "shutting_down"
            with pytest.raises(InvalidStatus) as refused:
                async with ws_connect(node, "alice"):
                    pass
            assert refused.value.response.status_code == 503


async def test_runs_still_running_at_shutdown_end_with_a_terminal_event() -> None:
    settings = node_settings(shutdown_grace=0.2)
    async with serve_app(settings) as node:
        async with httpx.AsyncClient(base_url=node.url) as http:
            await make_thread(http, node, "alice", "t1")
            started = await http.post(
                "/v1/threads/t1/runs",
                json={"agent": "demo", "input": {"prompt": "p", "delay_ms": 60000}},
                headers=node.auth("alice"),
            )
            run_id = started.json()["run_id"]
            async with ws_connect(node, "alice") as ws:
                await subscribe(ws, "t1", after_seq=0)
                await send(ws, {"op": "ping"})
                while (await recv(ws))["type"] != "pong":
                    pass
        await node.stop()
        store = node.gateway.store
        run = await store.get_run(run_id)
        assert run is not None and run.finished
        events = await store.read_events("t1")
        assert events[-1].is_terminal
