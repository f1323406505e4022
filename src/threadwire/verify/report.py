"""The verification report: a dataclass the CLI prints and writes as JSON.

`failures` lists every reason the run failed; `ok` is true when there is none. Lost,
duplicated, misrouted, out-of-order, unsolicited and corrupted deliveries all fail a
run, as do problems found in the store's own record and a deployment that delivered
nothing at all.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from threadwire.verify.faults import Fault
from threadwire.verify.ledger import Tally


@dataclass(slots=True)
class FormRate:
    """Delivery of the events of one run-ID form (`canonical`, `legacy_run`, ...)."""

    form: str
    runs: int = 0
    events: int = 0
    """Events of this form: those stored, plus any the deployment refused."""
    refused: int = 0
    expected: int = 0
    """Deliveries owed: each event times the subscribers following its thread."""
    delivered: int = 0

    @property
    def rate(self) -> float | None:
        """Share of owed deliveries made (None when none were owed)."""
        return self.delivered / self.expected if self.expected else None


@dataclass(slots=True)
class Latency:
    """Percentiles of live delivery latency (event `ts` to receipt), milliseconds."""

    count: int = 0
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, samples: list[float], count: int) -> Latency:
        """Nearest-rank percentiles of `samples` (a reservoir of `count` values)."""
        if not samples:
            return cls(count)
        ordered = sorted(samples)

        def rank(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

        return cls(count, rank(0.50), rank(0.90), rank(0.99), round(ordered[-1], 1))


@dataclass(slots=True)
class Report:
    """Everything a verification run found."""

    target: list[str]
    spawned: int
    chaos: str
    started_at: str
    elapsed_s: float
    users: int
    threads: int
    subscribers: int
    runs: dict[str, int]
    """Runs by outcome: completed, interrupted (ended by a node fault), failed, ..."""
    events_stored: int
    tally: Tally
    latency_ms: Latency
    connections: dict[str, int]
    """lagging_closes, reconnects, drops, rewinds, slow_sessions, connect_failures, ..."""
    spy: dict[str, int]
    forms: list[FormRate]
    faults: list[Fault] = field(default_factory=list)
    store_problems: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    caught_up: bool = True

    @property
    def success_rate(self) -> float | None:
        """Share of owed deliveries made correctly (None when none were owed)."""
        t = self.tally
        return t.delivered / t.expected if t.expected else None

    @property
    def failures(self) -> list[str]:
        """Why this run failed; empty when it passed."""
        t = self.tally
        out = [
            f"{n} {what}"
            for n, what in (
                (t.lost, "lost"),
                (t.duplicated, "duplicated"),
                (t.misrouted, "misrouted"),
                (t.out_of_order, "out of order"),
                (t.unsolicited, "unsolicited"),
                (t.corrupted, "corrupted"),
                (self.connections.get("refused", 0), "subscriptions refused"),
                (self.spy.get("breaches", 0), "spy subscriptions accepted"),
                (self.spy.get("events", 0), "events seen by the spy"),
                (sum(f.refused for f in self.forms), "ingested events refused"),
            )
            if n
        ]
        if self.spy.get("expected", 0) and not self.spy.get("refusals", 0):
            out.append("the spy was never refused")
        out.extend(f"store: {p}" for p in self.store_problems)
        out.extend(f"fault {f.kind} {f.target}: {f.error}" for f in self.faults if f.error)
        if t.expected == 0:
            out.append("no events were owed: the workload stored nothing")
        return out

    @property
    def ok(self) -> bool:
        """No loss, duplicate, misroute or other violation."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with the derived `ok`, `failures`, rates)."""
        body = asdict(self)
        body["ok"] = self.ok
        body["failures"] = self.failures
        body["success_rate"] = self.success_rate
        for form, raw in zip(self.forms, body["forms"], strict=True):
            raw["rate"] = form.rate
        for fault, raw in zip(self.faults, body["faults"], strict=True):
            raw["server_recovery_s"] = fault.server_recovery_s
        return body

    def to_json(self) -> str:
        """The report as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)
