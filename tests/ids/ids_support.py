"""Helpers shared by the ID tests: the vectors, a frozen clock, a reference parser."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
# The repository is cloned next to `shared/`; the copy beside the tests keeps them
# running in a lone clone.
SHARED_VECTORS = REPO_ROOT.parent / "shared" / "vectors" / "run_ids.json"
LOCAL_VECTORS = HERE / "vectors" / "run_ids.json"


def vectors_path() -> Path:
    """The shared vectors when present, else the copy in the repository."""
    return SHARED_VECTORS if SHARED_VECTORS.is_file() else LOCAL_VECTORS


def load_vectors() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(vectors_path().read_text(encoding="utf-8"))
    return data


@contextmanager
def frozen_clock(seconds: float) -> Iterator[None]:
    """Stop `time.time` and `time.time_ns` at `seconds` since the epoch."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time", lambda: seconds)
        nanoseconds = int(Decimal(repr(seconds)) * 1_000_000_000)  # exact, unlike float math
        mp.setattr(time, "time_ns", lambda: nanoseconds)
        yield


# -- a reference parser, written straight from ids.md with the default registry -------
# It is slow and obvious on purpose; the real one must agree with it on every input.

_GRAMMAR = re.compile(r"[A-Za-z0-9_.:\-]*\Z")
_CANONICAL = re.compile(
    r"thread_(?P<thread>.+)_run_(?P<ts>0|[1-9][0-9]*)_(?P<rand>[0-9a-f]{8})\Z", re.ASCII
)
_LEGACY_RUN = re.compile(r"run_(?P<thread>.+)_(?P<rand>[0-9a-f]{8})\Z", re.ASCII)
_UUID = re.compile(
    r"([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\Z"
)


@dataclass(frozen=True)
class Expected:
    format: str | None = None
    thread_id: str | None = None
    timestamp_ms: int | None = None
    rand: str | None = None
    code: str | None = None


def reference_parse(s: object) -> Expected:
    if not isinstance(s, str) or s == "":
        return Expected(code="empty")
    if len(s) > 256:
        return Expected(code="too_long")
    if not _GRAMMAR.match(s):
        return Expected(code="bad_charset")
    if s.startswith("thread_"):
        m = _CANONICAL.match(s)
        if m is None:
            return Expected(code="unknown_format")
        if len(m["thread"]) > 128:
            return Expected(code="too_long")
        return Expected("canonical", m["thread"], int(m["ts"]), m["rand"])
    m = _LEGACY_RUN.match(s)
    if m is not None:
        if len(m["thread"]) > 128:
            return Expected(code="too_long")
        return Expected("legacy_run", m["thread"], None, m["rand"])
    if _UUID.match(s):
        return Expected("uuid")
    return Expected(code="unknown_format")
