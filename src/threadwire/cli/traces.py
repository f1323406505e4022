"""CLI commands: `threadwire traces report` and `threadwire traces backfill`."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from threadwire.config import Settings

if TYPE_CHECKING:
    from threadwire.traces.backfill import BackfillPlan, BackfillResult
    from threadwire.traces.report import Percentiles, TraceReport

traces_app = typer.Typer(
    help="Trace analytics in ClickHouse: reports, and backfill from the store.",
    no_args_is_help=True,
)

TraceUrl = Annotated[
    str | None,
    typer.Option(
        "--trace-url",
        help="chdb:///path or clickhouse://host:8123/db; default THREADWIRE_TRACE_URL.",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    """Attach `threadwire traces` to the main app."""
    app.add_typer(traces_app, name="traces")


def _fail(message: str) -> typer.Exit:
    typer.echo(f"threadwire traces: {message}", err=True)
    return typer.Exit(2)


def _trace_url(trace_url: str | None) -> str:
    url = trace_url or Settings.from_env().trace_url
    if not url:
        raise _fail("no trace target: pass --trace-url or set THREADWIRE_TRACE_URL")
    return url


async def run_report(url: str, since: timedelta | None) -> TraceReport:
    """Open the target at `url` and build the report."""
    from threadwire.traces.report import build_report
    from threadwire.traces.target import create_trace_target

    target = create_trace_target(url)
    await target.open()
    try:
        return await build_report(target, since=since)
    finally:
        await target.close()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _pcts(p: Percentiles) -> list[str]:
    return [_ms(p.p50), _ms(p.p95), _ms(p.p99)]


def render_report(report: TraceReport, console: Console) -> None:
    """The report as two Rich tables: agents, then tools."""
    window = f"since {report.since:%Y-%m-%d %H:%M:%S} UTC" if report.since else "all time"
    agents = Table(title=f"Agents ({window}, {report.target})", title_justify="left")
    for name in ("agent", "runs", "failed", "cancelled", "error rate"):
        agents.add_column(name, justify="left" if name == "agent" else "right")
    for name in ("p50 ms", "p95 ms", "p99 ms", "events/run", "legacy events", "legacy runs"):
        agents.add_column(name, justify="right")
    for a in report.agents:
        per_run = "-" if a.events_per_run is None else f"{a.events_per_run:.1f}"
        agents.add_row(
            a.agent or "(unknown)",
            str(a.runs),
            str(a.failed),
            str(a.cancelled),
            _pct(a.error_rate),
            *_pcts(a.duration_ms),
            per_run,
            _pct(a.legacy_event_share),
            _pct(a.legacy_run_share),
        )
    console.print(agents)
    tools = Table(title="Tools", title_justify="left")
    for name in ("agent", "tool", "calls", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms"):
        tools.add_column(name, justify="left" if name in ("agent", "tool") else "right")
    for t in report.tools:
        tools.add_row(
            t.agent or "(unknown)",
            t.tool,
            str(t.calls),
            str(t.errors),
            _pct(t.error_rate),
            *_pcts(t.latency_ms),
        )
    console.print(tools)


@traces_app.command("report")
def report_command(
    since: Annotated[
        str | None,
        typer.Option("--since", help="Window, e.g. 15m, 1h, 7d (default: all time)."),
    ] = None,
    output: Annotated[
        Literal["table", "json"], typer.Option("--format", help="table or json.")
    ] = "table",
    trace_url: TraceUrl = None,
) -> None:
    """Per agent: run duration p50/p95/p99, errors, events per run, legacy-ID share;
    per tool: latency percentiles and error rate."""
    from threadwire.traces.report import parse_since
    from threadwire.traces.target import TraceTargetError

    window = None
    if since is not None:
        try:
            window = parse_since(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from exc
    try:
        report = asyncio.run(run_report(_trace_url(trace_url), window))
    except TraceTargetError as exc:
        raise _fail(str(exc)) from exc
    if output == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        render_report(report, Console())


async def run_backfill(
    database_url: str,
    trace_url: str,
    *,
    restart: bool = False,
    console: Console | None = None,
) -> tuple[BackfillPlan, BackfillResult]:
    """Backfill the store at `database_url` into `trace_url`, with a Rich progress bar."""
    from threadwire.traces.backfill import Backfill
    from threadwire.traces.target import create_trace_target

    target = create_trace_target(trace_url)
    await target.open()
    try:
        job = Backfill(database_url, target, restart=restart)
        plan = await job.plan()
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("events"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console or Console(stderr=True)) as bar:
            task = bar.add_task(
                "backfill", total=plan.total_events, completed=plan.done_events
            )
            result = await job.run(lambda n: bar.advance(task, n))
        return plan, result
    finally:
        await target.close()


@traces_app.command("backfill")
def backfill_command(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="The store to read; default THREADWIRE_DATABASE_URL.",
            show_default=False,
        ),
    ] = None,
    trace_url: TraceUrl = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Ignore the checkpoint and start over.")
    ] = False,
) -> None:
    """Copy the store's runs and events into the trace tables; resumable (a checkpoint
    per store URL is kept in the target), safe to run beside a live sink."""
    from sqlalchemy.exc import SQLAlchemyError

    from threadwire.traces.backfill import BackfillError
    from threadwire.traces.target import TraceTargetError

    url = database_url or Settings.from_env().database_url
    try:
        plan, result = asyncio.run(run_backfill(url, _trace_url(trace_url), restart=restart))
    except (BackfillError, TraceTargetError, SQLAlchemyError, OSError, ValueError) as exc:
        raise _fail(str(exc).splitlines()[0]) from exc
    resumed = f" (resumed after thread {plan.resumed_after!r})" if plan.resumed_after else ""
    typer.echo(
        f"backfilled {result.threads} threads, {result.events} events, {result.runs} runs, "
        f"{result.tool_calls} tool calls from {result.source}{resumed}"
    )
