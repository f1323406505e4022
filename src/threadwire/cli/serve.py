"""CLI commands: `threadwire serve` (run a node) and `threadwire token` (print a token)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from threadwire.config import Settings
from threadwire.gateway.auth import DEFAULT_TTL, issue_token
from threadwire.ids import InvalidIdError

DEMO_USER = "demo"


def settings_from_options(
    *,
    host: str | None = None,
    port: int | None = None,
    database_url: str | None = None,
    bus_url: str | None = None,
    node_id: str | None = None,
    agents: list[str] | None = None,
    id_formats: str | None = None,
    max_concurrent_runs: int | None = None,
    max_runs_per_user: int | None = None,
    run_timeout: float | None = None,
    max_frame_bytes: int | None = None,
    ws_queue_size: int | None = None,
    shutdown_grace: float | None = None,
    trace_url: str | None = None,
) -> Settings:
    """Defaults, then `THREADWIRE_*` variables, then the flags that were given."""
    formats = None
    if id_formats is not None:
        formats = tuple(p.strip() for p in id_formats.split(",") if p.strip())
    return Settings.from_env(
        host=host,
        port=port,
        database_url=database_url,
        bus_url=bus_url,
        node_id=node_id,
        agents=tuple(agents) if agents else None,
        id_formats=formats,
        max_concurrent_runs=max_concurrent_runs,
        max_runs_per_user=max_runs_per_user,
        run_timeout=run_timeout,
        max_frame_bytes=max_frame_bytes,
        ws_queue_size=ws_queue_size,
        shutdown_grace=shutdown_grace,
        trace_url=trace_url,
    )


def demo_banner(settings: Settings, port: int, token: str) -> str:
    """What `--print-demo-token` prints: where to point a browser, and a ready token."""
    host = settings.host if settings.host not in {"0.0.0.0", "::", ""} else "127.0.0.1"
    base = f"http://{host}:{port}"
    return "\n".join(
        [
            f"threadwire is serving on {base}",
            f"  open in a browser: {base}/#token={token}",
            f"  API docs:          {base}/docs",
            f"  token for user {DEMO_USER!r} (valid {DEFAULT_TTL // 3600} h):",
            token,
        ]
    )


async def run_server(settings: Settings, *, print_demo_token: bool = False) -> None:
    """Serve until SIGTERM or SIGINT, draining as protocol spec 3 asks."""
    from threadwire.gateway import create_app
    from threadwire.gateway.logs import configure_logging
    from threadwire.gateway.node import Gateway
    from threadwire.gateway.server import GatewayServer, settle_gc, uvicorn_config

    configure_logging(settings.log_level, json_lines=settings.log_json)
    app = create_app(settings)
    gateway: Gateway = app.state.gateway
    server = GatewayServer(uvicorn_config(app, gateway), gateway)

    async def announce() -> None:
        await server.started_event.wait()
        settle_gc()
        if print_demo_token:
            token = issue_token(gateway.secret, DEMO_USER)
            print(demo_banner(settings, server.bound_port, token), flush=True)

    announcer = asyncio.create_task(announce())
    try:
        await server.serve()
    finally:
        announcer.cancel()
    if not server.started:
        raise SystemExit(3)


def register(app: typer.Typer) -> None:
    """Attach `serve` and `token` to the main app."""

    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="address to listen on [127.0.0.1]")] = None,
        port: Annotated[int | None, typer.Option(help="port to listen on [8000]")] = None,
        database_url: Annotated[
            str | None,
            typer.Option(help="store URL [sqlite+aiosqlite:///./threadwire.db]"),
        ] = None,
        bus_url: Annotated[
            str | None, typer.Option(help="redis://... for cluster mode; absent: single node")
        ] = None,
        node_id: Annotated[
            str | None,
            typer.Option(help="this node's ID in a cluster, unique per live node [generated]"),
        ] = None,
        agent: Annotated[
            list[str] | None,
            typer.Option(help="register an agent, module:callable (repeatable)"),
        ] = None,
        id_formats: Annotated[
            str | None,
            typer.Option(help="run-ID formats accepted, comma separated (canonical always)"),
        ] = None,
        max_concurrent_runs: Annotated[int | None, typer.Option(help="[64]")] = None,
        max_runs_per_user: Annotated[int | None, typer.Option(help="[8]")] = None,
        run_timeout: Annotated[float | None, typer.Option(help="seconds [600]")] = None,
        max_frame_bytes: Annotated[
            int | None, typer.Option(help="largest client WebSocket message [65536]")
        ] = None,
        ws_queue_size: Annotated[
            int | None, typer.Option(help="events queued per connection before 4008 [1000]")
        ] = None,
        shutdown_grace: Annotated[
            float | None, typer.Option(help="seconds runs get to finish on shutdown [10]")
        ] = None,
        trace_url: Annotated[
            str | None,
            typer.Option(help="export traces to ClickHouse: chdb:///DIR or clickhouse://HOST/DB"),
        ] = None,
        print_demo_token: Annotated[
            bool, typer.Option(help="print a browser URL and a token for user 'demo'")
        ] = False,
    ) -> None:
        """Run a threadwire node: HTTP API, WebSocket and SSE delivery, agent runs."""
        settings = settings_from_options(
            host=host,
            port=port,
            database_url=database_url,
            bus_url=bus_url,
            node_id=node_id,
            agents=agent,
            id_formats=id_formats,
            max_concurrent_runs=max_concurrent_runs,
            max_runs_per_user=max_runs_per_user,
            run_timeout=run_timeout,
            max_frame_bytes=max_frame_bytes,
            ws_queue_size=ws_queue_size,
            shutdown_grace=shutdown_grace,
            trace_url=trace_url,
        )
        from threadwire.gateway.node import resolve_node_id
        from threadwire.gateway.server import run_event_loop

        try:
            resolve_node_id(settings.node_id, clustered=settings.bus_url is not None)
        except ValueError as exc:
            typer.echo(f"--node-id: {exc}", err=True)
            raise typer.Exit(2) from exc

        run_event_loop(run_server(settings, print_demo_token=print_demo_token))

    @app.command()
    def token(
        user: Annotated[str | None, typer.Argument(help="the user the token speaks for")] = None,
        service: Annotated[
            str | None, typer.Option(help="issue a service token (events:write) for NAME")
        ] = None,
        ttl: Annotated[
            int, typer.Option(help="seconds until the token expires", min=1)
        ] = DEFAULT_TTL,
    ) -> None:
        """Print a signed token (alone, on one line) for USER, or for --service NAME."""
        if (user is None) == (service is None):
            typer.echo("give a USER or --service NAME (one of them)", err=True)
            raise typer.Exit(2)
        subject = service if service is not None else user
        assert subject is not None
        secret = Settings.from_env().resolve_jwt_secret()
        try:
            value = issue_token(secret, subject, ttl=ttl, service=service is not None)
        except InvalidIdError as exc:
            typer.echo(f"invalid name: {exc}", err=True)
            raise typer.Exit(2) from exc
        sys.stdout.write(value + "\n")
