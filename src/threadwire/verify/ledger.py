"""What one subscriber received, judged frame by frame against the protocol's promises.

A *session* is one subscription of one thread on one connection: it starts at the
`subscribed` answer (after which the server owes exactly `after_seq+1, after_seq+2,
...`) and ends when the connection closes or the thread is subscribed again. Within
a session:

- a seq already received, or at or below `after_seq`, is a **duplicate**;
- a seq above the next one owed leaves a gap; a gap filled later in the same session
  is **out of order**, one never filled is **lost** (the server skipped it);

and over the whole run every stored event of the thread must have arrived at least
once (else **lost**). Events of a thread the user does not own are **misrouted**; of
an owned thread this connection never subscribed, **unsolicited**. Latency is taken
on the first receipt of a *live* event (seq above the session's `head_seq`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any, Final

MAX_EXAMPLES: Final = 20
LATENCY_SAMPLES: Final = 200_000


@dataclass(slots=True)
class Receipt:
    """The first time a subscriber got one seq of a thread."""

    event_id: str
    run_id: str
    type: str
    received_at: float
    """Wall-clock seconds (time.time()) when the frame was read."""


@dataclass(slots=True)
class Session:
    """One subscription of one thread on one connection."""

    after_seq: int
    head_seq: int = 0
    started_at: float = 0.0
    high: int = 0
    seen: set[int] = field(default_factory=set)
    missing: set[int] = field(default_factory=set)


@dataclass(slots=True)
class Examples:
    """A few violations, described, for the report (bounded)."""

    items: list[str] = field(default_factory=list)

    def add(self, text: str) -> None:
        if len(self.items) < MAX_EXAMPLES:
            self.items.append(text)


class Latencies:
    """Reservoir of latency samples in milliseconds (bounded memory for long soaks)."""

    def __init__(self, rng: random.Random, capacity: int = LATENCY_SAMPLES) -> None:
        self.samples: list[float] = []
        self.count = 0
        self._rng = rng
        self._capacity = capacity

    def add(self, ms: float) -> None:
        self.count += 1
        if len(self.samples) < self._capacity:
            self.samples.append(ms)
            return
        slot = self._rng.randrange(self.count)
        if slot < self._capacity:
            self.samples[slot] = ms


class ThreadLedger:
    """One subscriber's record of one thread."""

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id
        self.received: dict[int, Receipt] = {}
        self.extra: list[tuple[int, str]] = []
        """(seq, event_id) of every later receipt, checked against the store too."""
        self.session: Session | None = None
        self.skipped: set[int] = set()
        self.duplicates = 0
        self.out_of_order = 0
        self.sessions = 0

    @property
    def last(self) -> int:
        """The highest seq received so far (where a plain resume starts)."""
        return max(self.received, default=0)

    def open(self, after_seq: int, head_seq: int, now: float) -> None:
        """A `subscribed` answer: end the previous session, start a new one."""
        self.close()
        self.sessions += 1
        self.session = Session(after_seq, head_seq, now, high=after_seq)

    def close(self) -> None:
        """The session ended (connection gone, or subscribed again): gaps left are lost."""
        if self.session is not None:
            self.skipped |= self.session.missing
            self.session = None

    def reached(self, head: int) -> bool:
        """Whether the live session has received up to `head` (gaps or not)."""
        s = self.session
        return s is not None and s.high >= head

    def caught_up(self, head: int) -> bool:
        """Whether the live session has everything up to `head` (and no open gap)."""
        s = self.session
        return s is not None and s.high >= head and not s.missing

    def event(self, ev: dict[str, Any], now: float, lat: Latencies, examples: Examples) -> None:
        """Judge one event frame of this thread."""
        seq = int(ev["seq"])
        s = self.session
        if s is None:
            return  # the caller counts it as unsolicited
        where = f"{self.thread_id} seq {seq}"
        if seq in s.seen or seq <= s.after_seq:
            self.duplicates += 1
            examples.add(f"duplicate: {where} (session after_seq={s.after_seq}, high={s.high})")
        elif seq < s.high:
            s.missing.discard(seq)
            self.out_of_order += 1
            examples.add(f"out of order: {where} arrived after seq {s.high}")
        elif seq > s.high + 1:
            s.missing.update(range(s.high + 1, seq))
            examples.add(f"gap: {where} followed seq {s.high}")
        s.seen.add(seq)
        s.high = max(s.high, seq)
        first = self.received.get(seq)
        if first is None:
            self.received[seq] = Receipt(ev["event_id"], ev["run_id"], ev["type"], now)
            if seq > s.head_seq:
                lat.add(max(0.0, (now - _epoch(ev["ts"])) * 1000))
        else:
            self.extra.append((seq, ev["event_id"]))


def _epoch(ts: str) -> float:
    from threadwire.events import parse_ts

    return parse_ts(ts).timestamp()


@dataclass(slots=True)
class Tally:
    """Counts of one subscriber (or of all), for the report."""

    expected: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    misrouted: int = 0
    unsolicited: int = 0
    corrupted: int = 0

    def add(self, other: Tally) -> None:
        """Add `other`'s counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def judge(
    ledger: ThreadLedger, truth: list[dict[str, Any]], examples: Examples, who: str
) -> tuple[Tally, set[int]]:
    """Compare a thread's ledger with the stored events; the tally and the lost seqs."""
    tally = Tally(expected=len(truth), duplicated=ledger.duplicates)
    tally.out_of_order = ledger.out_of_order
    by_seq = {int(e["seq"]): e for e in truth}
    lost: set[int] = set()
    for seq, stored in by_seq.items():
        got = ledger.received.get(seq)
        if got is None or seq in ledger.skipped:
            lost.add(seq)
            if got is None:
                examples.add(f"lost: {who} never received {ledger.thread_id} seq {seq}")
            else:
                examples.add(f"lost: {who} had a gap at {ledger.thread_id} seq {seq}")
            continue
        if (got.event_id, got.run_id, got.type) != (
            stored["event_id"],
            stored["run_id"],
            stored["type"],
        ):
            tally.corrupted += 1
            examples.add(f"corrupted: {who} got {ledger.thread_id} seq {seq} unlike the store")
            continue
        tally.delivered += 1
    for seq, event_id in ledger.extra:
        stored_event = by_seq.get(seq)
        if stored_event is not None and stored_event["event_id"] != event_id:
            tally.corrupted += 1
            examples.add(f"corrupted: {who} got another event at {ledger.thread_id} seq {seq}")
    unknown = set(ledger.received) - set(by_seq)
    if unknown:
        tally.corrupted += len(unknown)
        examples.add(f"corrupted: {who} got seqs the store lacks: {sorted(unknown)[:5]}")
    tally.lost = len(lost)
    return tally, lost
