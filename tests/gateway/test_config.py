"""Settings the gateway relies on: the JWT secret file and flag/environment precedence."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from threadwire.cli.serve import settings_from_options
from threadwire.config import Settings


def test_the_secret_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(secret_file=str(tmp_path / ".threadwire-secret"))
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: settings.resolve_jwt_secret(), range(16)))
    assert len(secrets) == 1 and len(secrets.pop()) >= 32
    mode = stat.S_IMODE(os.stat(settings.secret_file).st_mode)
    assert mode == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [".threadwire-secret"]


def test_a_configured_secret_wins(tmp_path: Path) -> None:
    settings = Settings(jwt_secret="s" * 40, secret_file=str(tmp_path / "f"))
    assert settings.resolve_jwt_secret() == "s" * 40
    assert not (tmp_path / "f").exists()


def test_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("THREADWIRE_PORT", "9000")
    monkeypatch.setenv("THREADWIRE_WS_QUEUE_SIZE", "7")
    settings = settings_from_options(port=9100, id_formats="canonical,uuid", agents=["m:f"])
    assert settings.port == 9100 and settings.ws_queue_size == 7
    assert settings.id_formats == ("canonical", "uuid") and settings.agents == ("m:f",)
