"""CLI command: `threadwire verify`, a load and fault test of any deployment."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from threadwire.verify.config import ConfigError, VerifyConfig, parse_chaos, parse_duration

if TYPE_CHECKING:
    from threadwire.verify.report import Report


def register(app: typer.Typer) -> None:
    """Attach `verify` to the main app."""

    @app.command()
    def verify(
        url: Annotated[
            list[str] | None, typer.Option(help="a node's base URL (repeat for each node)")
        ] = None,
        token_secret: Annotated[
            str | None,
            typer.Option(help="the HS256 secret [THREADWIRE_JWT_SECRET]", show_default=False),
        ] = None,
        users: Annotated[int, typer.Option(help="users, each with its threads")] = 4,
        threads: Annotated[int, typer.Option(help="threads per user")] = 2,
        subscribers: Annotated[int, typer.Option(help="WebSocket subscribers per user")] = 2,
        runs: Annotated[int, typer.Option(help="runs started over --duration")] = 20,
        duration: Annotated[str, typer.Option(help="length of the load phase")] = "10s",
        steps: Annotated[int, typer.Option(help="demo steps per run")] = 3,
        delay_ms: Annotated[int, typer.Option(help="demo tool latency per step")] = 20,
        chaos: Annotated[
            str | None,
            typer.Option(help="faults, e.g. drop=0.01,reconnect=5s,resume=0.2,kill-node=30s"),
        ] = None,
        legacy_share: Annotated[
            float, typer.Option(help="share of runs ingested with legacy run IDs (0 to 1)")
        ] = 0.0,
        legacy_formats: Annotated[
            str | None, typer.Option(help="legacy forms to send [those the node enables]")
        ] = None,
        settle_timeout: Annotated[str, typer.Option(help="time allowed to catch up")] = "30s",
        seed: Annotated[int | None, typer.Option(help="random seed, for a repeatable run")] = None,
        spawn: Annotated[int, typer.Option(help="start N local nodes and test them")] = 0,
        database_url: Annotated[str | None, typer.Option(help="store of spawned nodes")] = None,
        bus_url: Annotated[str | None, typer.Option(help="redis:// bus of spawned nodes")] = None,
        spawn_redis: Annotated[
            bool, typer.Option(help="start a Redis for the spawned nodes (restart-bus needs it)")
        ] = False,
        node_arg: Annotated[
            list[str] | None, typer.Option(help="extra `serve` argument for spawned nodes")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="write the report as JSON here")
        ] = None,
        quiet: Annotated[bool, typer.Option(help="no live progress display")] = False,
    ) -> None:
        """Drive real clients against a deployment, inject faults, and check that every
        event reached the right user, in order, once. Exits 1 on any violation."""
        try:
            config = VerifyConfig(
                urls=tuple(url or ()),
                token_secret=token_secret or os.environ.get("THREADWIRE_JWT_SECRET", ""),
                users=users,
                threads=threads,
                subscribers=subscribers,
                runs=runs,
                duration=parse_duration(duration),
                steps=steps,
                delay_ms=delay_ms,
                chaos=parse_chaos(chaos),
                legacy_share=legacy_share,
                legacy_formats=tuple(legacy_formats.split(",")) if legacy_formats else None,
                settle_timeout=parse_duration(settle_timeout),
                seed=seed,
                spawn=spawn,
                database_url=database_url,
                bus_url=bus_url,
                spawn_redis=spawn_redis,
                node_args=tuple(a for arg in node_arg or () for a in arg.split()),
            )
            config.check()
        except ConfigError as exc:
            typer.echo(f"threadwire verify: {exc}", err=True)
            raise typer.Exit(2) from exc
        report = asyncio.run(_run(config, live=not quiet))
        if json_out is not None:
            json_out.write_text(report.to_json() + "\n")
        raise typer.Exit(0 if report.ok else 1)


async def _run(config: VerifyConfig, *, live: bool) -> Report:
    from rich.console import Console
    from rich.live import Live

    from threadwire.verify.display import progress_view, report_view
    from threadwire.verify.runner import verify

    console = Console(stderr=True)
    if live and console.is_terminal:
        with Live(console=console, refresh_per_second=4, transient=True) as display:
            report = await verify(config, lambda p: display.update(progress_view(p)))
    else:
        report = await verify(config)
    out = Console()
    if not out.is_terminal:
        out = Console(width=120)
    out.print(report_view(report))
    return report
