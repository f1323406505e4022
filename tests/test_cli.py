"""The console entry point: bad arguments are one line on stderr and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from threadwire.cli import main


def _exit_code(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    code = stopped.value.code
    assert isinstance(code, int)
    return code


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        # a value of the wrong type names the option
        (["db", "migrate-ids", "--database-url", "sqlite://", "--column", "a.b",
          "--batch-size", "x"], "--batch-size"),
        # an unknown command is named
        (["no-such-command"], "no-such-command"),
        # an unknown option is named
        (["ids", "parse", "--no-such-flag"], "--no-such-flag"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line_naming_the_culprit(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert names in err
    assert "Traceback" not in err


def test_a_bare_group_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["ids"]) == 2
    shown = capsys.readouterr()
    assert "new-run" in shown.out + shown.err


def test_a_command_exit_code_passes_through(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["ids", "parse", "run_abc_0badf00d"]) == 0
    assert _exit_code(["ids", "parse", "nope"]) == 1


def test_the_module_runs_as_a_program() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "threadwire", "ids", "new-run", "t1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("thread_t1_run_")
