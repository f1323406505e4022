"""to_canonical: legacy run IDs become canonical ones of the same thread (ids.md 2.4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from threadwire.ids import InvalidIdError, parse_run_id, registry, to_canonical

WHEN = datetime(2025, 11, 24, 22, 1, 52, 123456, tzinfo=UTC)
WHEN_MS = 1764021712123  # WHEN truncated to the millisecond


@pytest.mark.parametrize(
    "created_at",
    [
        WHEN,  # an aware datetime
        WHEN.astimezone(timezone(timedelta(hours=-5))),  # the same instant elsewhere
        WHEN.replace(tzinfo=None),  # naive: read as UTC, as stores keep them
        WHEN_MS,  # epoch milliseconds
        WHEN_MS / 1000,  # epoch seconds as a float
    ],
)
def test_legacy_id_keeps_thread_and_rand_and_takes_the_creation_time(
    created_at: datetime | int | float,
) -> None:
    canonical = to_canonical(parse_run_id("run_user_42_0badf00d"), created_at=created_at)
    assert canonical == f"thread_user_42_run_{WHEN_MS}_0badf00d"


def test_epoch_seconds_as_an_int_are_read_as_seconds() -> None:
    canonical = to_canonical("run_abc_0badf00d", created_at=1764021712)
    assert canonical == "thread_abc_run_1764021712000_0badf00d"


def test_migrating_twice_changes_nothing() -> None:
    once = to_canonical("run_abc_0badf00d", created_at=WHEN)
    assert to_canonical(once, created_at=datetime(2030, 1, 1, tzinfo=UTC)) == once
    assert to_canonical(parse_run_id(once), created_at=WHEN) == once
    assert parse_run_id(once).to_canonical(created_at=WHEN) == once


def test_a_bare_uuid_needs_the_thread_from_the_caller() -> None:
    legacy = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"
    with pytest.raises(InvalidIdError) as caught:
        to_canonical(legacy, created_at=WHEN)
    assert caught.value.code == "unknown_run"
    first = to_canonical(legacy, created_at=WHEN, thread_id="t1")
    parsed = parse_run_id(first)
    assert (parsed.thread_id, parsed.timestamp_ms) == ("t1", WHEN_MS)
    assert to_canonical(legacy, created_at=WHEN, thread_id="t1") == first  # repeatable
    other = to_canonical(legacy.replace("0c1e", "0c1f"), created_at=WHEN, thread_id="t1")
    assert other != first


def test_a_thread_id_that_agrees_with_the_embedded_one_is_accepted() -> None:
    assert to_canonical("run_abc_0badf00d", created_at=WHEN, thread_id="abc").startswith(
        "thread_abc_run_"
    )
    with pytest.raises(ValueError, match="disagrees"):
        to_canonical("run_abc_0badf00d", created_at=WHEN, thread_id="xyz")
    with pytest.raises(InvalidIdError) as caught:
        to_canonical("0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e", created_at=WHEN, thread_id="a b")
    assert caught.value.code == "bad_charset"


def test_a_rand_that_is_no_rand8_is_replaced_by_one_derived_from_the_old_id() -> None:
    with registry.scoped():
        registry.register("short", r"s-(?P<thread>[a-z]+)-(?P<rand>[0-9a-f]{4})")
        registry.register("upper", r"u-(?P<thread>[a-z]+)-(?P<rand>[0-9A-F]{8})")
        short = to_canonical("s-abc-beef", created_at=WHEN)
        upper = to_canonical("u-abc-0BADF00D", created_at=WHEN)
    assert parse_run_id(short).rand != "beef"
    assert len(parse_run_id(short).rand or "") == 8
    assert upper.endswith("_0badf00d")  # eight hex digits in capitals are kept, lowered


def test_the_timestamp_of_a_legacy_id_is_not_what_decides() -> None:
    with registry.scoped():
        registry.enable("legacy_run_ts")
        parsed = parse_run_id("run_abc_1700000000000_0badf00d", resolver=lambda c: "abc")
    assert parsed.format == "legacy_run_ts"
    assert to_canonical(parsed, created_at=WHEN) == f"thread_abc_run_{WHEN_MS}_0badf00d"


@pytest.mark.parametrize(
    ("created_at", "error"),
    [
        (12345, ValueError),  # no plausible epoch in seconds or milliseconds
        (float("inf"), ValueError),  # no number at all
        (float("nan"), ValueError),  # nor this
        (datetime(1969, 12, 31, tzinfo=UTC), ValueError),  # before the epoch
        ("2025-11-24", TypeError),  # text: the caller parses its own columns
        (True, TypeError),  # a bool is no time
    ],
)
def test_a_creation_time_that_makes_no_timestamp_is_refused(
    created_at: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        to_canonical("run_abc_0badf00d", created_at=created_at)  # type: ignore[arg-type]


def test_an_invalid_id_is_refused_with_its_code() -> None:
    with pytest.raises(InvalidIdError) as caught:
        to_canonical("nonsense", created_at=WHEN)
    assert caught.value.code == "unknown_format"
