"""End to end: `threadwire verify --spawn` starts real `threadwire serve` processes,
kills and restarts them (and the Redis it started), and still finds every event."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from threadwire.verify import VerifyConfig, parse_chaos, verify

SECRET = "verify-test-secret-0123456789abcdef"


@pytest.mark.slow
async def test_the_cli_verifies_a_spawned_node_through_a_kill_and_exits_0(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "threadwire", "verify", "--spawn", "1",
        "--token-secret", SECRET, "--users", "2", "--threads", "1", "--runs", "4",
        "--duration", "2s", "--legacy-share", "0.75", "--seed", "5",
        "--chaos", "drop=0.02,kill-node=1s,down=0.1", "--json", str(report_path), "--quiet",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "PASS" in text
    report = json.loads(report_path.read_text())
    assert report["ok"] is True and report["failures"] == []
    assert report["success_rate"] == 1.0
    assert report["tally"]["lost"] == report["tally"]["duplicated"] == 0
    kills = [f for f in report["faults"] if f["kind"] == "kill-node"]
    assert kills and all(f["server_recovery_s"] is not None for f in kills)
    assert all(f["lost"] == 0 for f in kills)
    assert {f["form"] for f in report["forms"]} == {
        "canonical",
        "legacy_run",
        "legacy_run_ts",
        "uuid",
    }


def two_nodes(postgres_url: str, chaos: str) -> VerifyConfig:
    """Two spawned nodes on one PostgreSQL database and a Redis the verifier starts."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed: run `bash scripts/services.sh up`")
    return VerifyConfig(
        spawn=2,
        database_url=postgres_url,
        spawn_redis=True,
        token_secret=SECRET,
        users=3,
        threads=1,
        subscribers=2,
        runs=10,
        duration=3.0,
        legacy_share=0.3,
        delay_ms=10,
        chaos=parse_chaos(chaos),
        seed=9,
    )


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
async def test_two_nodes_lose_nothing_when_one_is_killed_and_clients_move_to_the_other(
    postgres_url: str,
) -> None:
    report = await verify(
        two_nodes(postgres_url, "reconnect=1.5s,resume=0.2,kill-node=1s,down=0.1")
    )
    assert report.ok, (report.failures, report.examples, report.notes)
    assert report.success_rate == 1.0
    assert report.faults and {f.kind for f in report.faults} == {"kill-node"}
    assert all(f.lost == 0 and f.error is None for f in report.faults)
    assert len(report.target) == 2


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
async def test_two_nodes_lose_nothing_across_a_restart_of_the_redis_bus(postgres_url: str) -> None:
    report = await verify(two_nodes(postgres_url, "drop=0.01,restart-bus=1s,down=0.2"))
    assert report.ok, (report.failures, report.examples, report.notes)
    assert report.success_rate == 1.0
    assert report.faults and {f.kind for f in report.faults} == {"restart-bus"}
    assert all(f.lost == 0 and f.server_recovery_s is not None for f in report.faults)
