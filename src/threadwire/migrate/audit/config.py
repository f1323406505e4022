"""Audit configuration: `[tool.threadwire.audit]` in the audited tree's pyproject.toml,
or a file given with `--config`; which modules are legacy and which names hold IDs."""

from __future__ import annotations

import fnmatch
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Role = Literal["run", "thread", "any"]

DEFAULT_ID_NAMES: tuple[str, ...] = ("run_id", "thread_id", "*_run_id", "*_thread_id")
DEFAULT_LEGACY_LAST_PARTS: tuple[str, ...] = ("id_manager", "run_id_generator")
_KNOWN_KEYS = frozenset({"legacy_modules", "id_names", "exclude", "fix_tests"})


class ConfigError(Exception):
    """The configuration cannot be read or has a value of the wrong type (exit 2)."""


@dataclass(frozen=True)
class IdNames:
    """Name patterns that hold IDs; a name matches as a variable, an attribute or a
    string subscript key. The role says whether it holds a run ID or a thread ID."""

    patterns: tuple[str, ...] = DEFAULT_ID_NAMES

    def role(self, name: str) -> Role | None:
        """The role of `name`, or None when no pattern matches it."""
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(name, pattern):
                return _role_of_pattern(pattern)
        return None

    def key_role(self, key: str) -> Role | None:
        """The role of a string key (`event["run_id"]`), also in the spellings JSON and
        HTTP use for the same name (`runId`, `X-Run-Id`)."""
        role = self.role(key)
        if role is None:
            snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", key).replace("-", "_").lower()
            role = self.role(snake) if snake != key else None
        return role

    def plural_role(self, name: str) -> Role | None:
        """The role of the elements of a collection named like `run_ids`."""
        if len(name) > 1 and name.endswith("s"):
            return self.role(name[:-1])
        return None


def _role_of_pattern(pattern: str) -> Role:
    lowered = pattern.lower()
    if "thread" in lowered:
        return "thread"
    if "run" in lowered:
        return "run"
    return "any"


@dataclass(frozen=True)
class LegacyModules:
    """Dotted module names whose imports and calls are findings; a module is legacy
    when it or a package above it is configured, or its last part is a default one."""

    names: tuple[str, ...] = ()
    last_parts: tuple[str, ...] = DEFAULT_LEGACY_LAST_PARTS

    def match(self, module: str) -> str | None:
        """The legacy module `module` is, or lives in; None when it is not legacy."""
        parts = module.lstrip(".").split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if parts[end - 1] in self.last_parts:
                return prefix
            for name in self.names:
                if prefix == name or prefix.endswith("." + name):
                    return prefix
        return None


@dataclass(frozen=True)
class AuditConfig:
    """What the audit treats as legacy and as IDs, and which files it leaves alone."""

    legacy: LegacyModules = field(default_factory=LegacyModules)
    id_names: IdNames = field(default_factory=IdNames)
    exclude: tuple[str, ...] = ()
    fix_tests: bool = False
    source: Path | None = None


def load_config(root: Path, config_file: Path | None = None) -> AuditConfig:
    """Read the configuration for the tree at `root`: `config_file` when given, else the
    nearest pyproject.toml at or above `root`; defaults when it has no audit table."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"config file not found: {config_file}")
        table = _audit_table(config_file, standalone=True)
        return _from_table(table, config_file)
    start = root if root.is_dir() else root.parent
    for directory in (start.resolve(), *start.resolve().parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return _from_table(_audit_table(candidate, standalone=False), candidate)
        if (directory / ".git").exists():
            break
    return AuditConfig()


def _audit_table(path: Path, *, standalone: bool) -> Mapping[str, object]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc
    tool = data.get("tool")
    if isinstance(tool, dict):
        threadwire = tool.get("threadwire")
        if isinstance(threadwire, dict):
            audit = threadwire.get("audit")
            if audit is None:
                return {}
            if not isinstance(audit, dict):
                raise ConfigError(f"{path}: [tool.threadwire.audit] must be a table")
            return audit
    if standalone:
        # A standalone file may hold the keys at its top level.
        return {k: v for k, v in data.items() if k in _KNOWN_KEYS}
    return {}


def _from_table(table: Mapping[str, object], source: Path) -> AuditConfig:
    for key in table:
        if key not in _KNOWN_KEYS:
            print(f"threadwire audit: {source}: ignoring unknown key {key!r}", file=sys.stderr)
    legacy = _str_list(table, "legacy_modules", source)
    for name in legacy:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ConfigError(f"{source}: legacy_modules: {name!r} is not a dotted module name")
    id_names = _str_list(table, "id_names", source)
    exclude = _str_list(table, "exclude", source)
    fix_tests = table.get("fix_tests", False)
    if not isinstance(fix_tests, bool):
        raise ConfigError(f"{source}: fix_tests must be true or false, got {fix_tests!r}")
    return AuditConfig(
        legacy=LegacyModules(names=tuple(legacy)),
        id_names=IdNames(patterns=_dedupe((*DEFAULT_ID_NAMES, *id_names))),
        exclude=tuple(exclude),
        fix_tests=fix_tests,
        source=source,
    )


def _str_list(table: Mapping[str, object], key: str, source: Path) -> list[str]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{source}: {key} must be a list of non-empty strings, got {value!r}")
    return [str(v) for v in value]


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))
