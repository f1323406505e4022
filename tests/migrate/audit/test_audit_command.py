"""`threadwire audit` as CI sees it: exit codes, the JSON and SARIF shapes, baselines,
configuration errors, --fix and --diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.migrate.audit.audit_support import run_cli, write_tree

from threadwire.migrate.audit.command import run_audit

LEGACY_TREE = {
    "app/__init__.py": "",
    "app/id_manager.py": (
        "import uuid\n\n\ndef generate_run_id(thread_id):\n"
        '    return f"run_{thread_id}_{uuid.uuid4().hex[:8]}"\n'
    ),
    "app/agent.py": (
        "from app.id_manager import generate_run_id\n\n\n"
        "def start(thread_id):\n    return generate_run_id(thread_id)\n\n\n"
        "def owner(run_id):\n    return run_id.startswith('run_')\n"
    ),
}


def test_clean_tree_exits_zero(tmp_path: Path) -> None:
    write_tree(tmp_path, {"m.py": "def f(line):\n    return line.split(',')\n"})
    result = run_audit(tmp_path, fmt="json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"findings": [], "files_scanned": 1}


def test_json_has_exactly_the_spec_keys_and_relative_posix_paths(tmp_path: Path) -> None:
    write_tree(tmp_path, LEGACY_TREE)
    result = run_audit(tmp_path, fmt="json")
    report = json.loads(result.stdout)
    assert result.exit_code == 1
    assert set(report) == {"findings", "files_scanned"}
    for finding in report["findings"]:
        assert set(finding) == {
            "path",
            "line",
            "column",
            "kind",
            "message",
            "suggestion",
            "fixable",
        }
        assert finding["path"] == "app/agent.py"
    assert [(f["line"], f["kind"], f["fixable"]) for f in report["findings"]] == [
        (1, "legacy_import", True),
        (5, "legacy_call", True),
        (9, "adhoc_parse", False),
    ]


def test_sarif_has_one_rule_per_kind_and_one_based_columns(tmp_path: Path) -> None:
    write_tree(tmp_path, LEGACY_TREE)
    log = json.loads(run_audit(tmp_path, fmt="sarif").stdout)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules == ["legacy_import", "legacy_call", "adhoc_build", "adhoc_parse", "parse_error"]
    call = next(r for r in run["results"] if r["ruleId"] == "legacy_call")
    location = call["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "app/agent.py"
    assert location["region"]["startLine"] == 5
    assert location["region"]["startColumn"] == 12  # `generate_run_id` at 0-based column 11
    assert rules[call["ruleIndex"]] == "legacy_call"


def test_baseline_lets_old_findings_pass_and_new_ones_fail(tmp_path: Path) -> None:
    tree = write_tree(tmp_path / "tree", LEGACY_TREE)
    baseline = tmp_path / "baseline.json"
    assert run_audit(tree, write_baseline_to=baseline).exit_code == 0
    assert run_audit(tree, baseline=baseline).exit_code == 0

    agent = tree / "app" / "agent.py"
    # Moving old code down must not resurrect it; a new site must fail.
    agent.write_text("\n\n" + agent.read_text() + "\n\ndef more(run_id):\n    return run_id[:4]\n")
    result = run_audit(tree, baseline=baseline, fmt="json")
    assert result.exit_code == 1
    assert [f["line"] for f in json.loads(result.stdout)["findings"]] == [15]


@pytest.mark.parametrize(
    ("pyproject", "needle"),
    [
        ("[tool.threadwire.audit\n", "cannot read configuration"),
        ('[tool.threadwire.audit]\nlegacy_modules = "x y"\n', "not a dotted module name"),
        ("[tool.threadwire.audit]\nid_names = [1]\n", "id_names"),
    ],
)
def test_bad_configuration_exits_two_with_a_reason(
    tmp_path: Path, pyproject: str, needle: str
) -> None:
    write_tree(tmp_path, {"pyproject.toml": pyproject, "m.py": "x = 1\n"})
    result = run_audit(tmp_path)
    assert result.exit_code == 2
    assert needle in result.stderr


def test_bad_arguments_exit_two(tmp_path: Path) -> None:
    assert run_audit(tmp_path / "missing").exit_code == 2
    assert run_cli("audit", str(tmp_path), "--format", "xml").returncode == 2
    broken = tmp_path / "baseline.json"
    broken.write_text("{")
    assert run_audit(tmp_path, baseline=broken).exit_code == 2


def test_config_file_option_is_read_instead_of_pyproject(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "ids.toml": '[tool.threadwire.audit]\nlegacy_modules = ["app.gen"]\n',
            "app/__init__.py": "",
            "app/gen.py": "def make(t):\n    return t\n",
            "app/use.py": "from app.gen import make\n",
        },
    )
    assert run_audit(tmp_path).exit_code == 0
    assert run_audit(tmp_path, config_file=tmp_path / "ids.toml").exit_code == 1


def test_fix_exits_zero_only_when_nothing_is_left(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path,
        {
            **LEGACY_TREE,
            "app/agent.py": LEGACY_TREE["app/agent.py"].split("\n\n\ndef owner")[0] + "\n",
        },
    )
    result = run_cli("audit", str(tree), "--fix")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ids.new_run_id(thread_id)" in (tree / "app" / "agent.py").read_text()
    assert run_cli("audit", str(tree)).returncode == 0


def test_fix_exits_one_when_findings_remain(tmp_path: Path) -> None:
    tree = write_tree(tmp_path, LEGACY_TREE)
    result = run_audit(tree, fix=True, fmt="json")
    assert result.exit_code == 1
    assert [f["kind"] for f in json.loads(result.stdout)["findings"]] == ["adhoc_parse"]


def test_fix_keeps_comments_and_formatting(tmp_path: Path) -> None:
    source = (
        "import uuid\n\n\ndef start(thread_id):  # entry point\n"
        "    # a fresh run for this thread\n"
        '    run_id = (\n        f"run_{thread_id}_{uuid.uuid4().hex[:8]}"  # legacy shape\n    )\n'
        "    return run_id\n"
    )
    tree = write_tree(tmp_path, {"m.py": source})
    run_audit(tree, fix=True)
    assert (tree / "m.py").read_text() == (
        "import uuid\nfrom threadwire import ids\n\n\ndef start(thread_id):  # entry point\n"
        "    # a fresh run for this thread\n"
        "    run_id = (\n        ids.new_run_id(thread_id)  # legacy shape\n    )\n"
        "    return run_id\n"
    )


def test_extractor_that_returned_none_still_returns_none(tmp_path: Path) -> None:
    source = (
        "def thread_of(run_id):\n"
        "    try:\n        return run_id.split('_')[1]\n"
        "    except IndexError:\n        return None\n"
    )
    tree = write_tree(tmp_path, {"m.py": source})
    run_audit(tree, fix=True)
    fixed = (tree / "m.py").read_text()
    assert "return ids.try_extract_thread_id(run_id)" in fixed
    namespace: dict[str, object] = {}
    exec(compile(fixed, "m.py", "exec"), namespace)
    thread_of = namespace["thread_of"]
    assert callable(thread_of)
    assert thread_of("bad") is None
    assert thread_of("run_user_42_7f3a9c01") == "user_42"


def test_split_inside_a_try_that_catches_only_index_error_is_not_rewritten(
    tmp_path: Path,
) -> None:
    source = (
        "def route(run_id, table):\n"
        "    try:\n        thread_id = run_id.split('_')[1]\n"
        "    except IndexError:\n        thread_id = 'lobby'\n"
        "    return table[thread_id]\n"
    )
    tree = write_tree(tmp_path, {"m.py": source})
    result = run_audit(tree, fix=True, fmt="json")
    assert (tree / "m.py").read_text() == source
    assert [f["fixable"] for f in json.loads(result.stdout)["findings"]] == [False]
