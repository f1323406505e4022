"""The frame-by-frame judgement of one subscriber's thread (threadwire.verify.ledger)."""

from __future__ import annotations

import random

import pytest

from threadwire.verify.ledger import Examples, Latencies, ThreadLedger, judge

TS = "2026-01-01T00:00:00.000Z"


def event(seq: int, event_id: str | None = None) -> dict[str, object]:
    return {
        "seq": seq,
        "event_id": event_id or f"evt_{seq}",
        "run_id": "thread_t_run_1_0badf00d",
        "type": "agent_message",
        "thread_id": "t",
        "ts": TS,
    }


def play(script: list[tuple[str, int]]) -> ThreadLedger:
    """("sub", after_seq) opens a session (head 0), ("ev", seq) receives, ("close", 0) ends."""
    ledger = ThreadLedger("t")
    lat, examples = Latencies(random.Random(0)), Examples()
    for op, n in script:
        if op == "sub":
            ledger.open(n, 0, 0.0)
        elif op == "ev":
            ledger.event(event(n), 1.0, lat, examples)
        else:
            ledger.close()
    ledger.close()
    return ledger


def counts(script: list[tuple[str, int]], head: int) -> tuple[int, int, int, int]:
    """(delivered, lost, duplicated, out_of_order) against a store holding 1..head."""
    ledger = play(script)
    tally, _ = judge(ledger, [event(s) for s in range(1, head + 1)], Examples(), "sub")
    return tally.delivered, tally.lost, tally.duplicated, tally.out_of_order


def evs(*seqs: int) -> list[tuple[str, int]]:
    return [("ev", s) for s in seqs]


TABLE = [
    # in order, once: perfect
    ([("sub", 0), *evs(1, 2, 3)], 3, (3, 0, 0, 0)),
    # one skipped and never sent: lost
    ([("sub", 0), *evs(1, 3)], 3, (2, 1, 0, 0)),
    # the last one never arrives: lost (never received)
    ([("sub", 0), *evs(1, 2)], 3, (2, 1, 0, 0)),
    # sent twice in one session: duplicate
    ([("sub", 0), *evs(1, 2, 2, 3)], 3, (3, 0, 1, 0)),
    # swapped: one out of order, nothing lost
    ([("sub", 0), *evs(1, 3, 2)], 3, (3, 0, 0, 1)),
    # resumed after a disconnect from the last seq: perfect
    ([("sub", 0), *evs(1, 2), ("close", 0), ("sub", 2), *evs(3)], 3, (3, 0, 0, 0)),
    # resumed at an earlier seq (a rewind): the repeats were asked for, not duplicates
    ([("sub", 0), *evs(1, 2, 3), ("sub", 1), *evs(2, 3)], 3, (3, 0, 0, 0)),
    # a seq at or below after_seq is a duplicate even in a fresh session
    ([("sub", 0), *evs(1, 2), ("close", 0), ("sub", 2), *evs(2, 3)], 3, (3, 0, 1, 0)),
    # a gap the session never filled stays lost, even if a rewind later fetched it
    ([("sub", 0), *evs(1, 3), ("close", 0), ("sub", 0), *evs(1, 2, 3)], 3, (2, 1, 0, 0)),
    # a session that ended without the rest is no gap: the next one delivers it
    ([("sub", 0), *evs(1), ("close", 0), ("sub", 1), *evs(2, 3)], 3, (3, 0, 0, 0)),
]


@pytest.mark.parametrize(("script", "head", "expected"), TABLE)
def test_sessions_are_judged_by_the_protocol(
    script: list[tuple[str, int]], head: int, expected: tuple[int, int, int, int]
) -> None:
    assert counts(script, head) == expected


def test_an_event_unlike_the_stored_one_is_corrupted() -> None:
    ledger = ThreadLedger("t")
    ledger.open(0, 0, 0.0)
    ledger.event(event(1, "evt_forged"), 1.0, Latencies(random.Random(0)), Examples())
    tally, lost = judge(ledger, [event(1)], Examples(), "sub")
    assert (tally.corrupted, tally.delivered, lost) == (1, 0, set())


def test_caught_up_needs_the_head_in_the_live_session_and_no_open_gap() -> None:
    ledger = ThreadLedger("t")
    lat, ex = Latencies(random.Random(0)), Examples()
    assert not ledger.caught_up(0)  # no session yet
    ledger.open(0, 0, 0.0)
    ledger.event(event(2), 1.0, lat, ex)
    assert not ledger.caught_up(2)  # seq 1 is still missing
    ledger.event(event(1), 1.0, lat, ex)
    assert ledger.caught_up(2)


def test_latency_is_measured_only_for_live_events() -> None:
    ledger = ThreadLedger("t")
    lat = Latencies(random.Random(0))
    ledger.open(0, 1, 0.0)  # seq 1 was stored before the subscription: a replay
    ledger.event(event(1), 1767225600.5, lat, Examples())
    ledger.event(event(2), 1767225600.5, lat, Examples())
    assert lat.count == 1 and lat.samples == [500.0]


def test_the_latency_reservoir_keeps_its_size() -> None:
    lat = Latencies(random.Random(0), capacity=10)
    for i in range(1000):
        lat.add(float(i))
    assert lat.count == 1000 and len(lat.samples) == 10
