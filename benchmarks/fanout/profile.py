"""Where a server's time goes: py-spy samples of the measured window, by area.

`bench_fanout.py --profile-with PATH/TO/py-spy` records threadwire's server process
during each measured window (`py-spy record --format raw`, the collapsed stacks) and
prints this summary. Each sample is charged to one area: the area of the innermost
frame that belongs to one (so `json.dumps` called by the hub counts as serialization,
the hub's own lines as hub), else the event loop or "other".

    python -m benchmarks.fanout.profile profile.txt   # summarise a saved recording
"""

from __future__ import annotations

import functools
import linecache
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

AREAS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("serialization (json, event encoding)", r"json/|threadwire/events\.py|orjson"),
        ("logging", r"/logging/|gateway/logs\.py|python_json_logger"),
        ("metrics (prometheus_client)", r"prometheus_client/|gateway/metrics\.py"),
        ("auth (PyJWT)", r"/jwt/|gateway/auth\.py"),
        ("IDs (threadwire.ids)", r"threadwire/ids/"),
        (
            "store (threadwire.store, SQLAlchemy, aiosqlite, sqlite3)",
            r"threadwire/store/|sqlalchemy/|aiosqlite/|sqlite3/|greenlet|_sqlite3",
        ),
        ("hub (gateway/hub.py)", r"gateway/hub\.py|bus/memory\.py"),
        ("socket writes (transport.write: WebSocket frames, HTTP answers)", r"Transport\.write"),
        (
            "WebSocket layer (gateway/ws.py, uvicorn's and websockets' framing)",
            r"websockets|ws\.py",
        ),
        ("runtime (ingest, coordinator, agent context, supervisor)", r"threadwire/runtime/"),
        ("the benchmark's agent", r"benchmarks/fanout/"),
        (
            "HTTP stack (uvicorn, Starlette, FastAPI, pydantic, gateway middleware)",
            r"uvicorn/|starlette/|fastapi/|pydantic|httptools|gateway/app\.py|gateway/http\.py"
            r"|gateway/errors\.py|anyio/",
        ),
        ("event loop (asyncio, selectors)", r"asyncio/|selectors\.py|threading\.py|queue\.py"),
    )
)
OTHER: Final = "other"


IDLE_LINE: Final = re.compile(r"\.(get|wait|acquire|poll|select|recv|accept)\(")
"""A leaf frame on such a source line is a thread blocked, not working (py-spy does not
always tell a thread that waits in C, such as aiosqlite's worker, from a busy one)."""
FRAME: Final = re.compile(r"^(?P<function>.*) \((?P<path>[^():]+):(?P<line>\d+)\)$")


def area_of(frames: list[str]) -> str:
    """The area a sample is charged to (innermost frame first)."""
    for frame in reversed(frames):
        for name, pattern in AREAS:
            if pattern.search(frame):
                return name
    return OTHER


@functools.cache
def _source_line(path: str, line: int) -> str:
    """The source line of a frame whose path py-spy shortened (`asyncio/runners.py`)."""
    try:
        for base in sys.path:
            candidate = Path(base or ".") / path
            if candidate.is_file():
                return linecache.getline(str(candidate), line)
        return linecache.getline(path, line)
    except (OSError, ValueError):  # frames of native or frozen code
        return ""


def is_idle(leaf: str) -> bool:
    """True when the sample's innermost frame is a blocking wait."""
    match = FRAME.match(leaf)
    if match is None:
        return False
    return IDLE_LINE.search(_source_line(match["path"], int(match["line"]))) is not None


@dataclass
class Summary:
    """A recording, by area of the busy samples."""

    busy: int = 0
    idle: int = 0
    areas: Counter[str] = field(default_factory=Counter)
    threads: Counter[str] = field(default_factory=Counter)
    leaves: Counter[str] = field(default_factory=Counter)


def summarize(path: Path) -> Summary:
    """Busy samples by area, by thread and by leaf frame, from a raw py-spy recording."""
    summary = Summary()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = "all threads"
        if frames and frames[0].startswith(("thread ", "process ")):
            thread = frames[0].split(": ", 1)[-1]
            frames = frames[1:]
        samples = int(count)
        if not frames or is_idle(frames[-1]):
            summary.idle += samples
            continue
        summary.busy += samples
        summary.areas[area_of(frames)] += samples
        summary.threads[thread] += samples
        summary.leaves[_short(frames[-1])] += samples
    return summary


def _short(frame: str) -> str:
    return re.sub(r"\(/\S*?(site-packages|lib/python3\.\d+|src)/", "(", frame)


def report(path: Path) -> str:
    """The summary as text: shares of the busy (not waiting) samples."""
    summary = summarize(path)
    busy = summary.busy
    if not busy:
        return f"{path}: no busy samples"
    lines = [f"{path.name}: {busy} busy samples ({summary.idle} waiting ones left out)"]
    lines += [f"  {n / busy:6.1%}  {name}" for name, n in summary.areas.most_common()]
    lines.append("  by thread:")
    lines += [f"  {n / busy:6.1%}  {name}" for name, n in summary.threads.most_common(4)]
    lines.append("  hottest frames (self time):")
    lines += [f"  {n / busy:6.1%}  {frame}" for frame, n in summary.leaves.most_common(15)]
    return "\n".join(lines)


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        print(report(Path(argument)))
