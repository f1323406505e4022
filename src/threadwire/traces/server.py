"""The server target: a ClickHouse server over HTTP(S) with clickhouse-connect.

`clickhouse://user:password@host:8123/database` (`clickhouses://` for TLS, default
port 8443). Query parameters `connect_timeout`, `send_receive_timeout` (seconds) and
`verify` (`false` to skip TLS verification) pass through to clickhouse-connect.

Inserts name their column types, so no `DESCRIBE` round trip precedes each batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

from threadwire.traces.schema import DEFAULT_DATABASE, check_identifier, schema_statements
from threadwire.traces.target import Row, TraceTargetError, mask_url, require_module

ClientFactory = Callable[[], Any]
"""Makes a connected clickhouse-connect client (tests pass one on the chDB backend)."""


def parse_clickhouse_url(url: str) -> dict[str, Any]:
    """clickhouse-connect `get_client` arguments for a `clickhouse(s)://` URL."""
    parts = urlsplit(url)
    if parts.scheme not in {"clickhouse", "clickhouses"}:
        raise TraceTargetError(f"not a clickhouse URL: {mask_url(url)!r}")
    secure = parts.scheme == "clickhouses"
    if not parts.hostname:
        raise TraceTargetError(f"clickhouse URL {mask_url(url)!r} names no host")
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError as exc:
        raise TraceTargetError(f"clickhouse URL {mask_url(url)!r}: {exc}") from None
    database = parts.path.strip("/") or DEFAULT_DATABASE
    try:
        check_identifier(database)
    except ValueError as exc:
        raise TraceTargetError(str(exc)) from None
    args: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        "secure": secure,
        "username": unquote(parts.username) if parts.username else "default",
        "password": unquote(parts.password) if parts.password else "",
        "database": database,
        "connect_timeout": 10,
        "send_receive_timeout": 60,
        "autogenerate_session_id": False,
    }
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    for key in ("connect_timeout", "send_receive_timeout"):
        if key in options:
            args[key] = float(options.pop(key))
    if "verify" in options:
        args["verify"] = options.pop("verify").lower() not in {"0", "false", "no"}
    if options:
        raise TraceTargetError(
            f"unknown option(s) {sorted(options)} in clickhouse URL {mask_url(url)!r}"
        )
    return args


def _server_version(args: Mapping[str, Any]) -> str | None:
    """The server's version over plain HTTP, to explain a failed connect (best effort)."""
    scheme = "https" if args["secure"] else "http"
    try:
        response = httpx.get(
            f"{scheme}://{args['host']}:{args['port']}/",
            params={"query": "SELECT version()"},
            auth=(args["username"], args["password"]),
            timeout=5,
            verify=args.get("verify", True),
        )
    except httpx.HTTPError:
        return None
    return response.text.strip() if response.status_code == 200 else None


def _command(client: Any, sql: str) -> Any:
    return client.command(sql)


class ClickHouseTarget:
    """`clickhouse(s)://` traces on a ClickHouse server."""

    def __init__(self, url: str, *, client_factory: ClientFactory | None = None) -> None:
        self.url = mask_url(url)
        self._args = parse_clickhouse_url(url)
        self.database: str = self._args["database"]
        if client_factory is None:
            require_module("clickhouse_connect", "clickhouse", "clickhouse")
        self._factory = client_factory or self._connect
        self._client: Any = None

    def _connect(self) -> Any:
        import clickhouse_connect

        # The database may not exist yet: connect to `default`, name ours in every query.
        args = {**self._args, "database": "default"}
        try:
            return clickhouse_connect.get_client(**args)
        except Exception as exc:
            version = _server_version(args)
            seen = f"ClickHouse {version}" if version else "the server"
            raise TraceTargetError(
                f"clickhouse-connect {clickhouse_connect.__version__} cannot open a session "
                f"with {seen} at {self.url}: {exc}"
            ) from exc

    async def open(self) -> None:
        if self._client is None:
            self._client = await asyncio.to_thread(self._factory)
        for statement in schema_statements(self.database):
            await self._call(partial(_command, sql=statement))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.close)

    async def ping(self) -> None:
        if not await self._call(lambda c: c.ping()):
            raise TraceTargetError(f"ClickHouse at {self.url} does not answer")

    async def insert(
        self, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Row]
    ) -> None:
        if rows:
            await self._call(
                lambda c: c.insert(
                    table,
                    rows,
                    column_names=list(columns),
                    column_type_names=list(types),
                    database=self.database,
                )
            )

    async def query(
        self, sql: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        return await self._call(  # type: ignore[no-any-return]
            lambda c: list(c.query(sql, parameters=dict(params or {})).named_results())
        )

    async def _call(self, fn: Callable[[Any], Any]) -> Any:
        client = self._client
        if client is None:
            raise TraceTargetError(f"trace target {self.url} is not open")
        try:
            return await asyncio.to_thread(fn, client)
        except TraceTargetError:
            raise
        except Exception as exc:
            raise TraceTargetError(f"ClickHouse at {self.url}: {exc}") from exc
