"""Ingest (`POST /v1/events`, protocol spec 4.1): routing, canonical IDs, refusals, atomicity."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from prometheus_client import REGISTRY

from threadwire.events import Event, NewEvent
from threadwire.ids import format_registry, new_run_id, parse_run_id
from threadwire.runtime import AgentRegistry, Coordinator, IngestError, Ingestor, RunContext
from threadwire.runtime.metrics import INGEST_REFUSALS_TOTAL
from threadwire.store import Store

from .conftest import RecordingCoordinator, SupervisorFactory
from .helpers import WAIT

UUID = "0b7e4a52-8f7e-4c7b-9a51-3f7cde5a1b2c"


@pytest.fixture
async def ingestor(store: Store, coordinator: RecordingCoordinator) -> Ingestor:
    await store.create_thread("user_42", "alice")
    return Ingestor(store, coordinator)


def refusals(code: str) -> float:
    return REGISTRY.get_sample_value(INGEST_REFUSALS_TOTAL, {"code": code}) or 0.0


async def refused(ingestor: Ingestor, events: list[dict[str, Any]], **kw: Any) -> IngestError:
    with pytest.raises(IngestError) as raised:
        await ingestor.ingest(events, **kw)
    return raised.value


async def test_canonical_run_id_of_a_new_run_is_stored_and_the_run_recorded(
    ingestor: Ingestor, store: Store
) -> None:
    run_id = new_run_id("user_42")
    stored = await ingestor.ingest(
        [
            {"run_id": run_id, "type": "agent_started"},
            {"run_id": run_id, "type": "agent_message", "data": {"text": "hi"}},
        ]
    )
    assert [(e.run_id, e.thread_id, e.seq, e.type) for e in stored] == [
        (run_id, "user_42", 1, "agent_started"),
        (run_id, "user_42", 2, "agent_message"),
    ]
    assert stored[0].data == {} and stored[1].data == {"text": "hi"}
    run = await store.get_run(run_id)
    assert run is not None and run.status == "running" and run.agent == "external"
    assert run.owner == "alice" and run.node_id is None


async def test_legacy_run_id_is_canonicalised_and_kept_under_legacy_run_id(
    ingestor: Ingestor, store: Store
) -> None:
    legacy = "run_user_42_7f3a9c01"
    first = await ingestor.ingest([{"run_id": legacy, "type": "agent_message", "data": {}}])
    again = await ingestor.ingest([{"run_id": legacy, "type": "agent_message"}])

    canonical = first[0].run_id
    parsed = parse_run_id(canonical)
    assert parsed.is_canonical and parsed.thread_id == "user_42" and parsed.rand == "7f3a9c01"
    assert again[0].run_id == canonical
    assert first[0].data == {"legacy_run_id": legacy} == again[0].data
    run = await store.get_run(legacy)
    assert run is not None and run.run_id == canonical
    assert await store.resolve_thread(legacy) == "user_42"


async def test_thread_id_that_disagrees_with_the_run_is_a_409_thread_mismatch(
    ingestor: Ingestor, store: Store
) -> None:
    await store.create_thread("other", "alice")
    before = refusals("thread_mismatch")
    error = await refused(
        ingestor,
        [
            {"run_id": "run_user_42_7f3a9c01", "type": "x", "thread_id": "user_42"},
            {"run_id": "run_user_42_7f3a9c01", "type": "x", "thread_id": "other"},
        ],
    )
    assert (error.status, error.code, error.index) == (409, "thread_mismatch", 1)
    assert refusals("thread_mismatch") == before + 1
    assert await store.head_seq("user_42") == 0
    assert await store.get_run("run_user_42_7f3a9c01") is None  # the batch left no trace


async def test_a_missing_thread_is_a_404_not_found(ingestor: Ingestor) -> None:
    error = await refused(ingestor, [{"run_id": "run_nobody_7f3a9c01", "type": "x"}])
    assert (error.status, error.code, error.index) == (404, "not_found", 0)


async def test_bare_uuid_is_unknown_until_an_event_names_its_thread(
    ingestor: Ingestor, store: Store
) -> None:
    error = await refused(ingestor, [{"run_id": UUID, "type": "agent_message"}])
    assert (error.status, error.code, error.index) == (404, "unknown_run", 0)

    taught = await ingestor.ingest([{"run_id": UUID, "type": "a", "thread_id": "user_42"}])
    later = await ingestor.ingest([{"run_id": UUID, "type": "b"}])

    assert taught[0].thread_id == later[0].thread_id == "user_42"
    assert taught[0].run_id == later[0].run_id
    assert parse_run_id(taught[0].run_id).is_canonical
    assert later[0].data == {"legacy_run_id": UUID}
    assert (await store.resolve_thread(UUID)) == "user_42"


@pytest.mark.parametrize(
    ("run_id", "code"),
    [
        ("", "empty"),  # nothing at all
        (42, "empty"),  # not a string
        ("x" * 300, "too_long"),  # over the 256 limit
        ("run user_42", "bad_charset"),  # a space
        ("thread_abc", "unknown_format"),  # no enabled format matches
    ],
)
async def test_run_ids_that_do_not_parse_are_a_400_with_the_id_code(
    ingestor: Ingestor, run_id: object, code: str
) -> None:
    before = refusals(code)
    good = {"run_id": new_run_id("user_42"), "type": "ok"}
    error = await refused(ingestor, [good, {"run_id": run_id, "type": "x"}])
    assert (error.status, error.code, error.index) == (400, code, 1)
    assert refusals(code) == before + 1


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "x"},  # run_id missing
        {"run_id": "R", "type": "Upper"},  # type outside the grammar
        {"run_id": "R", "type": ""},  # type empty
        {"run_id": "R", "type": "x" * 65},  # type too long
        {"run_id": "R"},  # type missing
        {"run_id": "R", "type": "x", "data": [1]},  # data not an object
        {"run_id": "R", "type": "x", "data": {"n": float("nan")}},  # data not JSON
        "not an object",  # the event itself
    ],
)
async def test_bad_type_or_data_is_a_422_invalid_event_and_nothing_is_stored(
    ingestor: Ingestor, store: Store, bad: Any
) -> None:
    run_id = new_run_id("user_42")
    if isinstance(bad, dict) and bad.get("run_id") == "R":
        bad = {**bad, "run_id": run_id}
    error = await refused(
        ingestor, [{"run_id": run_id, "type": "ok"}, {"run_id": run_id, "type": "ok"}, bad]
    )
    assert (error.status, error.code, error.index) == (422, "invalid_event", 2)
    assert await store.head_seq("user_42") == 0
    assert await store.get_run(run_id) is None


async def test_a_bad_request_shape_is_a_422_invalid_request(ingestor: Ingestor) -> None:
    one = {"run_id": new_run_id("user_42"), "type": "x"}
    for events, key in (([], None), ([one] * 501, None), ([one], "k" * 129)):
        error = await refused(ingestor, events, idempotency_key=key)
        assert (error.status, error.code, error.index) == (422, "invalid_request", None)


async def test_a_retry_with_the_same_idempotency_key_stores_nothing_new(
    ingestor: Ingestor, store: Store
) -> None:
    batch = [{"run_id": "run_user_42_00c0ffee", "type": "agent_message", "data": {"text": "a"}}]
    first = await ingestor.ingest(batch, idempotency_key="worker-7:42")
    second = await ingestor.ingest(batch, idempotency_key="worker-7:42")
    assert second == first
    assert await store.head_seq("user_42") == 1


async def test_ingested_events_reach_subscribers_and_terminal_events_finish_the_run(
    ingestor: Ingestor,
    store: Store,
    coordinator: RecordingCoordinator,
    make_supervisor: SupervisorFactory,
) -> None:
    delivered: list[Event] = []
    await coordinator.bus.subscribe("user_42", delivered.append)
    legacy = "run_user_42_0badf00d"
    started = await ingestor.ingest(
        [{"run_id": legacy, "type": "run_queued", "data": {"agent": "worker"}}]
    )
    run_id = started[0].run_id
    run = await store.get_run(run_id)
    assert run is not None and run.agent == "worker" and run.status == "running"

    supervisor = make_supervisor()
    waiter = asyncio.create_task(supervisor.wait(legacy, timeout=WAIT))
    await ingestor.ingest([{"run_id": legacy, "type": "agent_completed", "data": {"result": 7}}])
    final = await waiter

    assert final.run_id == run_id and final.status == "completed"
    stored = await store.get_run(run_id)
    assert stored is not None and stored.status == "completed" and stored.result == 7
    assert [e.type for e in delivered] == ["run_queued", "agent_completed"]
    assert all(e.run_id == run_id for e in delivered)

    await ingestor.ingest(
        [{"run_id": UUID, "type": "agent_error", "thread_id": "user_42", "data": {"code": "x"}}]
    )
    failed = await store.get_run(UUID)
    assert failed is not None and failed.status == "failed"
    assert failed.error == {"code": "x", "message": ""}


async def test_an_ambiguous_legacy_id_is_settled_by_thread_id_or_by_which_thread_exists(
    ingestor: Ingestor, store: Store
) -> None:
    with format_registry.scoped():
        format_registry.enable("legacy_run_ts")
        raw = "run_abc_12345_7f3a9c01"  # legacy_run: thread abc_12345; legacy_run_ts: abc
        error = await refused(ingestor, [{"run_id": raw, "type": "x"}])
        assert (error.status, error.code) == (400, "ambiguous")

        await store.create_thread("abc", "alice")
        by_store = await ingestor.ingest([{"run_id": raw, "type": "x"}])
        assert by_store[0].thread_id == "abc"

        await store.create_thread("abc_12345", "alice")
        other = "run_abc_12345_0000abcd"
        by_hint = await ingestor.ingest([{"run_id": other, "type": "x", "thread_id": "abc"}])
        assert by_hint[0].thread_id == "abc"
        both = await refused(ingestor, [{"run_id": "run_abc_12345_1111abcd", "type": "x"}])
        assert (both.status, both.code) == (400, "ambiguous")


async def test_concurrent_batches_naming_one_new_legacy_id_agree_on_its_canonical_id(
    ingestor: Ingestor,
) -> None:
    legacy = "run_user_42_12345678"
    batches = await asyncio.gather(
        *(ingestor.ingest([{"run_id": legacy, "type": "x"}]) for _ in range(10))
    )
    assert len({b[0].run_id for b in batches}) == 1


async def test_first_sight_of_one_new_run_holds_up_no_other_run(
    store: Store, coordinator: RecordingCoordinator
) -> None:
    await store.create_thread("user_42", "alice")
    known = new_run_id("user_42")
    ingestor = Ingestor(store, coordinator)
    await ingestor.ingest([{"run_id": known, "type": "x"}])
    slow = "run_user_42_aaaaaaaa"
    entered, release = asyncio.Event(), asyncio.Event()
    ensure_run = store.ensure_run

    async def held_ensure_run(run: Any, **kw: Any) -> Any:
        if kw.get("legacy_id") == slow:
            entered.set()
            await release.wait()
        return await ensure_run(run, **kw)

    store.ensure_run = held_ensure_run  # type: ignore[method-assign]
    stuck = asyncio.create_task(ingestor.ingest([{"run_id": slow, "type": "x"}]))
    await asyncio.wait_for(entered.wait(), WAIT)
    # While that run is being recorded, a known run and another new run get through.
    await asyncio.wait_for(ingestor.ingest([{"run_id": known, "type": "y"}]), WAIT)
    other = await asyncio.wait_for(
        ingestor.ingest([{"run_id": "run_user_42_bbbbbbbb", "type": "z"}]), WAIT
    )
    assert other[0].data["legacy_run_id"] == "run_user_42_bbbbbbbb"
    assert not stuck.done()
    release.set()
    [event] = await asyncio.wait_for(stuck, WAIT)
    assert event.data["legacy_run_id"] == slow


async def test_an_external_run_is_finished_before_its_terminal_event_is_published(
    store: Store, coordinator: RecordingCoordinator
) -> None:
    await store.create_thread("user_42", "alice")
    seen: list[str | None] = []

    class Checking(Coordinator):
        async def emit(
            self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
        ) -> list[Event]:
            for event in events:
                if event.type == "agent_completed":
                    run = await self.store.get_run(event.run_id)
                    seen.append(run.status if run else None)
            return await super().emit(events, idempotency_key=idempotency_key)

    ingestor = Ingestor(store, Checking(store, coordinator.bus))
    legacy = "run_user_42_abcdef01"
    await ingestor.ingest([{"run_id": legacy, "type": "agent_started"}])
    await ingestor.ingest([{"run_id": legacy, "type": "agent_completed", "data": {"result": 1}}])
    assert seen == ["completed"]


async def test_a_batch_that_cannot_be_stored_leaves_the_run_unfinished(
    store: Store, coordinator: RecordingCoordinator
) -> None:
    await store.create_thread("user_42", "alice")

    class Failing(Coordinator):
        async def emit(
            self, events: Sequence[NewEvent], *, idempotency_key: str | None = None
        ) -> list[Event]:
            raise OSError("the database went away")

    run_id = new_run_id("user_42")
    await Ingestor(store, coordinator).ingest([{"run_id": run_id, "type": "agent_started"}])
    with pytest.raises(OSError):
        await Ingestor(store, Failing(store, coordinator.bus)).ingest(
            [{"run_id": run_id, "type": "agent_error", "data": {"code": "x"}}]
        )
    run = await store.get_run(run_id)
    assert run is not None and run.status == "running" and run.error is None


async def test_nothing_is_accepted_after_a_runs_terminal_event(
    ingestor: Ingestor, store: Store
) -> None:
    legacy = "run_user_42_0ddba11e"
    await ingestor.ingest([{"run_id": legacy, "type": "agent_completed", "data": {"result": 1}}])
    for late in ("agent_message", "agent_error"):
        error = await refused(ingestor, [{"run_id": legacy, "type": late}])
        assert (error.status, error.code, error.index) == (409, "run_finished", 0)
    assert await store.head_seq("user_42") == 1


async def test_a_batch_may_not_end_a_run_twice_or_go_on_after_its_end(
    ingestor: Ingestor, store: Store
) -> None:
    run_id = new_run_id("user_42")
    batch: list[dict[str, Any]] = [
        {"run_id": run_id, "type": "agent_started"},
        {"run_id": run_id, "type": "agent_error", "data": {"code": "x"}},
        {"run_id": run_id, "type": "agent_completed"},
    ]
    error = await refused(ingestor, batch)
    assert (error.status, error.code, error.index) == (409, "run_finished", 2)
    assert await store.head_seq("user_42") == 0


async def test_a_retried_terminal_batch_is_answered_with_what_it_stored(
    ingestor: Ingestor, store: Store
) -> None:
    batch = [{"run_id": "run_user_42_5ca1ab1e", "type": "agent_completed"}]
    first = await ingestor.ingest(batch, idempotency_key="worker-7:end")
    assert await ingestor.ingest(batch, idempotency_key="worker-7:end") == first
    assert await store.head_seq("user_42") == 1


async def test_a_supervised_runs_terminal_event_is_its_supervisors_to_write(
    ingestor: Ingestor,
    store: Store,
    registry: AgentRegistry,
    make_supervisor: SupervisorFactory,
) -> None:
    release = asyncio.Event()

    async def waits(ctx: RunContext, input: dict[str, Any]) -> str:
        await release.wait()
        return "done"

    registry.register("waits", waits)
    supervisor = make_supervisor()
    await supervisor.start()
    run = await supervisor.submit(user_id="alice", thread_id="user_42", agent="waits", input={})
    error = await refused(ingestor, [{"run_id": run.run_id, "type": "agent_completed"}])
    assert (error.status, error.code) == (409, "run_supervised")
    # A worker may still add progress to a supervised run.
    await ingestor.ingest([{"run_id": run.run_id, "type": "agent_message", "data": {"t": 1}}])
    release.set()
    final = await supervisor.wait(run.run_id, timeout=WAIT)
    assert final.status == "completed"
    types = [e.type for e in await store.read_events("user_42", after_seq=0)]
    assert types.count("agent_completed") == 1
