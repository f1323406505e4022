"""RunTracker: events become event, tool-call and run rows by the documented rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from threadwire.events import Event
from threadwire.store.base import RunRecord
from threadwire.traces.rows import RunTracker, error_text
from threadwire.traces.schema import EVENTS, RUNS, TOOL_CALLS

T0 = datetime(2026, 11, 24, 22, 0, 0, tzinfo=UTC)
RUN = "thread_abc_run_1764000000000_7f3a9c01"


class Script:
    """Builds one run's events with increasing seq, at given millisecond offsets."""

    def __init__(self, run_id: str = RUN, thread_id: str = "abc") -> None:
        self.run_id, self.thread_id, self.seq = run_id, thread_id, 0

    def __call__(self, type_: str, ms: int, **data: Any) -> Event:
        self.seq += 1
        ts = T0 + timedelta(milliseconds=ms)
        return Event(f"evt_{self.seq}", self.thread_id, self.run_id, self.seq, type_, ts, data)


def named(table: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(table.column_names, row, strict=True))


def test_a_run_row_spans_agent_started_to_the_terminal_event() -> None:
    e = Script()
    rows = RunTracker().rows(
        [
            e("run_queued", 0, agent="demo"),
            e("agent_started", 40, agent="demo"),
            e("agent_message", 90, text="hi"),
            e("agent_error", 1040, code="timeout", message="too slow"),
        ]
    )
    assert len(rows.events) == 4 and len(rows.runs) == 1
    run = named(RUNS, rows.runs[0])
    assert run["agent"] == "demo" and run["status"] == "failed" and run["is_error"] == 1
    assert run["created_at"] == T0 and run["started_at"] == T0 + timedelta(milliseconds=40)
    assert run["duration_ms"] == 1000.0 and run["queue_ms"] == 40.0
    assert run["error"] == "timeout"  # the code, for grouping
    assert [named(EVENTS, r)["is_error"] for r in rows.events] == [0, 0, 0, 1]


def test_a_run_cancelled_while_queued_has_no_duration() -> None:
    e = Script()
    rows = RunTracker().rows([e("run_queued", 0, agent="demo"), e("run_cancelled", 500)])
    run = named(RUNS, rows.runs[0])
    assert run["status"] == "cancelled" and run["started_at"] is None
    assert run["duration_ms"] is None and run["is_error"] == 0


@pytest.mark.parametrize(
    ("executing", "completed", "expected_ms"),
    [
        # the runtime's call index pairs them; duration_ms is taken as reported
        ({"call": 1}, {"call": 1, "duration_ms": 12.5}, 12.5),
        # no duration_ms: the time since the matching tool_executing
        ({"call": 1}, {"call": 1}, 30.0),
        # a producer's call_id pairs them
        ({"call_id": "c1"}, {"call_id": "c1"}, 30.0),
        # a call_id on the executing side only: paired by tool name
        ({"call_id": "c1"}, {}, 30.0),
        # nothing to pair with and no duration_ms: unknown
        (None, {}, None),
    ],
)
def test_tool_call_latency(
    executing: dict[str, Any] | None, completed: dict[str, Any], expected_ms: float | None
) -> None:
    e = Script()
    events = [e("run_queued", 0, agent="a"), e("agent_started", 5, agent="a")]
    if executing is not None:
        events.append(e("tool_executing", 10, tool="search", **executing))
    events.append(e("tool_completed", 40, tool="search", **completed))
    call = named(TOOL_CALLS, RunTracker().rows(events).tool_calls[0])
    assert call["duration_ms"] == expected_ms and call["tool"] == "search" and call["agent"] == "a"


def test_interleaved_calls_of_one_tool_pair_by_call_index() -> None:
    e = Script()
    rows = RunTracker().rows(
        [
            e("tool_executing", 0, tool="fetch", call=1),
            e("tool_executing", 10, tool="fetch", call=2),
            e("tool_completed", 15, tool="fetch", call=2),
            e("tool_completed", 100, tool="fetch", call=1),
        ]
    )
    assert [named(TOOL_CALLS, r)["duration_ms"] for r in rows.tool_calls] == [5.0, 100.0]


def test_a_failed_tool_call_is_an_error_with_its_text() -> None:
    e = Script()
    rows = RunTracker().rows(
        [e("tool_completed", 5, tool="x", duration_ms=3, error={"code": "rate_limited"})]
    )
    call = named(TOOL_CALLS, rows.tool_calls[0])
    assert call["is_error"] == 1 and call["error"] == "rate_limited"
    assert named(EVENTS, rows.events[0])["is_error"] == 1


def test_legacy_events_flag_their_event_and_their_run() -> None:
    e = Script()
    rows = RunTracker().rows(
        [
            e("run_queued", 0, agent="w", legacy_run_id="run_abc_7f3a9c01"),
            e("agent_started", 1, agent="w"),
            e("agent_completed", 9),
        ]
    )
    flags = [named(EVENTS, r)["legacy_id"] for r in rows.events]
    assert flags == [1, 0, 0]
    assert named(EVENTS, rows.events[0])["legacy_run_id"] == "run_abc_7f3a9c01"
    assert named(RUNS, rows.runs[0])["legacy_id"] == 1


def test_a_run_record_names_the_agent_and_start_of_a_run_met_midway() -> None:
    tracker = RunTracker()
    started = T0 - timedelta(seconds=2)
    tracker.note_run(RunRecord(RUN, "abc", "rec", "running", created_at=T0 - timedelta(seconds=3),
                               started_at=started))
    e = Script()
    e.seq = 40
    assert tracker.unknown_runs([e("agent_message", 0)]) == set()
    rows = tracker.rows([e("agent_message", 0), e("agent_completed", 1000)])
    run = named(RUNS, rows.runs[0])
    assert run["agent"] == "rec" and run["started_at"] == started
    assert run["duration_ms"] == 3000.0


def test_unknown_runs_are_those_no_event_or_record_names() -> None:
    tracker = RunTracker()
    a, b = Script("thread_a_run_1_00000001", "a"), Script("thread_b_run_1_00000002", "b")
    assert tracker.unknown_runs([a("run_queued", 0, agent="x"), b("agent_message", 0)]) == {
        b.run_id
    }


def test_open_runs_are_bounded() -> None:
    tracker = RunTracker(max_open_runs=2)
    for n in range(5):
        tracker.rows([Script(f"thread_t_run_1_{n:08x}", "t")("run_queued", 0, agent="a")])
    assert tracker.evicted == 3


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("boom", "boom"),
        ({"code": "c", "message": "m"}, "c"),
        ({"message": "m"}, "m"),
        ({"detail": 1}, '{"detail": 1}'),
        ("x" * 5000, "x" * 1000),  # cut
    ],
)
def test_error_text(value: object, text: str) -> None:
    assert error_text(value) == text
