"""What a verification run does: `VerifyConfig`, and the `--chaos` mini-language.

`--chaos drop=0.01,reconnect=5s,slow=0.05,resume=0.2,kill-node=30s,restart-bus=60s`:
probabilities are per received event (`drop`) or per session (`slow`, `resume`);
durations are mean intervals between faults (`reconnect`, `kill-node`, `restart-bus`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Final

from threadwire.ids import registry as id_registry


class ConfigError(ValueError):
    """A verification setting that cannot work; the message quotes the bad value."""


_DURATION: Final = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)?")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in `text`: `250ms`, `1.5s`, `2m`, `1h`, or a bare number of seconds.

    >>> parse_duration("250ms"), parse_duration("2m"), parse_duration("3")
    (0.25, 120.0, 3.0)
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ConfigError(f"not a duration: {text!r} (examples: 500ms, 30s, 2m)")
    return float(match["n"]) * _UNITS[match["unit"]]


@dataclass(frozen=True, slots=True)
class Chaos:
    """Faults to inject; zero or None turns one off.

    Client side: `drop` (abort the connection after a received event, probability per
    event), `reconnect` (mean seconds between clean reconnects of one subscriber),
    `slow` (probability that a session reads slowly, `slow_ms` per frame), `resume`
    (probability that a resubscription rewinds to a random earlier seq instead of the
    last one). Server side, with `--spawn`: `kill_node` (mean seconds between SIGKILLs
    of a spawned node, which is restarted after `down` seconds) and `restart_bus`
    (mean seconds between restarts of the Redis the verifier started).
    """

    drop: float = 0.0
    reconnect: float | None = None
    slow: float = 0.0
    slow_ms: float = 20.0
    resume: float = 0.0
    kill_node: float | None = None
    restart_bus: float | None = None
    down: float = 0.5

    @property
    def client_side(self) -> bool:
        """Whether any client-side fault is on."""
        return bool(self.drop or self.reconnect or self.slow or self.resume)

    @property
    def server_side(self) -> bool:
        """Whether any server-side fault is on (needs `--spawn`)."""
        return self.kill_node is not None or self.restart_bus is not None

    def describe(self) -> str:
        """The spec back in `--chaos` syntax (empty when nothing is on)."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == 0 or value == f.default:
                continue
            parts.append(f"{f.name.replace('_', '-')}={value:g}")
        return ",".join(parts)


_PROBABILITIES: Final = {"drop", "slow", "resume"}
_INTERVALS: Final = {"reconnect", "kill_node", "restart_bus", "down", "slow_ms"}


def parse_chaos(text: str | None) -> Chaos:
    """A `Chaos` from `drop=0.01,reconnect=5s,kill-node=30s,...` (None or "" is none).

    >>> parse_chaos("drop=0.01,kill-node=30s").kill_node
    30.0
    """
    values: dict[str, float] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        name = key.strip().replace("-", "_")
        if not sep or name not in _PROBABILITIES | _INTERVALS:
            known = ", ".join(sorted(n.replace("_", "-") for n in _PROBABILITIES | _INTERVALS))
            raise ConfigError(f"bad chaos item {item!r}: expected NAME=VALUE, NAME one of {known}")
        if name in _PROBABILITIES:
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"chaos {key}: not a probability: {raw!r}") from None
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"chaos {key}: probability must be 0 to 1, got {raw!r}")
        elif name == "slow_ms":
            value = parse_duration(raw if raw.endswith(("s", "m", "h")) else raw + "ms") * 1000
        else:
            value = parse_duration(raw)
            if value <= 0 and name != "down":
                raise ConfigError(f"chaos {key}: interval must be positive, got {raw!r}")
        values[name] = value
    return Chaos(**values)


def legacy_formats_default(*, all_registered: bool) -> tuple[str, ...]:
    """Legacy run-ID formats to send: every registered one (spawned nodes enable them
    all) or those this process's registry enables, which are threadwire's defaults."""
    names = id_registry.names() if all_registered else id_registry.enabled_names()
    return tuple(n for n in names if n != "canonical")


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """One verification run: where, how much, which faults, how long at most."""

    urls: tuple[str, ...] = ()
    token_secret: str = ""
    users: int = 4
    threads: int = 2
    """Threads per user."""
    subscribers: int = 2
    """WebSocket subscribers per user, each following all of that user's threads."""
    runs: int = 20
    duration: float = 10.0
    """Seconds over which run starts are spread (the load phase)."""
    steps: int = 3
    delay_ms: int = 20
    chaos: Chaos = field(default_factory=Chaos)
    legacy_share: float = 0.0
    legacy_formats: tuple[str, ...] | None = None
    """None: see `legacy_formats_default`."""
    settle_timeout: float = 30.0
    """Seconds after the load phase for runs to end and subscribers to catch up."""
    seed: int | None = None
    spy: bool = True
    delay_threshold_ms: float = 1000.0
    """A live event slower than this counts as delayed in the fault report."""
    prefix: str | None = None
    """Prefix of user and thread IDs (random by default, so runs never collide)."""
    spawn: int = 0
    database_url: str | None = None
    bus_url: str | None = None
    spawn_redis: bool = False
    node_args: tuple[str, ...] = ()
    """Extra `threadwire serve` flags for spawned nodes (e.g. --ws-queue-size 64)."""

    def check(self) -> None:
        """Raise ConfigError for settings that cannot make a meaningful run."""
        for name in ("users", "threads", "subscribers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.runs < 0 or self.steps < 0 or self.delay_ms < 0:
            raise ConfigError("--runs, --steps and --delay-ms must not be negative")
        if self.duration <= 0 or self.settle_timeout <= 0:
            raise ConfigError("--duration and --settle-timeout must be positive")
        if not 0.0 <= self.legacy_share <= 1.0:
            raise ConfigError(f"--legacy-share must be 0 to 1, got {self.legacy_share}")
        if not self.token_secret:
            raise ConfigError("--token-secret is required (the deployment's HS256 secret)")
        self._check_targets()

    def _check_targets(self) -> None:
        if self.spawn and self.urls:
            raise ConfigError("give --url or --spawn, not both")
        if not self.spawn and not self.urls:
            raise ConfigError("give --url URL (repeatable) or --spawn N")
        if not self.spawn and (self.chaos.server_side or self.spawn_redis):
            raise ConfigError("server faults (kill-node, restart-bus) need --spawn")
        if self.spawn > 1 and not (self.bus_url or self.spawn_redis):
            raise ConfigError("--spawn N>1 needs --bus-url redis://... or --spawn-redis")
        if self.spawn > 1 and not (self.database_url or "").startswith("postgresql"):
            raise ConfigError("--spawn N>1 needs --database-url postgresql+asyncpg://...")
        if self.chaos.restart_bus is not None and not self.spawn_redis:
            raise ConfigError("restart-bus restarts only a Redis it started: add --spawn-redis")
        if self.spawn_redis and self.bus_url:
            raise ConfigError("give --bus-url or --spawn-redis, not both")
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"--url must be http(s)://host:port, got {url!r}")
