"""The report's verdict and JSON, and the CLI's refusals (exit 2) before any traffic."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from threadwire.cli import app
from threadwire.verify.faults import Fault
from threadwire.verify.ledger import Tally
from threadwire.verify.report import FormRate, Latency, Report


def report(**overrides: object) -> Report:
    values: dict[str, object] = {
        "target": ["http://127.0.0.1:1"],
        "spawned": 0,
        "chaos": "",
        "started_at": "2026-01-01T00:00:00+00:00",
        "elapsed_s": 1.0,
        "users": 1,
        "threads": 1,
        "subscribers": 1,
        "runs": {"completed": 1},
        "events_stored": 5,
        "tally": Tally(expected=5, delivered=5),
        "latency_ms": Latency.of([1.0, 2.0, 3.0, 4.0], 4),
        "connections": {"refused": 0},
        "spy": {"expected": 1, "refusals": 1, "breaches": 0, "events": 0},
        "forms": [FormRate("canonical", 1, 5, 0, 5, 5)],
    }
    values.update(overrides)
    return Report(**values)  # type: ignore[arg-type]


def test_a_clean_report_passes_and_round_trips_as_json() -> None:
    clean = report()
    assert clean.ok and clean.failures == [] and clean.success_rate == 1.0
    body = json.loads(clean.to_json())
    assert body["ok"] is True and body["forms"][0]["rate"] == 1.0
    assert body["latency_ms"] == {"count": 4, "p50": 3.0, "p90": 4.0, "p99": 4.0, "max": 4.0}


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tally": Tally(expected=5, delivered=4, lost=1)}, "1 lost"),
        ({"tally": Tally(expected=5, delivered=5, duplicated=2)}, "2 duplicated"),
        ({"tally": Tally(expected=5, delivered=5, misrouted=1)}, "1 misrouted"),
        ({"tally": Tally(expected=5, delivered=5, out_of_order=1)}, "1 out of order"),
        ({"tally": Tally()}, "no events were owed"),
        ({"spy": {"expected": 1, "refusals": 1, "breaches": 0, "events": 1}}, "seen by the spy"),
        ({"spy": {"expected": 2, "refusals": 0, "breaches": 0, "events": 0}}, "never refused"),
        ({"store_problems": ["thread t: seqs are not 1..3"]}, "store: thread t"),
        ({"forms": [FormRate("uuid", 1, 2, 2, 2, 0)]}, "2 ingested events refused"),
        ({"faults": [Fault("kill-node", "node-0", 1.0, error="restart failed")]}, "restart"),
    ],
)
def test_each_violation_fails_the_report_and_says_why(
    overrides: dict[str, object], reason: str
) -> None:
    bad = report(**overrides)
    assert not bad.ok
    assert any(reason in failure for failure in bad.failures), bad.failures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--token-secret", "s"], "give --url URL"),
        (["--url", "http://127.0.0.1:1"], "--token-secret is required"),
        (["--url", "http://127.0.0.1:1", "--token-secret", "s", "--chaos", "boom=1"], "boom=1"),
        (["--url", "http://127.0.0.1:1", "--token-secret", "s", "--duration", "x"], "duration"),
    ],
)
def test_the_cli_refuses_bad_settings_with_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["verify", *args], env={"THREADWIRE_JWT_SECRET": ""})
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_the_report_renders_its_verdict_forms_faults_and_failures() -> None:
    from rich.console import Console

    from threadwire.verify.display import progress_view, report_view
    from threadwire.verify.runner import Progress

    bad = report(
        tally=Tally(expected=5, delivered=4, lost=1),
        faults=[Fault("kill-node", "node-0", 1.0, offset_s=3.5, back_at=2.5, lost=1)],
        examples=["lost: u/s0 never received t seq 3"],
    )
    console = Console(record=True, width=160)
    console.print(report_view(bad))
    console.print(progress_view(Progress("load", 1.5, 2, 4, 10, 1, 0, 1)))
    text = console.export_text()
    for expected in ("FAIL", "canonical", "kill-node", "1 lost", "never received", "runs 2/4"):
        assert expected in text
