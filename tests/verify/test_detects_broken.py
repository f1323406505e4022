"""The verifier catches a server that breaks delivery of one single event, every time."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
from tests.gateway.harness import TEST_SECRET
from tests.verify.broken import Tamper, serve_broken

from threadwire.verify import Report, VerifyConfig, verify


def small_run(url: str, seed: int) -> VerifyConfig:
    """Two users, two threads each, two subscribers each: a couple of seconds."""
    return VerifyConfig(
        urls=(url,),
        token_secret=TEST_SECRET,
        users=2,
        threads=2,
        subscribers=2,
        runs=6,
        duration=1.0,
        steps=3,
        delay_ms=5,
        settle_timeout=20.0,
        seed=seed,
    )


async def run_against(mode: str, at_seq: int, seed: int) -> tuple[Report, Tamper]:
    tamper = Tamper(mode, at_seq=at_seq)
    async with serve_broken(tamper) as url:
        report = await verify(small_run(url, seed))
    assert tamper.fired, f"the broken server never tampered ({mode} at seq {at_seq})"
    return report, tamper


def counts(report: Report) -> dict[str, int]:
    t = report.tally
    return {
        "lost": t.lost,
        "duplicated": t.duplicated,
        "out_of_order": t.out_of_order,
        "misrouted": t.misrouted,
        "corrupted": t.corrupted,
        "unsolicited": t.unsolicited,
    }


# (mode, the one count it must raise to exactly 1, everything else stays 0)
CASES = [
    ("drop", "lost"),
    ("duplicate", "duplicated"),
    ("reorder", "out_of_order"),
    ("misroute", "misrouted"),
    ("corrupt", "corrupted"),
]


@pytest.mark.parametrize("at_seq", [1, 3, 8])
@pytest.mark.parametrize(("mode", "counter"), CASES)
async def test_one_broken_frame_fails_the_run_with_exactly_that_violation(
    mode: str, counter: str, at_seq: int
) -> None:
    report, tamper = await run_against(mode, at_seq, seed=at_seq)
    expected = {name: 0 for name in counts(report)}
    expected[counter] = 1
    assert counts(report) == expected, (tamper.detail, report.examples)
    assert not report.ok
    assert report.failures
    assert report.success_rate is not None
    if mode in ("drop", "corrupt"):
        assert report.success_rate < 1.0


async def test_an_honest_node_passes_the_same_run() -> None:
    tamper = Tamper("drop", at_seq=10**9)  # never fires
    async with serve_broken(tamper) as url:
        report = await verify(small_run(url, seed=7))
    assert report.ok, report.failures
    assert report.success_rate == 1.0


async def test_the_cli_exits_1_and_reports_the_loss_against_a_broken_server(tmp_path: Path) -> None:
    tamper = Tamper("drop", at_seq=2)
    async with serve_broken(tamper) as url:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "threadwire", "verify", "--url", url,
            "--token-secret", TEST_SECRET, "--users", "2", "--threads", "1", "--runs", "3",
            "--duration", "1s", "--json", str(tmp_path / "r.json"), "--quiet",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await process.communicate()
    assert process.returncode == 1, output.decode()
    assert "FAIL" in output.decode()
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] is False and report["tally"]["lost"] == 1
    assert "1 lost" in report["failures"]
