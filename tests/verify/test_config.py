"""Settings of a verification run: the --chaos language, durations, refusals."""

from __future__ import annotations

import pytest

from threadwire.verify.config import Chaos, ConfigError, VerifyConfig, parse_chaos, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("250ms", 0.25), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0), ("3", 3.0), (" 30s ", 30.0)],
)
def test_durations_read_with_their_unit(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "-1s", "10 s", "1d", "fast"])
def test_a_bad_duration_is_refused_quoting_it(text: str) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text)


def test_every_chaos_item_parses() -> None:
    chaos = parse_chaos(
        "drop=0.01,reconnect=5s,slow=0.1,slow-ms=50,resume=0.2,kill-node=30s,restart-bus=1m,down=2s"
    )
    assert chaos == Chaos(
        drop=0.01, reconnect=5.0, slow=0.1, slow_ms=50.0, resume=0.2,
        kill_node=30.0, restart_bus=60.0, down=2.0,
    )  # fmt: skip
    assert chaos.client_side and chaos.server_side
    assert parse_chaos(chaos.describe()) == chaos


@pytest.mark.parametrize("text", [None, "", " , "])
def test_no_chaos_is_none(text: str | None) -> None:
    chaos = parse_chaos(text)
    assert chaos == Chaos() and not chaos.client_side and not chaos.server_side
    assert chaos.describe() == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("explode=1", "bad chaos item 'explode=1'"),  # unknown name
        ("drop", "bad chaos item 'drop'"),  # no value
        ("drop=2", "probability must be 0 to 1"),  # out of range
        ("drop=lots", "not a probability"),  # not a number
        ("kill-node=0s", "interval must be positive"),
        ("reconnect=soon", "not a duration"),
    ],
)
def test_bad_chaos_is_refused_with_the_item(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_chaos(text)


def base(**overrides: object) -> VerifyConfig:
    values: dict[str, object] = {"urls": ("http://127.0.0.1:8000",), "token_secret": "s"}
    values.update(overrides)
    return VerifyConfig(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"token_secret": ""}, "--token-secret is required"),
        ({"users": 0}, "--users must be at least 1"),
        ({"legacy_share": 1.5}, "--legacy-share must be 0 to 1"),
        ({"urls": ()}, "give --url URL"),
        ({"spawn": 1}, "give --url or --spawn, not both"),
        ({"urls": ("127.0.0.1:8000",)}, "must be http"),
        ({"chaos": parse_chaos("kill-node=5s")}, "need --spawn"),
        ({"urls": (), "spawn": 2}, "needs --bus-url"),
        ({"urls": (), "spawn": 2, "spawn_redis": True}, "needs --database-url postgresql"),
        ({"urls": (), "spawn": 1, "chaos": parse_chaos("restart-bus=5s")}, "--spawn-redis"),
        ({"urls": (), "spawn": 1, "spawn_redis": True, "bus_url": "redis://x"}, "not both"),
    ],
)
def test_settings_that_cannot_work_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        base(**overrides).check()


def test_a_plain_url_config_passes() -> None:
    base().check()
