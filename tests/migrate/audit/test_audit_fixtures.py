"""The fixture code bases end to end: each one's findings and rewrite are exactly the
expected ones, and a fixed tree still imports and passes its own tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.migrate.audit.audit_support import (
    FIXTURES,
    copy_fixture,
    run_cli,
    run_own_tests,
)

from threadwire.migrate.audit import audit_tree, load_config

_MARKER = re.compile(r"#\s*expect:\s*([a-z_, ]+)")
_KEYS = ("path", "line", "column", "kind", "fixable", "suggestion")


def _expected(name: str) -> dict[str, object]:
    data = json.loads((FIXTURES / name / "expected_findings.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("name", ["chatops", "partial", "decoys"])
def test_fixture_findings_are_exactly_the_expected_ones(name: str) -> None:
    result = run_cli("audit", str(FIXTURES / name), "--format", "json")
    report = json.loads(result.stdout)
    rows = [{k: f[k] for k in _KEYS} for f in report["findings"]]
    expected = _expected(name)
    assert rows == expected["findings"]
    assert report["files_scanned"] == expected["files_scanned"]
    assert result.returncode == (1 if rows else 0)


def test_every_marked_line_in_chatops_is_found_and_nothing_else() -> None:
    """The `# expect: kind` comments are the human-readable truth the JSON must agree with."""
    root = FIXTURES / "chatops"
    marked: set[tuple[str, int, str]] = set()
    for path in sorted(root.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = _MARKER.search(line)
            if match:
                for kind in match.group(1).split(","):
                    marked.add((path.relative_to(root).as_posix(), number, kind.strip()))
    findings = audit_tree(root, load_config(root)).result.findings
    assert {(f.path, f.line, str(f.kind)) for f in findings} == marked


def test_decoy_lines_in_chatops_are_not_flagged() -> None:
    root = FIXTURES / "chatops"
    decoys = {
        (path.relative_to(root).as_posix(), number)
        for path in root.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "# decoy" in line
    }
    assert decoys
    flagged = {(f.path, f.line) for f in audit_tree(root, load_config(root)).result.findings}
    assert not decoys & flagged


@pytest.mark.parametrize("name", ["chatops", "partial"])
def test_diff_shows_the_expected_rewrite_and_writes_nothing(name: str, tmp_path: Path) -> None:
    tree = copy_fixture(name, tmp_path)
    before = {p: p.read_bytes() for p in tree.rglob("*.py")}
    result = run_cli("audit", str(tree), "--diff")
    assert result.stdout == (FIXTURES / name / "expected_fix.diff").read_text()
    assert {p: p.read_bytes() for p in tree.rglob("*.py")} == before


def test_fixed_chatops_still_passes_its_own_tests_and_keeps_only_unfixable_findings(
    tmp_path: Path,
) -> None:
    tree = copy_fixture("chatops", tmp_path)
    assert run_own_tests(tree).returncode == 0, "the fixture's tests must pass before the fix"
    unfixable = [f for f in audit_tree(tree, load_config(tree)).result.findings if not f.fixable]

    fixed = run_cli("audit", str(tree), "--fix", "--format", "json")

    assert fixed.returncode == 1  # unfixable findings are left
    left = json.loads(fixed.stdout)["findings"]
    assert [(f["kind"], f["fixable"]) for f in left] == [(str(f.kind), False) for f in unfixable]
    own = run_own_tests(tree)
    assert own.returncode == 0, own.stdout + own.stderr
    imported = run_cli("audit", str(tree), "--diff")
    assert imported.stdout == "", "a second fix must find nothing more to rewrite"


def test_fix_leaves_test_files_alone(tmp_path: Path) -> None:
    tree = copy_fixture("partial", tmp_path)
    test_file = tree / "tests" / "selftest_router.py"
    before = test_file.read_text()
    run_cli("audit", str(tree), "--fix")
    assert test_file.read_text() == before
    assert "from threadwire import ids" in (tree / "svc" / "router.py").read_text()
