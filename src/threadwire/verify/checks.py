"""Ground truth and judgement: the store's events (read back over HTTP) against what
the workload did and what each subscriber received.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, Final

from threadwire.events import parse_ts
from threadwire.ids import InvalidIdError, parse_run_id
from threadwire.verify.faults import Fault
from threadwire.verify.ledger import Examples, Tally, judge
from threadwire.verify.report import FormRate
from threadwire.verify.subscriber import Subscriber
from threadwire.verify.workload import CANONICAL, TERMINAL, Run, run_types

Truth = dict[str, list[dict[str, Any]]]
"""Each thread's stored events, in seq order."""

FAULT_ENDINGS: Final = frozenset({"interrupted", "node_lost"})
"""`agent_error` codes of a run ended by a node that died, not by the run itself."""
FAULT_TAIL: Final = 2.0
"""Seconds after a fault's recovery still counted as its window."""


def check_store(truth: Truth, runs: Sequence[Run], steps: int) -> tuple[list[str], Counter[str]]:
    """Problems in the stored record (gaps in seq, non-canonical IDs, runs whose events
    are not what was sent), and the runs by outcome."""
    problems: list[str] = []
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for thread_id, events in truth.items():
        seqs = [int(e["seq"]) for e in events]
        if seqs != list(range(1, len(seqs) + 1)):
            problems.append(f"thread {thread_id}: seqs are not 1..{len(seqs)} ({seqs[:8]}...)")
        for event in events:
            by_run[event["run_id"]].append(event)
            if not _canonical_of(event["run_id"], thread_id):
                problems.append(f"thread {thread_id} seq {event['seq']}: run_id not canonical")
    outcomes: Counter[str] = Counter()
    for run in runs:
        outcome, problem = _check_run(run, by_run.get(run.run_id or "", []), truth, steps)
        outcomes[outcome] += 1
        if problem:
            problems.append(f"run {run.index} ({run.kind}, {run.run_id}): {problem}")
    known = {r.run_id for r in runs}
    strangers = set(by_run) - known
    if strangers:
        outcomes["unacknowledged"] = len(strangers)
    return problems, outcomes


def _canonical_of(run_id: str, thread_id: str) -> bool:
    try:
        parsed = parse_run_id(run_id)
    except InvalidIdError:
        return False
    return parsed.is_canonical and parsed.thread_id == thread_id


_EARLY: Final = {
    "planned": ("not started", None),  # the load phase overran: noted in the report
    "start_failed": ("start failed", "error"),
    "unfinished": ("unfinished", "did not end within --settle-timeout"),
    "refused": ("refused", None),  # counted against its run-ID form
}
"""Outcomes decided before looking at the store: (outcome, problem; "error": run.error)."""


def _check_run(
    run: Run, events: list[dict[str, Any]], truth: Truth, steps: int
) -> tuple[str, str | None]:
    """The run's outcome and what is wrong with its stored events, if anything."""
    early = _EARLY.get(run.status)
    if early is not None:
        return early[0], run.error if early[1] == "error" else early[1]
    types = [e["type"] for e in events]
    if not types:
        return "missing", "no stored events"
    if types[0] != "run_queued" or types[-1] not in TERMINAL:
        return "malformed", f"stored types run {types[0]} ... {types[-1]}"
    if sum(t in TERMINAL for t in types) != 1:
        return "malformed", "more than one terminal event"
    if run.kind != CANONICAL:
        problem = _check_ingested(run, events, truth)
        if problem is None and types != run_types(steps):
            problem = f"stored types differ from those sent ({len(types)} events)"
        return "completed", problem
    if types[-1] == "agent_completed":
        if types != run_types(steps):
            return "malformed", f"{len(types)} events, a demo run of {steps} steps has " + str(
                len(run_types(steps))
            )
        return "completed", None
    code = events[-1].get("data", {}).get("code")
    if types[-1] == "agent_error" and code in FAULT_ENDINGS:
        return "interrupted", None
    return "failed", f"ended with {types[-1]} ({code})"


def _check_ingested(run: Run, events: list[dict[str, Any]], truth: Truth) -> str | None:
    by_seq = {int(e["seq"]): e for e in truth.get(run.thread_id, [])}
    for answer in run.accepted:
        stored = by_seq.get(int(answer["seq"]))
        if stored is None or stored["event_id"] != answer["event_id"]:
            return f"accepted event at seq {answer['seq']} is not in the store"
        if answer["thread_id"] != run.thread_id:
            return f"routed to thread {answer['thread_id']}, sent for {run.thread_id}"
    for event in events:
        if event.get("data", {}).get("legacy_run_id") != run.legacy_id:
            return f"seq {event['seq']} lacks data.legacy_run_id = {run.legacy_id}"
    return None


def judge_all(
    subscribers: Sequence[Subscriber], truth: Truth, runs: Sequence[Run], examples: Examples
) -> tuple[Tally, list[FormRate], list[tuple[str, int]]]:
    """Total tally, delivery by run-ID form, and every (thread, seq) lost anywhere."""
    total = Tally()
    form_of = {r.run_id: r.kind for r in runs if r.run_id}
    forms: dict[str, FormRate] = {}
    for run in runs:
        rate = forms.setdefault(run.kind, FormRate(run.kind))
        rate.runs += 1
        rate.events += len(run.refused)
        rate.refused += len(run.refused)
    for events in truth.values():
        for event in events:
            kind = form_of.get(event["run_id"], CANONICAL)
            forms.setdefault(kind, FormRate(kind)).events += 1
    followers: Counter[str] = Counter()
    lost_at: list[tuple[str, int]] = []
    for sub in subscribers:
        total.misrouted += sub.counters.misrouted
        total.unsolicited += sub.counters.unsolicited
        for thread_id, ledger in sub.ledgers.items():
            followers[thread_id] += 1
            events = truth.get(thread_id, [])
            tally, lost = judge(ledger, events, examples, sub.name)
            total.add(tally)
            lost_at.extend((thread_id, seq) for seq in lost)
            for event in events:
                rate = forms[form_of.get(event["run_id"], CANONICAL)]
                rate.expected += 1
                seq = int(event["seq"])
                got = ledger.received.get(seq)
                if seq not in lost and got is not None and got.event_id == event["event_id"]:
                    rate.delivered += 1
    for run in runs:
        if run.refused:
            rate = forms[run.kind]
            rate.expected += len(run.refused) * followers[run.thread_id]
    order = {CANONICAL: 0}
    return total, sorted(forms.values(), key=lambda f: (order.get(f.form, 1), f.form)), lost_at


def fault_impact(
    faults: Sequence[Fault],
    subscribers: Sequence[Subscriber],
    truth: Truth,
    lost_at: Sequence[tuple[str, int]],
    delay_threshold_ms: float,
) -> None:
    """Fill in what each fault did to delivery: disconnects, recovery, delay, loss."""
    ts_of = {
        (thread_id, int(e["seq"])): parse_ts(e["ts"]).timestamp()
        for thread_id, events in truth.items()
        for e in events
    }
    ordered = sorted(faults, key=lambda f: f.at)
    for i, fault in enumerate(ordered):
        following = ordered[i + 1] if i + 1 < len(ordered) else None
        start = fault.at
        end = (fault.back_at or fault.at) + FAULT_TAIL
        if following is not None:
            end = min(end, following.at)  # what comes after the next fault is its doing
        recoveries = []
        for sub in subscribers:
            for d in sub.counters.disconnects:
                if start <= d.at <= end and d.cause in ("server", "lagging", "connect"):
                    fault.clients_disconnected += 1
                    if d.recovered_at is not None:
                        recoveries.append(d.recovered_at - start)
                    else:
                        fault.notes.append(f"{sub.name} had not resubscribed by the end")
            for thread_id, ledger in sub.ledgers.items():
                for seq, got in ledger.received.items():
                    ts = ts_of.get((thread_id, seq))
                    if ts is None or not start <= ts <= end:
                        continue
                    ms = (got.received_at - ts) * 1000
                    fault.events_in_window += 1
                    fault.events_delayed += ms > delay_threshold_ms
                    fault.max_latency_ms = max(fault.max_latency_ms or 0.0, round(ms, 1))
        fault.client_recovery_s = round(max(recoveries), 3) if recoveries else None
        fault.lost = sum(1 for key in lost_at if start <= ts_of.get(key, 0.0) <= end)
