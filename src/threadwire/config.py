"""Settings: one object from flags and `THREADWIRE_*` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from threadwire.store import DEFAULT_DATABASE_URL

SECRET_FILE = Path(".threadwire-secret")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a node needs; `Settings.from_env()` reads `THREADWIRE_<FIELD>`."""

    host: str = "127.0.0.1"
    port: int = 8000
    database_url: str = DEFAULT_DATABASE_URL
    bus_url: str | None = None
    jwt_secret: str | None = None
    secret_file: str = str(SECRET_FILE)
    agents: tuple[str, ...] = ()
    id_formats: tuple[str, ...] | None = None
    """Enabled run-ID formats; None keeps the registry's defaults."""
    max_concurrent_runs: int = 64
    max_runs_per_user: int = 8
    run_timeout: float = 600.0
    shutdown_grace: float = 10.0
    max_frame_bytes: int = 65536
    ws_queue_size: int = 1000
    max_subscriptions_per_connection: int = 1000
    max_connections_per_user: int = 1000
    max_messages_per_second: float = 200.0
    """Client frames per second per WebSocket (acks not counted), bursts of twice that."""
    max_body_bytes: int = 1024 * 1024
    sse_keepalive: float = 15.0
    node_id: str | None = None
    """This node's ID in a cluster (runs, heartbeats and cancels go by it); None: "local"
    on a single node, generated (host, pid, random) in cluster mode."""
    heartbeat_interval: float = 1.0
    """Cluster mode: seconds between this node's heartbeats (and dead-node checks)."""
    heartbeat_ttl: float = 5.0
    """Cluster mode: a node whose heartbeat is this old is presumed dead..."""
    dead_node_grace: float = 2.0
    """...and declared dead (its runs ended `node_lost`) once missing this much longer."""
    log_level: str = "INFO"
    log_json: bool = True
    chat_base_url: str | None = None
    chat_api_key: str | None = None
    chat_model: str = "gpt-4o-mini"
    trace_url: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then `THREADWIRE_*` variables, then explicit (flag) overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"THREADWIRE_{f.name.upper()}")
            if raw is not None and f.name != "extra":
                values[f.name] = _coerce(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """A copy with `changes` applied."""
        return replace(self, **changes)

    def resolve_jwt_secret(self) -> str:
        """The HS256 secret: configured, or created once in `secret_file` (mode 0600).

        The file appears whole or not at all (written aside, then hard-linked into
        place), so a `serve` and a `token` started together agree on one secret.
        """
        if self.jwt_secret:
            return self.jwt_secret
        path = Path(self.secret_file)
        if not path.exists():
            draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another process won the race: use its secret
            finally:
                draft.unlink()
        return path.read_text().strip()


_INTS = {
    "port",
    "max_concurrent_runs",
    "max_runs_per_user",
    "max_frame_bytes",
    "ws_queue_size",
    "max_subscriptions_per_connection",
    "max_connections_per_user",
    "max_body_bytes",
}
_FLOATS = {
    "run_timeout",
    "shutdown_grace",
    "max_messages_per_second",
    "sse_keepalive",
    "heartbeat_interval",
    "heartbeat_ttl",
    "dead_node_grace",
}


def _coerce(name: str, raw: str) -> Any:
    if name in _INTS:
        return int(raw)
    if name in _FLOATS:
        return float(raw)
    if name == "log_json":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if name in {"agents", "id_formats"}:
        return tuple(p.strip() for p in raw.split(",") if p.strip())
    return raw
