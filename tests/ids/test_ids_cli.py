"""`threadwire ids ...`: new-thread, new-run, parse, formats (through typer's CliRunner)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from threadwire.cli.ids import build_registry, describe, ids_app
from threadwire.ids import parse_run_id, registry

runner = CliRunner()


def lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def test_new_thread_prints_a_uuid7_in_hex() -> None:
    result = runner.invoke(ids_app, ["new-thread"])
    assert result.exit_code == 0
    assert uuid.UUID(result.stdout.strip()).version == 7


def test_new_run_prints_a_canonical_run_id_of_the_thread() -> None:
    result = runner.invoke(ids_app, ["new-run", "user_42"])
    assert result.exit_code == 0
    assert parse_run_id(result.stdout.strip()).thread_id == "user_42"


def test_new_run_refuses_an_invalid_thread_with_its_code() -> None:
    result = runner.invoke(ids_app, ["new-run", "a b"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: bad_charset: ")


def test_parse_prints_one_json_line_per_id() -> None:
    result = runner.invoke(
        ids_app,
        ["parse", "thread_abc_run_1764021712123_7f3a9c01", "0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e"],
    )
    assert result.exit_code == 0
    assert lines(result.stdout) == [
        {
            "id": "thread_abc_run_1764021712123_7f3a9c01",
            "format": "canonical",
            "thread_id": "abc",
            "timestamp_ms": 1764021712123,
            "created_at": "2025-11-24T22:01:52.123000+00:00",
            "rand": "7f3a9c01",
            "is_canonical": True,
        },
        {
            "id": "0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e",
            "format": "uuid",
            "thread_id": None,
            "timestamp_ms": None,
            "created_at": None,
            "rand": None,
            "is_canonical": False,
        },
    ]


def test_parse_reads_stdin_and_exits_1_when_any_id_fails() -> None:
    stdin = b"run_abc_0badf00d\n\n  hello  \nrun_\xff_0badf00d\r\n"
    result = runner.invoke(ids_app, ["parse"], input=stdin)
    assert result.exit_code == 1
    answers = lines(result.stdout)
    assert [a.get("format", a.get("error")) for a in answers] == [
        "legacy_run",  # a legacy ID
        "unknown_format",  # surrounding spaces are trimmed; blank lines are skipped
        "bad_charset",  # a byte that is no UTF-8 becomes an answer, not a crash
    ]
    assert answers[1] == {
        "id": "hello",
        "error": "unknown_format",
        "message": "run ID matches no enabled format (legacy_run, uuid): 'hello'",
    }


def test_enable_format_turns_on_legacy_run_ts_and_ambiguity_lists_candidates() -> None:
    result = runner.invoke(
        ids_app, ["parse", "--enable-format", "legacy_run_ts", "run_abc_12345_7f3a9c01"]
    )
    assert result.exit_code == 1
    (answer,) = lines(result.stdout)
    assert answer["error"] == "ambiguous"
    assert answer["candidates"] == ["abc_12345", "abc"]
    assert not registry.is_enabled("legacy_run_ts")  # only for that command


def test_disable_format_turns_a_format_off() -> None:
    result = runner.invoke(
        ids_app, ["parse", "--disable-format", "uuid", "0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e"]
    )
    assert result.exit_code == 1
    assert lines(result.stdout)[0]["error"] == "unknown_format"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--enable-format", "nope"], "no format 'nope'"),  # not registered
        (["--disable-format", "canonical"], "cannot be disabled"),  # never off
    ],
)
def test_bad_format_options_exit_2_and_say_why(args: list[str], message: str) -> None:
    result = runner.invoke(ids_app, ["parse", *args, "x"])
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()).replace("│", "")


def test_formats_lists_every_format_with_its_switch() -> None:
    result = runner.invoke(ids_app, ["formats", "--enable-format", "legacy_run_ts"])
    assert result.exit_code == 0
    assert [(f["name"], f["enabled"]) for f in lines(result.stdout)] == [
        ("canonical", True),
        ("legacy_run", True),
        ("legacy_run_ts", True),
        ("uuid", True),
    ]


def test_the_logic_is_callable_without_the_cli() -> None:
    assert describe("run_abc_0badf00d")["thread_id"] == "abc"
    assert describe("x")["error"] == "unknown_format"
    formats = build_registry(["legacy_run_ts"], ["uuid"])
    assert formats.enabled_names() == ("canonical", "legacy_run", "legacy_run_ts")
    with pytest.raises(typer.BadParameter):
        build_registry(disable=["missing"])


def test_the_commands_are_reachable_from_the_threadwire_app() -> None:
    from threadwire.cli import app

    result = runner.invoke(app, ["ids", "parse", "run_abc_0badf00d"])
    assert result.exit_code == 0
    assert lines(result.stdout)[0]["thread_id"] == "abc"
