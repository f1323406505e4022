"""Stream modes: what is accepted, and how a run's events become LangGraph parts."""

from __future__ import annotations

from typing import Any

import pytest

from threadwire.events import Event, utcnow
from threadwire.lg.modes import Part, RunView, UnsupportedMode, parse_modes
from threadwire.store import RunRecord

RUN = "thread_t1_run_1764000000000_7f3a9c01"

PARSED: list[tuple[Any, tuple[str, ...]]] = [
    (None, ()),  # not given
    ("", ()),  # httpx sends `stream_mode=` for None
    ("values", ("values",)),  # one mode
    (["custom", "values", "custom"], ("custom", "values")),  # deduplicated, in order
    (['["updates","messages-tuple"]'], ("updates", "messages-tuple")),  # LangGraph's JSON form
    (["messages", ""], ("messages",)),  # empty items ignored
]

REFUSED: list[Any] = [
    "debug",  # a LangGraph mode threadwire does not produce
    ["values", "events"],  # one bad mode spoils the lot
    "[not json",  # a broken JSON array
    '{"values": 1}',  # JSON, but not an array
    [3],  # not a string
]


@pytest.mark.parametrize(("raw", "modes"), PARSED)
def test_parse_modes_accepts(raw: Any, modes: tuple[str, ...]) -> None:
    assert parse_modes(raw) == modes


@pytest.mark.parametrize("raw", REFUSED)
def test_parse_modes_refuses(raw: Any) -> None:
    with pytest.raises(UnsupportedMode):
        parse_modes(raw)


def _run(input: dict[str, Any], agent: str = "demo") -> RunRecord:
    return RunRecord(RUN, "t1", agent, "running", utcnow(), input=input)


def _events(*items: tuple[str, dict[str, Any]]) -> list[Event]:
    return [
        Event(f"evt_{seq}", "t1", RUN, seq, kind, utcnow(), data)
        for seq, (kind, data) in enumerate(items, start=1)
    ]


def _fold(view: RunView, events: list[Event]) -> list[Part]:
    return [part for event in events for part in view.apply(event)]


def test_a_demo_run_folds_into_messages_updates_and_values() -> None:
    view = RunView(_run({"prompt": "hi"}))
    parts = _fold(
        view,
        _events(
            ("run_queued", {}),
            ("agent_started", {}),
            ("agent_thinking", {"text": "hmm"}),
            ("tool_executing", {"tool": "search", "call": 1, "args": {"q": "hi"}}),
            ("tool_completed", {"tool": "search", "call": 1, "result": {"hits": 2}}),
            ("agent_message", {"text": "Hello "}),
            ("agent_message", {"text": "there"}),
            ("agent_completed", {"result": "done"}),
        ),
    )
    by_seq = {seq: [p.event for p in parts if p.seq == seq] for seq in range(1, 9)}
    assert by_seq[1] == by_seq[3] == []  # no derived part of a queued or thinking event
    assert by_seq[2] == ["values"]  # the input state
    assert by_seq[4] == []  # a tool call waits for its AI message to close
    assert by_seq[5] == [
        "messages/metadata", "messages/complete", "messages", "updates",  # the AI tool call
        "messages/metadata", "messages/complete", "messages", "updates",  # the tool result
        "values",
    ]  # fmt: skip
    assert by_seq[6] == ["messages/metadata", "messages/partial", "messages"]
    assert by_seq[7] == ["messages/partial", "messages"]
    assert by_seq[8] == ["updates", "values"]
    final = parts[-1].data
    assert final["result"] == "done"
    assert [(m["type"], m["content"]) for m in final["messages"]] == [
        ("human", "hi"),
        ("ai", ""),
        ("tool", '{"hits": 2}'),
        ("ai", "Hello there"),
    ]
    call = final["messages"][1]["tool_calls"][0]
    assert call["name"] == "search" and final["messages"][2]["tool_call_id"] == call["id"]


def test_the_same_events_give_the_same_parts_and_message_ids() -> None:
    events = _events(
        ("agent_started", {}), ("agent_message", {"text": "a"}), ("agent_completed", {})
    )
    first = _fold(RunView(_run({"prompt": "x"})), events)
    assert first == _fold(RunView(_run({"prompt": "x"})), events)


def test_a_graph_run_takes_its_updates_from_its_graph_update_events() -> None:
    view = RunView(_run({"messages": [{"role": "user", "content": "q"}]}, "react"), graph=True)
    parts = _fold(
        view,
        _events(
            ("agent_message", {"text": "thinking", "message_id": "m1", "node": "agent"}),
            ("graph_update", {"node": "agent", "update": {"messages": ["..."]}}),
            ("tool_executing", {"tool": "t", "call": 1, "call_id": "c1", "message_id": "m1"}),
            ("tool_completed", {"tool": "t", "call": 1, "call_id": "c1", "result": "r"}),
        ),
    )
    updates = [p.data for p in parts if p.event == "updates"]
    assert updates == [{"agent": {"messages": ["..."]}}]
    messages = view.values()["messages"]
    assert [m["id"] for m in messages] == [f"{RUN}-in-0", "m1", f"{RUN}-tool-1"]
    assert messages[1]["tool_calls"][0]["id"] == "c1"  # attached to the streamed message


def test_an_error_is_an_error_part_and_a_cancel_derives_nothing() -> None:
    view = RunView(_run({"prompt": "x"}))
    [error] = view.apply(_events(("agent_error", {"code": "boom", "message": "no"}))[0])
    assert error == Part("error", {"error": "boom", "message": "no"}, 1)  # sent in every mode
    assert view.apply(_events(("run_cancelled", {"reason": "cancelled"}))[0]) == []
