"""Ingest under the store's run-life rule (decision 0111): refusals keep their code and
index, hold under concurrency, and a known run costs no store read per request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.store.helpers import new_event, new_run

from threadwire.events import AGENT_COMPLETED, TERMINAL_TYPES
from threadwire.ids import new_run_id
from threadwire.runtime import IngestError, Ingestor
from threadwire.store import RunRecord, Store

from .conftest import RecordingCoordinator


@pytest.fixture
async def ingestor(store: Store, coordinator: RecordingCoordinator) -> Ingestor:
    await store.create_thread("user_42", "alice")
    return Ingestor(store, coordinator)


async def test_a_known_run_costs_no_run_read_per_request(
    ingestor: Ingestor, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = new_run_id("user_42")
    await ingestor.ingest([{"run_id": run_id, "type": "agent_started"}])
    reads: list[str] = []
    get_run = store.get_run

    async def counted(run_id: str) -> RunRecord | None:
        reads.append(run_id)
        return await get_run(run_id)

    monkeypatch.setattr(store, "get_run", counted)
    for n in range(5):
        await ingestor.ingest([{"run_id": run_id, "type": "agent_message", "data": {"n": n}}])
    assert reads == []
    await ingestor.ingest([{"run_id": run_id, "type": "agent_completed"}])
    error = await _refused(ingestor, [{"run_id": run_id, "type": "agent_message"}])
    assert (error.status, error.code, error.index) == (409, "run_finished", 0)


async def test_a_supervised_runs_stored_end_refuses_events_before_its_status_is_final(
    ingestor: Ingestor, store: Store, coordinator: RecordingCoordinator
) -> None:
    # The supervisor stores the terminal event, then the status (0066): in between, the
    # run still reads `running`, and a worker's event must be refused all the same.
    run = await store.create_run(new_run("user_42", status="running", node_id="node-a"))
    await coordinator.emit([new_event("user_42", run.run_id, AGENT_COMPLETED)])
    error = await _refused(
        ingestor,
        [
            {"run_id": run.run_id, "type": "agent_message"},
        ],
    )
    assert (error.status, error.code, error.index) == (409, "run_finished", 0)
    assert coordinator.types(run.run_id) == [AGENT_COMPLETED]


async def test_concurrent_batches_never_store_an_event_after_the_end(
    ingestor: Ingestor, store: Store, coordinator: RecordingCoordinator
) -> None:
    legacy = "run_user_42_0ddba11e"
    await ingestor.ingest([{"run_id": legacy, "type": "agent_started"}])
    batches: list[list[dict[str, Any]]] = [
        [{"run_id": legacy, "type": "agent_message", "data": {"n": n}}] for n in range(10)
    ]
    batches.insert(5, [{"run_id": legacy, "type": "agent_completed", "data": {"result": 1}}])
    outcomes = await asyncio.gather(*(ingestor.ingest(b) for b in batches), return_exceptions=True)
    [canonical] = {e.run_id for e in coordinator.emitted}
    types = coordinator.types(canonical)
    assert types.count(AGENT_COMPLETED) == 1 and types[-1] == AGENT_COMPLETED
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, IngestError)
            assert (outcome.status, outcome.code, outcome.index) == (409, "run_finished", 0)
    assert len([o for o in outcomes if isinstance(o, list)]) == len(types) - 1


async def test_of_two_concurrent_ends_one_is_stored_and_the_status_agrees_with_it(
    ingestor: Ingestor, store: Store, coordinator: RecordingCoordinator
) -> None:
    run_id = new_run_id("user_42")
    await ingestor.ingest([{"run_id": run_id, "type": "agent_started"}])
    outcomes = await asyncio.gather(
        ingestor.ingest([{"run_id": run_id, "type": "agent_completed", "data": {"result": 1}}]),
        ingestor.ingest([{"run_id": run_id, "type": "agent_error", "data": {"code": "x"}}]),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, IngestError)]
    assert [(e.code, e.index) for e in refused] == [("run_finished", 0)]
    [end] = [e for e in coordinator.of_run(run_id) if e.type in TERMINAL_TYPES]
    run = await store.get_run(run_id)
    assert run is not None
    assert run.status == {"agent_completed": "completed", "agent_error": "failed"}[end.type]
    assert run.finished_at == end.ts


async def _refused(ingestor: Ingestor, events: list[dict[str, Any]]) -> IngestError:
    with pytest.raises(IngestError) as raised:
        await ingestor.ingest(events)
    return raised.value
