"""Parse-outcome counters and the once-per-ID legacy log (ids.md section 7)."""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY, generate_latest

from threadwire.ids import (
    InvalidIdError,
    extract_thread_id,
    metrics,
    new_thread_id,
    parse_run_id,
    registry,
)

CANONICAL = "thread_abc_run_1764021712123_7f3a9c01"


def parsed_total(fmt: str) -> float:
    return REGISTRY.get_sample_value("threadwire_id_parse_total", {"format": fmt}) or 0.0


def errors_total(code: str) -> float:
    return REGISTRY.get_sample_value("threadwire_id_parse_errors_total", {"code": code}) or 0.0


@pytest.fixture
def legacy_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """INFO records of the threadwire.ids logger, with the log's memory wiped first."""
    metrics.legacy_log.forget()
    caplog.set_level(logging.INFO, logger="threadwire.ids")
    yield caplog
    metrics.legacy_log.forget()


def test_each_parse_is_counted_by_format() -> None:
    before = {fmt: parsed_total(fmt) for fmt in ("canonical", "legacy_run", "uuid")}
    parse_run_id(CANONICAL)  # the fast path
    parse_run_id(f"thread_x_run_{'1' * 120}_7f3a9c01")  # the general canonical path
    extract_thread_id(CANONICAL)
    parse_run_id("run_abc_0badf00d")
    parse_run_id(new_thread_id())  # 32 hex digits read as a bare UUID
    assert parsed_total("canonical") - before["canonical"] == 3
    assert parsed_total("legacy_run") - before["legacy_run"] == 1
    assert parsed_total("uuid") - before["uuid"] == 1


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "empty"),
        ("a" * 300, "too_long"),
        ("a b", "bad_charset"),
        ("hello", "unknown_format"),
        ("0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e", "unknown_run"),
    ],
)
def test_each_rejection_is_counted_by_code(value: str, code: str) -> None:
    before = errors_total(code)
    with pytest.raises(InvalidIdError):
        extract_thread_id(value)
    assert errors_total(code) - before == 1


def test_ambiguity_is_counted_as_an_error_and_a_resolved_parse_by_its_format() -> None:
    with registry.scoped():
        registry.enable("legacy_run_ts")
        before_error, before_ts = errors_total("ambiguous"), parsed_total("legacy_run_ts")
        with pytest.raises(InvalidIdError):
            parse_run_id("run_abc_12345_7f3a9c01")
        parse_run_id("run_abc_12345_7f3a9c01", resolver=lambda c: "abc")
    assert errors_total("ambiguous") - before_error == 1
    assert parsed_total("legacy_run_ts") - before_ts == 1


def test_every_error_code_and_known_format_is_exposed_even_at_zero() -> None:
    text = generate_latest(REGISTRY).decode()
    for code in ("empty", "too_long", "bad_charset", "unknown_format", "ambiguous", "unknown_run"):
        assert f'threadwire_id_parse_errors_total{{code="{code}"}}' in text
    assert 'threadwire_id_parse_total{format="canonical"}' in text
    assert text.count("# TYPE threadwire_id_parse_total counter") == 1


def test_counting_loses_nothing_across_threads() -> None:
    before = parsed_total("canonical")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: [parse_run_id(CANONICAL) for _ in range(2000)], range(8)))
    assert parsed_total("canonical") - before == 16000


def test_a_legacy_id_is_logged_once_at_info_with_its_format(
    legacy_log: pytest.LogCaptureFixture,
) -> None:
    for _ in range(3):
        parse_run_id("run_user_7_0badf00d")
    parse_run_id("0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e")
    parse_run_id(CANONICAL)  # canonical parses are never logged
    records = legacy_log.records
    lines = [(r.levelno, r.name, r.getMessage()) for r in records]
    assert lines == [
        (
            logging.INFO,
            "threadwire.ids",
            "legacy run ID run_user_7_0badf00d parsed as format legacy_run",
        ),
        (
            logging.INFO,
            "threadwire.ids",
            "legacy run ID 0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e parsed as format uuid",
        ),
    ]
    assert records[0].__dict__["id_format"] == "legacy_run"
    assert records[0].__dict__["run_id"] == "run_user_7_0badf00d"


def test_the_legacy_log_forgets_its_oldest_ids_past_its_capacity(
    legacy_log: pytest.LogCaptureFixture,
) -> None:
    log = metrics.LegacyLog(capacity=2)
    for run_id in ("run_a_00000000", "run_b_00000000", "run_a_00000000", "run_c_00000000"):
        log(run_id, "legacy_run")
    log("run_a_00000000", "legacy_run")  # forgotten when c came in: logged again
    logged = [r.__dict__["run_id"] for r in legacy_log.records]
    assert logged == ["run_a_00000000", "run_b_00000000", "run_c_00000000", "run_a_00000000"]
    assert metrics.LEGACY_LOG_CAPACITY >= 10_000


def test_counter_snapshots_are_plain_numbers() -> None:
    counters = metrics.ParseCounters()
    next(counters.for_format("job"))
    next(counters.for_format("job"))
    counters.error("empty")
    assert counters.formats() == {"canonical": 0, "job": 2}
    assert counters.errors()["empty"] == 1


def test_reloading_the_module_keeps_its_counts_and_registers_nothing_twice() -> None:
    before = parsed_total("canonical")
    kept = metrics.counters
    reloaded = importlib.reload(metrics)
    assert reloaded.counters is kept
    parse_run_id(CANONICAL)
    assert parsed_total("canonical") - before == 1


def test_a_fresh_import_replaces_the_stale_collector() -> None:
    original = sys.modules["threadwire.ids.metrics"]
    del sys.modules["threadwire.ids.metrics"]
    try:
        fresh = importlib.import_module("threadwire.ids.metrics")
        assert fresh is not original
        next(fresh.counters.for_format("fresh_only"))
        assert parsed_total("fresh_only") == 1  # the registry now reads the new counts
    finally:
        sys.modules["threadwire.ids.metrics"] = original
        REGISTRY.unregister(fresh.collector)
        REGISTRY.register(original.collector)
    assert parsed_total("fresh_only") == 0
