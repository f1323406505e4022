"""Rich rendering of a verification run: the live progress line and the final report."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from threadwire.verify.report import Report
from threadwire.verify.runner import Progress


def progress_view(p: Progress) -> RenderableType:
    """Live progress: phase, a bar of runs started, counters."""
    grid = Table.grid(padding=(0, 1))
    grid.add_row(
        Text(f"{p.phase:<18}", "bold cyan"),
        Text(f"{p.elapsed:6.1f}s"),
        ProgressBar(total=max(p.runs_total, 1), completed=p.runs_started, width=30),
        Text(f"runs {p.runs_started}/{p.runs_total}"),
    )
    grid.add_row(
        "",
        "",
        Text(f"events received {p.events_received}"),
        Text(f"reconnects {p.reconnects}  lagging {p.lagging_closes}  faults {p.faults}"),
    )
    return grid


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.3f}%"


def report_view(report: Report) -> RenderableType:
    """The report as tables: verdict, deliveries, run-ID forms, faults, examples."""
    t = report.tally
    verdict = Text("PASS", "bold green") if report.ok else Text("FAIL", "bold red")
    head = Text.assemble(
        verdict,
        f"  {', '.join(report.target)}  chaos: {report.chaos or 'none'}  ",
        f"{report.elapsed_s:.1f}s",
    )
    deliveries = Table(title="deliveries", show_header=False)
    latency = report.latency_ms
    for name, value in (
        ("events stored", report.events_stored),
        ("deliveries expected", t.expected),
        ("delivered", t.delivered),
        ("success rate", _pct(report.success_rate)),
        ("lost", t.lost),
        ("duplicated", t.duplicated),
        ("out of order", t.out_of_order),
        ("misrouted", t.misrouted + report.spy.get("events", 0)),
        ("unsolicited", t.unsolicited),
        ("corrupted", t.corrupted),
        ("latency p50/p90/p99/max ms", f"{latency.p50}/{latency.p90}/{latency.p99}/{latency.max}"),
        ("runs", ", ".join(f"{k} {v}" for k, v in sorted(report.runs.items()))),
        ("connections", ", ".join(f"{k} {v}" for k, v in report.connections.items())),
        ("spy", ", ".join(f"{k} {v}" for k, v in report.spy.items())),
    ):
        deliveries.add_row(name, str(value))
    forms = Table(title="by run-ID form")
    for column in ("form", "runs", "events", "refused", "deliveries", "delivered", "rate"):
        forms.add_column(column)
    for f in report.forms:
        forms.add_row(
            f.form, str(f.runs), str(f.events), str(f.refused), str(f.expected),
            str(f.delivered), _pct(f.rate),
        )  # fmt: skip
    parts: list[RenderableType] = [head, deliveries, forms]
    if report.faults:
        faults = Table(title="server faults")
        for column in (
            "at s", "fault", "target", "back s", "cut", "resub s",
            "deliveries", "delayed", "max ms", "lost",
        ):  # fmt: skip
            faults.add_column(column)
        for fault in report.faults:
            faults.add_row(
                f"{fault.offset_s:.1f}", fault.kind, fault.target,
                _num(fault.server_recovery_s), str(fault.clients_disconnected),
                _num(fault.client_recovery_s), str(fault.events_in_window),
                str(fault.events_delayed), _num(fault.max_latency_ms), str(fault.lost),
            )  # fmt: skip
        parts.append(faults)
    for title, lines in (
        ("failures", report.failures),
        ("notes", report.notes),
        ("examples", report.examples[:10]),
    ):
        if lines:
            parts.append(Text(f"{title}:\n  " + "\n  ".join(lines)))
    return Group(*parts)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
