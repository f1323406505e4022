"""The store contract, the same on memory, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.store.helpers import new_event, new_run

from threadwire.events import NewEvent, utcnow
from threadwire.store import (
    EventsGone,
    NotFound,
    Store,
    ThreadExists,
)
from threadwire.store.base import MAX_PAGE, EventExists, InvalidCursor, RunExists

# threads


async def test_created_thread_reads_back_with_its_metadata(store: Store) -> None:
    created = await store.create_thread("t-1", "alice", {"title": "hello", "n": [1, 2]})
    got = await store.get_thread("t-1")
    assert got == created
    assert got.owner == "alice" and got.metadata == {"title": "hello", "n": [1, 2]}
    assert got.head_seq == 0 and got.low_seq == 0
    assert got.created_at.tzinfo is not None


async def test_unknown_thread_reads_as_none_and_head_zero(store: Store) -> None:
    assert await store.get_thread("nope") is None
    assert await store.head_seq("nope") == 0
    assert await store.read_events("nope") == []


async def test_taken_thread_id_is_refused_whoever_asks(store: Store) -> None:
    await store.create_thread("thread_abc_123", "alice")
    with pytest.raises(ThreadExists):
        await store.create_thread("thread_abc_123", "bob")
    assert (await store.get_thread("thread_abc_123")).owner == "alice"  # type: ignore[union-attr]


async def test_threads_list_newest_first_only_the_owners(store: Store) -> None:
    for i in range(5):
        await store.create_thread(f"a{i}", "alice")
    await store.create_thread("b0", "bob")
    page = await store.list_threads("alice")
    assert [t.thread_id for t in page.items] == ["a4", "a3", "a2", "a1", "a0"]
    assert page.next_before is None


async def test_thread_pages_cover_every_thread_once_in_order(store: Store) -> None:
    names = [f"t{i:02d}" for i in range(7)]
    for name in names:
        await store.create_thread(name, "alice")
    seen: list[str] = []
    before: str | None = None
    pages = 0
    while True:
        page = await store.list_threads("alice", limit=3, before=before)
        seen += [t.thread_id for t in page.items]
        pages += 1
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == names[::-1]
    assert pages == 3


async def test_a_cursor_the_store_never_made_is_refused(store: Store) -> None:
    await store.create_thread("t", "alice")
    with pytest.raises(InvalidCursor):
        await store.list_threads("alice", before="not-a-cursor!")
    with pytest.raises(ValueError):  # InvalidCursor is a ValueError for callers that map those
        await store.list_runs("t", before="%%%")


@pytest.mark.parametrize(
    "raw",
    [
        f"{2**64}:t",  # a position no BIGINT holds
        "-1:t",  # a negative position
        "1:t\x00",  # a key PostgreSQL refuses to bind
        "1:a b",  # a key outside the ID grammar
    ],
)
async def test_a_forged_cursor_is_refused_before_it_reaches_the_database(
    store: Store, raw: str
) -> None:
    import base64

    forged = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
    await store.create_thread("t", "alice")
    with pytest.raises(InvalidCursor):
        await store.list_threads("alice", before=forged)
    with pytest.raises(InvalidCursor):
        await store.list_runs("t", before=forged)


# runs


async def test_run_round_trips_every_field(store: Store) -> None:
    await store.create_thread("t", "alice")
    run = new_run("t", node_id="node-a")
    assert await store.create_run(run) == run
    assert await store.get_run(run.run_id) == run


async def test_run_on_unknown_thread_or_taken_id_is_refused(store: Store) -> None:
    await store.create_thread("t", "alice")
    with pytest.raises(NotFound):
        await store.create_run(new_run("missing"))
    run = await store.create_run(new_run("t"))
    with pytest.raises(RunExists):
        await store.create_run(run)


async def test_update_run_changes_status_times_and_result(store: Store) -> None:
    await store.create_thread("t", "alice")
    run = await store.create_run(new_run("t"))
    started = utcnow()
    running = await store.update_run(run.run_id, status="running", started_at=started)
    assert running.status == "running" and running.started_at == started
    done = await store.update_run(
        run.run_id,
        status="completed",
        finished_at=started + timedelta(seconds=1),
        result={"answer": 42, "items": ["a", None]},
    )
    assert await store.get_run(run.run_id) == done
    assert done.finished and done.result == {"answer": 42, "items": ["a", None]}
    failed = await store.update_run(run.run_id, status="failed", error={"code": "boom"})
    assert failed.error == {"code": "boom"} and failed.run_id == run.run_id


async def test_update_of_unknown_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.update_run("thread_t_run_1764000000000_0badf00d", status="running")


async def test_runs_list_newest_first_and_page(store: Store) -> None:
    await store.create_thread("t", "alice")
    await store.create_thread("other", "alice")
    made = [await store.create_run(new_run("t")) for _ in range(5)]
    await store.create_run(new_run("other"))
    first = await store.list_runs("t", limit=2)
    assert [r.run_id for r in first.items] == [made[4].run_id, made[3].run_id]
    assert first.next_before is not None
    rest = await store.list_runs("t", limit=10, before=first.next_before)
    assert [r.run_id for r in rest.items] == [r.run_id for r in made[2::-1]]
    assert rest.next_before is None


async def test_unfinished_runs_are_listed_per_node(store: Store) -> None:
    await store.create_thread("t", "alice")
    a = await store.create_run(new_run("t", node_id="a"))
    b = await store.create_run(new_run("t", status="running", node_id="b"))
    await store.create_run(new_run("t", status="completed", node_id="a"))
    assert {r.run_id for r in await store.list_unfinished_runs()} == {a.run_id, b.run_id}
    assert [r.run_id for r in await store.list_unfinished_runs(node_id="a")] == [a.run_id]


async def test_ensure_run_records_once_and_aliases_the_legacy_id(store: Store) -> None:
    await store.create_thread("user_42", "alice")
    run = new_run("user_42")
    stored = await store.ensure_run(run, legacy_id="run_user_42_7f3a9c01")
    again = await store.ensure_run(run.evolve(agent="other"), legacy_id="run_user_42_7f3a9c01")
    assert stored == again == run
    assert await store.get_run("run_user_42_7f3a9c01") == run
    assert await store.canonical_run_id("run_user_42_7f3a9c01") == run.run_id
    assert await store.canonical_run_id(run.run_id) == run.run_id
    assert await store.canonical_run_id("run_user_42_00000000") is None


async def test_a_run_is_found_by_its_bare_uuid_alias(store: Store) -> None:
    await store.create_thread("t", "alice")
    run = new_run("t")
    uuid = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"
    await store.ensure_run(run, legacy_id=uuid)
    assert await store.get_run(uuid) == run


async def test_ensure_run_on_unknown_thread_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.ensure_run(new_run("missing"))


async def test_first_alias_wins(store: Store) -> None:
    await store.create_thread("t", "alice")
    one, two = await store.create_run(new_run("t")), await store.create_run(new_run("t"))
    await store.add_alias("run_t_11111111", one.run_id, "t")
    await store.add_alias("run_t_11111111", two.run_id, "t")
    assert await store.canonical_run_id("run_t_11111111") == one.run_id


# events


async def test_append_numbers_events_from_one_in_order(store: Store) -> None:
    await store.create_thread("t", "alice")
    run = new_run("t")
    first = await store.append([new_event("t", run.run_id, "run_queued")])
    more = await store.append([new_event("t", run.run_id, data={"i": i}) for i in range(3)])
    assert [e.seq for e in first + more] == [1, 2, 3, 4]
    assert [e.data for e in more] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert await store.head_seq("t") == 4
    assert (await store.get_thread("t")).head_seq == 4  # type: ignore[union-attr]
    assert await store.read_events("t") == first + more


async def test_append_of_nothing_stores_nothing(store: Store) -> None:
    assert await store.append([]) == []


async def test_seq_is_per_thread(store: Store) -> None:
    await store.create_thread("a", "alice")
    await store.create_thread("b", "alice")
    stored = await store.append([new_event("a", "r"), new_event("b", "r"), new_event("a", "r")])
    assert [(e.thread_id, e.seq) for e in stored] == [("a", 1), ("b", 1), ("a", 2)]


async def test_append_naming_an_unknown_thread_stores_none_of_it(store: Store) -> None:
    await store.create_thread("t", "alice")
    with pytest.raises(NotFound):
        await store.append([new_event("t", "r"), new_event("missing", "r")])
    assert await store.head_seq("t") == 0
    assert [e.seq for e in await store.append([new_event("t", "r")])] == [1]


async def test_a_reused_event_id_is_refused_and_stores_nothing(store: Store) -> None:
    await store.create_thread("t", "alice")
    [kept] = await store.append([new_event("t", "r")])
    again = new_event("t", "r")
    reused = NewEvent(kept.event_id, "t", "r", "agent_message", utcnow(), {})
    with pytest.raises(EventExists):
        await store.append([again, reused])
    with pytest.raises(EventExists):
        await store.append([again, again])
    assert await store.head_seq("t") == 1
    assert [e.event_id for e in await store.read_events("t")] == [kept.event_id]


async def test_data_that_is_not_json_is_refused(store: Store) -> None:
    await store.create_thread("t", "alice")
    with pytest.raises(ValueError, match="not JSON"):
        await store.append([new_event("t", "r", data={"when": datetime.now(UTC)})])
    with pytest.raises(ValueError, match="not JSON"):
        await store.append([new_event("t", "r", data={"x": float("nan")})])
    assert await store.head_seq("t") == 0


async def test_idempotency_key_retry_stores_nothing_and_answers_the_first_events(
    store: Store,
) -> None:
    await store.create_thread("t", "alice")
    first = await store.append([new_event("t", "r"), new_event("t", "r")], idempotency_key="w:1")
    retry = await store.append([new_event("t", "r")], idempotency_key="w:1")
    assert retry == first
    assert await store.head_seq("t") == 2
    other = await store.append([new_event("t", "r")], idempotency_key="w:2")
    assert [e.seq for e in other] == [3]


async def test_idempotency_keys_are_scoped_by_thread(store: Store) -> None:
    await store.create_thread("a", "alice")
    await store.create_thread("b", "alice")
    in_a = await store.append([new_event("a", "r")], idempotency_key="k")
    in_b = await store.append([new_event("b", "r")], idempotency_key="k")
    assert in_a[0].thread_id == "a" and in_b[0].thread_id == "b"
    assert in_a[0].event_id != in_b[0].event_id


async def test_events_read_in_pages_after_a_seq(store: Store) -> None:
    await store.create_thread("t", "alice")
    stored = await store.append([new_event("t", "r", data={"i": i}) for i in range(25)])
    assert await store.read_events("t", after_seq=10, limit=5) == stored[10:15]
    assert await store.read_events("t", after_seq=20) == stored[20:]
    assert await store.read_events("t", after_seq=25) == []
    assert await store.read_events("t", after_seq=99) == []
    pages, after = [], 0
    while batch := await store.read_events("t", after_seq=after, limit=10):
        pages.append(batch)
        after = batch[-1].seq
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [e for p in pages for e in p] == stored


async def test_a_page_holds_at_most_the_maximum(store: Store) -> None:
    await store.create_thread("t", "alice")
    for _ in range(3):
        await store.append([new_event("t", "r") for _ in range(500)])
    page = await store.read_events("t", limit=5000)
    assert len(page) == MAX_PAGE
    assert page[-1].seq == MAX_PAGE


async def test_stored_event_keeps_its_fields(store: Store) -> None:
    await store.create_thread("t", "alice")
    ts = datetime(2026, 11, 24, 22, 1, 52, 123000, tzinfo=UTC)
    new = new_event("t", "thread_t_run_1_0badf00d", "tool_completed", ts=ts, data={"ü": "✓"})
    [stored] = await store.append([new])
    [read] = await store.read_events("t")
    assert read == stored
    assert (read.event_id, read.run_id, read.type, read.ts, read.data) == (
        new.event_id,
        new.run_id,
        "tool_completed",
        ts,
        {"ü": "✓"},
    )


# retention


async def _thread_with_old_finished_run(store: Store, thread_id: str, n: int) -> str:
    await store.create_thread(thread_id, "alice")
    run = await store.create_run(new_run(thread_id))
    old = utcnow() - timedelta(days=40)
    await store.append([new_event(thread_id, run.run_id, ts=old) for _ in range(n)])
    await store.update_run(run.run_id, status="completed")
    return run.run_id


async def test_prune_drops_old_events_of_finished_runs_but_the_last(store: Store) -> None:
    await _thread_with_old_finished_run(store, "t", 10)
    result = await store.prune(timedelta(days=30), batch_size=3)
    assert (result.events, result.threads) == (9, 1)
    thread = await store.get_thread("t")
    assert thread is not None and (thread.low_seq, thread.head_seq) == (9, 10)
    assert [e.seq for e in await store.read_events("t", after_seq=9)] == [10]
    assert (await store.prune(timedelta(days=30))).events == 0


async def test_resume_from_before_the_mark_is_gone_with_the_first_seq(store: Store) -> None:
    await _thread_with_old_finished_run(store, "t", 5)
    await store.prune(timedelta(days=30))
    with pytest.raises(EventsGone) as gone:
        await store.read_events("t", after_seq=0)
    assert gone.value.first_seq == 5 and gone.value.code == "gone"
    with pytest.raises(EventsGone):
        await store.read_events("t", after_seq=3)
    assert [e.seq for e in await store.read_events("t", after_seq=4)] == [5]


async def test_seq_continues_after_a_prune(store: Store) -> None:
    run_id = await _thread_with_old_finished_run(store, "t", 4)
    await store.prune(timedelta(days=30))
    assert [e.seq for e in await store.append([new_event("t", run_id)])] == [5]


async def test_prune_keeps_recent_events_and_unfinished_runs(store: Store) -> None:
    await store.create_thread("t", "alice")
    done = await store.create_run(new_run("t", status="completed"))
    live = await store.create_run(new_run("t", status="running"))
    old = utcnow() - timedelta(days=40)
    await store.append([new_event("t", done.run_id, ts=old) for _ in range(3)])
    await store.append([new_event("t", live.run_id, ts=old)])  # seq 4 blocks the prefix
    await store.append([new_event("t", done.run_id, ts=old) for _ in range(3)])
    await store.create_thread("fresh", "alice")
    fresh = await store.create_run(new_run("fresh", status="completed"))
    await store.append([new_event("fresh", fresh.run_id) for _ in range(3)])

    result = await store.prune(timedelta(days=30))

    assert (result.events, result.threads) == (3, 1)
    assert [e.seq for e in await store.read_events("t", after_seq=3)] == [4, 5, 6, 7]
    assert len(await store.read_events("fresh")) == 3


async def test_prune_of_empty_store_removes_nothing(store: Store) -> None:
    await store.create_thread("t", "alice")
    assert (await store.prune(timedelta(0))).events == 0
