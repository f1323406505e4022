"""Events the real runtime writes (Supervisor runs with `ctx.tool`, and external workers
through the Ingestor, legacy IDs included) reach the sink through the one event path,
and the report matches the SQL store, live and after a backfill."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.traces.conftest import make_target
from tests.traces.test_report import assert_matches

from threadwire.bus.memory import MemoryBus
from threadwire.events import Event, NewEvent
from threadwire.runtime import (
    AgentError,
    AgentRegistry,
    Coordinator,
    Ingestor,
    RunContext,
    Supervisor,
)
from threadwire.store.sql import SqlStore
from threadwire.traces.backfill import Backfill
from threadwire.traces.report import build_report
from threadwire.traces.sink import TraceSink


class TracedCoordinator(Coordinator):
    """The hook the gateway uses: hand stored events to the sink after publishing."""

    def __init__(self, store: SqlStore, bus: MemoryBus, sink: TraceSink) -> None:
        super().__init__(store, bus)
        self.sink = sink

    async def emit(
        self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
    ) -> list[Event]:
        stored = await super().emit(events, idempotency_key=idempotency_key)
        self.sink.submit(stored)
        return stored


async def researcher(ctx: RunContext, input: dict[str, Any]) -> str:
    await ctx.thinking("planning")
    async with ctx.tool("search", {"q": input["q"]}) as call:
        call.set_result(["a", "b"])
    async with ctx.tool("fetch_url", {"url": "x"}, call_id="c-1") as call:
        if input.get("fail_tool"):
            call.set_error("404")
        else:
            call.set_result("<html>")
    await ctx.message("done")
    if input.get("fail"):
        raise AgentError("nothing found", code="no_results")
    return "ok"


async def test_runtime_and_ingest_events_report_like_the_store(
    tmp_path: Path, chdb_path: Path
) -> None:
    db_path = tmp_path / "store.db"
    store = SqlStore(f"sqlite:///{db_path}")
    await store.open()
    live = make_target("chdb", chdb_path, f"tw_{secrets.token_hex(6)}")
    sink = TraceSink(live, lookup_run=store.get_run, flush_interval=0.01)
    await sink.start()
    coordinator = TracedCoordinator(store, MemoryBus(), sink)
    registry = AgentRegistry()
    registry.register("researcher", researcher)
    supervisor = Supervisor(store, coordinator, registry)
    ingestor = Ingestor(store, coordinator)
    try:
        await store.create_thread("th_a", "alice")
        await store.create_thread("user_42", "bob")
        inputs: list[dict[str, Any]] = [
            {"q": "x"},
            {"q": "y", "fail_tool": True},
            {"q": "z", "fail": True},
        ] * 4
        runs = [
            await supervisor.submit(user_id="alice", thread_id="th_a", agent="researcher",
                                    input=i)
            for i in inputs
        ]
        for run in runs:
            await supervisor.wait(run.run_id, timeout=30)
        # a legacy worker that announces its agent, and one that does not
        await ingestor.ingest(
            [{"run_id": "run_user_42_7f3a9c01", "type": "run_queued", "data": {"agent": "w"}},
             {"run_id": "run_user_42_7f3a9c01", "type": "tool_executing",
              "data": {"tool": "lookup", "call_id": "k"}}]
        )
        await ingestor.ingest(
            [{"run_id": "run_user_42_7f3a9c01", "type": "tool_completed",
              "data": {"tool": "lookup", "call_id": "k", "duration_ms": 12}},
             {"run_id": "run_user_42_7f3a9c01", "type": "agent_completed", "data": {}}]
        )
        await ingestor.ingest(
            [{"run_id": "run_user_42_0badf00d", "type": "agent_message", "data": {}},
             {"run_id": "run_user_42_0badf00d", "type": "agent_error",
              "data": {"code": "crash", "message": "worker died"}}]
        )
        await sink.flush()
        assert sink.dropped == 0
        report = await build_report(live)
        assert {a.agent for a in report.agents} == {"researcher", "w", "external"}
        by_agent = {a.agent: a for a in report.agents}
        assert by_agent["researcher"].failed == 4 and by_agent["researcher"].runs == 12
        assert by_agent["w"].legacy_event_share == 1.0
        assert by_agent["external"].duration_ms.p50 is not None  # started when first seen
        tools = {(t.agent, t.tool): t for t in report.tools}
        assert tools[("researcher", "fetch_url")].errors == 4
        assert tools[("w", "lookup")].latency_ms.p50 == 12.0
        assert_matches(report, db_path, since=None)

        replay = make_target("chdb", chdb_path, f"tw_{secrets.token_hex(6)}")
        await replay.open()
        try:
            job = Backfill(store.url, replay)
            await job.plan()
            await job.run()
            again = await build_report(replay, now=report.generated_at)
            assert again.agents == report.agents and again.tools == report.tools
        finally:
            await replay.close()
    finally:
        await supervisor.shutdown(grace=1)
        await sink.close()
        await store.close()
