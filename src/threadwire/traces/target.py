"""Where traces go: the TraceTarget interface and the URL that picks one.

- `chdb:///abs/path`, `chdb://rel/path` (`?database=name`): the ClickHouse engine
  in-process (chDB, the `chdb` extra); one data path per process.
- `clickhouse://user:pass@host:8123/db`, `clickhouses://...:8443/db`: a ClickHouse
  server over HTTP(S) with clickhouse-connect (the `clickhouse` extra).

Drivers are imported lazily, so a missing extra is an error only for its scheme.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

Row = Sequence[Any]


class TraceTargetError(Exception):
    """A trace target cannot be reached or configured; the message names it (no secrets)."""


@runtime_checkable
class TraceTarget(Protocol):
    """A ClickHouse engine: run DDL, insert rows of one table, answer queries.

    Every method is async and runs the blocking driver in a worker thread, so the
    event loop never waits on ClickHouse.
    """

    url: str
    """The target's URL with any password masked (for logs and errors)."""
    database: str

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""

    async def close(self) -> None:
        """Release the connection (or this user's share of the embedded engine)."""

    async def ping(self) -> None:
        """Raise TraceTargetError when the engine does not answer."""

    async def insert(
        self, table: str, columns: Sequence[str], types: Sequence[str], rows: Sequence[Row]
    ) -> None:
        """Insert `rows` (values in `columns` order, of ClickHouse `types`) into `table`."""

    async def query(
        self, sql: str, params: Mapping[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of `sql` as dicts; `{name:String}` placeholders are bound from `params`."""
        ...


def mask_url(url: str) -> str:
    """`url` with its password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def require_module(module: str, extra: str, scheme: str) -> None:
    """Raise TraceTargetError naming the extra to install when `module` is missing."""
    if importlib.util.find_spec(module) is None:
        raise TraceTargetError(
            f"{scheme}:// trace URLs need the {module} package: pip install 'threadwire[{extra}]'"
        )


def create_trace_target(url: str) -> TraceTarget:
    """The target for `url` (not yet opened); raises TraceTargetError on a bad URL."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "chdb":
        from threadwire.traces.embedded import ChdbTarget

        return ChdbTarget(url)
    if scheme in {"clickhouse", "clickhouses"}:
        from threadwire.traces.server import ClickHouseTarget

        return ClickHouseTarget(url)
    raise TraceTargetError(
        f"unsupported trace URL {mask_url(url)!r}: expected chdb://PATH, "
        "clickhouse://HOST:PORT/DB or clickhouses://HOST:PORT/DB"
    )
