"""`threadwire serve --trace-url chdb://...` exports what it delivers, off the event path.

Both sides run as real processes (chDB allows one data directory per process): a
node serves a demo run and shuts down cleanly, then `threadwire traces report` reads
the same directory and must count exactly the run and events the store holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
from tests.gateway.harness import TEST_SECRET

STEPS = 2
DEMO_EVENTS = 2 + 3 * STEPS + 2  # queued, started, per step 3, message, completed


async def test_a_served_demo_run_appears_in_the_trace_report(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    env = {**os.environ, "THREADWIRE_JWT_SECRET": TEST_SECRET}
    log = (tmp_path / "serve.log").open("wb")
    serve = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "threadwire", "serve", "--port", "0",
        "--database-url", "memory://", "--trace-url", f"chdb://{traces}",
        "--print-demo-token",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )  # fmt: skip
    try:
        assert serve.stdout is not None
        lines = [(await serve.stdout.readline()).decode().strip() for _ in range(5)]
        assert lines[0].startswith("threadwire is serving on "), (
            tmp_path / "serve.log"
        ).read_text()
        url, token = lines[0].rsplit(" ", 1)[1], lines[4]
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
            assert (await http.post("/v1/threads", json={"thread_id": "t"})).status_code == 201
            started = await http.post(
                "/v1/threads/t/runs",
                json={"agent": "demo", "input": {"prompt": "p", "steps": STEPS, "delay_ms": 0}},
            )
            assert started.status_code == 202
            async with http.stream("GET", "/v1/threads/t/stream?after_seq=0") as stream:
                async for line in stream.aiter_lines():
                    if line == "event: agent_completed":
                        break
            stored = (await http.get("/v1/threads/t/events")).json()["events"]
        assert len(stored) == DEMO_EVENTS
        serve.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(serve.wait(), 30) == 0
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()
        log.close()

    report = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "threadwire", "traces", "report",
        "--trace-url", f"chdb://{traces}", "--format", "json",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(report.communicate(), 60)
    assert report.returncode == 0, err.decode()
    agents = {a["agent"]: a for a in json.loads(out)["agents"]}
    assert agents["demo"]["runs"] == 1
    assert agents["demo"]["completed"] == 1
    assert agents["demo"]["events"] == DEMO_EVENTS
    tools = [t for t in json.loads(out)["tools"] if t["agent"] == "demo"]
    assert sum(t["calls"] for t in tools) == STEPS
