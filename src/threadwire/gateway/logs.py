"""Structured JSON logs carrying the request, connection, thread and run IDs in scope.

The IDs travel in context variables, so every line logged while handling a request
or a WebSocket connection names them without each call passing them along.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

request_id: ContextVar[str | None] = ContextVar("threadwire_request_id", default=None)
connection_id: ContextVar[str | None] = ContextVar("threadwire_connection_id", default=None)
thread_id: ContextVar[str | None] = ContextVar("threadwire_thread_id", default=None)
run_id: ContextVar[str | None] = ContextVar("threadwire_run_id", default=None)

_CONTEXT: Final = (
    ("request_id", request_id),
    ("connection_id", connection_id),
    ("thread_id", thread_id),
    ("run_id", run_id),
)
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)

logger = logging.getLogger("threadwire.gateway")


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Bind IDs (request_id, connection_id, thread_id, run_id) for the enclosed code."""
    variables = dict(_CONTEXT)
    tokens = [(variables[name], variables[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the IDs in scope, extras."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name, var in _CONTEXT:
            value = var.get()
            if value is not None:
                line[name] = value
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_") and key != "color_message":
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route threadwire's and uvicorn's loggers to stderr, as JSON lines by default."""
    handler = logging.StreamHandler(sys.stderr)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Alembic narrates every plugin and migration step at INFO on each start.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers[:] = []
        named.propagate = True
