"""The original failure, reproduced and fixed: examples/legacy_chat has two run ID
generators and a router written for only one of them, so a share of the events never
reaches its subscriber. `threadwire audit --fix` on a copy makes the same workload lossless."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "legacy_chat"
WORKLOAD = ("--threads", "8", "--runs", "4", "--events", "25")


@contextmanager
def chat_server(tree: Path) -> Iterator[str]:
    """Run the example's WebSocket server from `tree` on a free port; yield its URL once it
    says it is listening."""
    process = subprocess.Popen(
        [sys.executable, "-m", "legacy_chat.server", "--port", "0"],
        cwd=tree,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # blocks until the server is bound, or exits
        assert line.startswith("listening on "), f"server did not start: {line!r}"
        yield line.split()[-1]
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def run_workload(tree: Path, url: str) -> dict[str, object]:
    """The example's client, counting what reaches each thread's subscriber."""
    result = subprocess.run(
        [sys.executable, "-m", "legacy_chat.client", "--url", url, *WORKLOAD],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(result.stdout)
    assert isinstance(report, dict)
    return report


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadwire", "audit", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_legacy_chat_loses_the_tool_runs_events_until_audit_fix(tmp_path: Path) -> None:
    tree = tmp_path / "legacy_chat"
    shutil.copytree(EXAMPLE, tree, ignore=shutil.ignore_patterns("__pycache__"))

    with chat_server(tree) as url:
        before = run_workload(tree, url)
    # Every run of the tools agent uses the second generator, which the router cannot read.
    assert before["expected"] == 8 * 4 * 25
    assert before["lost"] == 8 * 4 * 25 // 2
    assert before["by_agent"] == {
        "chat": {"expected": 400, "delivered": 400},
        "tools": {"expected": 400, "delivered": 0},
    }

    found = json.loads(audit(str(tree), "--format", "json").stdout)["findings"]
    assert {f["kind"] for f in found} == {"legacy_import", "legacy_call", "adhoc_parse"}
    assert all(f["fixable"] for f in found)

    fixed = audit(str(tree), "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert audit(str(tree)).returncode == 0

    with chat_server(tree) as url:
        after = run_workload(tree, url)
    assert after["expected"] == before["expected"]
    assert after["lost"] == 0
    assert after["misrouted"] == 0
