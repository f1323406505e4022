"""Score `threadwire audit` against a held-out-like legacy code base.

The code base under fixtures/heldout_like/ was written from the spec (migrate.md
section 3, ids.md) before the audit was run on it. Ground truth is inline:
`# expect: KIND[, KIND]` on the first line of each true ID site, `# decoy` on code
that must not be flagged, `# ambiguous` on sites the spec does not settle.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixtures" / "heldout_like"
_EXPECT = re.compile(r"#\s*expect:\s*([a-z_]+(?:\s*,\s*[a-z_]+)*)")
_AMBIGUOUS = re.compile(r"#\s*ambiguous\b")

Site = tuple[str, int, str]


@dataclass(frozen=True)
class Score:
    expected: frozenset[Site]
    found: frozenset[Site]
    ambiguous_lines: frozenset[tuple[str, int]]

    @property
    def missed(self) -> list[Site]:
        return sorted(self.expected - self.found)

    @property
    def false_alarms(self) -> list[Site]:
        expected_lines = {(p, n) for p, n, _ in self.expected}
        return sorted(
            f
            for f in self.found
            if (f[0], f[1]) not in expected_lines and (f[0], f[1]) not in self.ambiguous_lines
        )

    @property
    def recall(self) -> float:
        return 1.0 - len(self.missed) / len(self.expected)

    @property
    def false_alarm_rate(self) -> float:
        scored = [f for f in self.found if (f[0], f[1]) not in self.ambiguous_lines]
        return len(self.false_alarms) / max(1, len(scored))


def ground_truth(root: Path) -> tuple[set[Site], set[tuple[str, int]]]:
    expected: set[Site] = set()
    ambiguous: set[tuple[str, int]] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            m = _EXPECT.search(line)
            if m:
                for kind in m.group(1).split(","):
                    expected.add((rel, n, kind.strip()))
            if _AMBIGUOUS.search(line):
                ambiguous.add((rel, n))
    return expected, ambiguous


def run_audit(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threadwire", "audit", str(root), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=110,
    )


def score(root: Path) -> Score:
    proc = run_audit(root, "--format", "json")
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    found = {(f["path"], f["line"], f["kind"]) for f in report["findings"]}
    expected, ambiguous = ground_truth(root)
    return Score(frozenset(expected), frozenset(found), frozenset(ambiguous))


def run_selftests(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:asyncio",
            "-p",
            "no:randomly",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=110,
        env=env,
    )


def test_fixture_selftests_pass_unfixed() -> None:
    proc = run_selftests(FIXTURE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_recall_and_false_alarms() -> None:
    s = score(FIXTURE)
    assert len(s.expected) >= 60
    assert s.recall >= 0.95, f"recall {s.recall:.3f}, missed: {s.missed}"
    assert s.false_alarm_rate <= 0.05, f"false alarms {s.false_alarm_rate:.3f}: {s.false_alarms}"


def test_fix_keeps_selftests_passing(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(FIXTURE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    proc = run_audit(tree, "--fix")
    assert proc.returncode in (0, 1), proc.stderr
    changed = [
        p
        for p in sorted(tree.rglob("*.py"))
        if p.read_bytes() != (FIXTURE / p.relative_to(tree)).read_bytes()
    ]
    assert changed, "--fix rewrote nothing"
    tests = run_selftests(tree)
    assert tests.returncode == 0, tests.stdout + tests.stderr


if __name__ == "__main__":
    result = score(Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE)
    print(f"expected {len(result.expected)} found {len(result.found)}")
    print(f"recall {result.recall:.3f} false-alarm rate {result.false_alarm_rate:.3f}")
    for site in result.missed:
        print("MISSED", *site)
    for site in result.false_alarms:
        print("FALSE ", *site)
    expected_lines = {(p, n) for p, n, _ in result.expected}
    for site in sorted(result.found - result.expected):
        if (site[0], site[1]) in expected_lines:
            print("KIND? ", *site)
