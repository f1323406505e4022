"""The format registry: built-ins, user formats, precedence, ambiguity and resolvers."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from threadwire.ids import (
    FormatRegistry,
    IdFormat,
    InvalidIdError,
    extract_thread_id,
    format_registry,
    parse_run_id,
    registry,
)

AMBIGUOUS = "run_abc_12345_7f3a9c01"


@pytest.fixture
def reg() -> Iterator[FormatRegistry]:
    """The process registry, restored after the test whatever it changed."""
    with registry.scoped() as scoped:
        yield scoped


def test_builtin_formats_and_their_switches() -> None:
    fresh = FormatRegistry()
    assert fresh.names() == ("canonical", "legacy_run", "legacy_run_ts", "uuid")
    assert fresh.enabled_names() == ("canonical", "legacy_run", "uuid")
    assert not fresh.is_enabled("legacy_run_ts")
    assert not fresh.is_enabled("nope")
    assert len(fresh) == 4
    assert "uuid" in fresh
    assert fresh.get("legacy_run").has_thread
    assert not fresh.get("uuid").has_thread
    assert format_registry is registry


def test_legacy_run_ts_is_shipped_off_and_reads_two_ways_when_on(reg: FormatRegistry) -> None:
    assert parse_run_id(AMBIGUOUS).format == "legacy_run"
    reg.enable("legacy_run_ts")
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id(AMBIGUOUS)
    error = caught.value
    assert error.code == "ambiguous"
    assert error.candidates == ("abc_12345", "abc")  # by precedence, legacy_run first
    assert "'abc_12345'" in str(error)
    assert "'abc'" in str(error)


def test_a_resolver_settles_ambiguity_by_naming_the_thread_that_exists(reg: FormatRegistry) -> None:
    reg.enable("legacy_run_ts")
    seen: list[tuple[str, ...]] = []

    def exists(candidates: tuple[str, ...]) -> str | None:
        seen.append(candidates)
        return "abc" if "abc" in candidates else None

    parsed = parse_run_id(AMBIGUOUS, resolver=exists)
    assert (parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (
        "legacy_run_ts",
        "abc",
        12345,
        "7f3a9c01",
    )
    assert parsed.created_at is None  # 12345 is no plausible epoch
    assert seen == [("abc_12345", "abc")]
    assert extract_thread_id(AMBIGUOUS, resolver=lambda c: "abc_12345") == "abc_12345"


@pytest.mark.parametrize(
    "answer",
    [
        None,  # neither thread exists
        "xyz",  # a thread that is not among the candidates
        42,  # not even a string
    ],
)
def test_a_resolver_that_picks_no_candidate_leaves_the_id_ambiguous(
    reg: FormatRegistry, answer: object
) -> None:
    reg.enable("legacy_run_ts")
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id(AMBIGUOUS, resolver=lambda candidates: answer)  # type: ignore[arg-type,return-value]
    assert caught.value.code == "ambiguous"


def test_the_resolver_is_not_asked_when_the_id_is_not_ambiguous() -> None:
    def never(candidates: tuple[str, ...]) -> str | None:
        raise AssertionError("asked")

    assert parse_run_id("run_abc_0badf00d", resolver=never).thread_id == "abc"
    assert parse_run_id("thread_abc_run_1_0badf00d", resolver=never).thread_id == "abc"


def test_a_user_format_reads_its_ids(reg: FormatRegistry) -> None:
    fmt = reg.register(
        "job", r"job-(?P<thread>[a-z0-9]+)-(?P<ts>[0-9]+)-(?P<rand>[0-9a-f]{8})", precedence=5
    )
    assert fmt.enabled
    parsed = parse_run_id("job-acme42-1764021712-0badf00d")
    assert (parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (
        "job",
        "acme42",
        1764021712,
        "0badf00d",
    )
    assert parsed.created_at is not None and parsed.created_at.year == 2025  # seconds
    assert not parsed.is_canonical
    assert reg.names() == ("canonical", "legacy_run", "legacy_run_ts", "uuid", "job")


def test_a_user_format_never_reads_an_id_that_starts_with_thread(reg: FormatRegistry) -> None:
    reg.register("anything", r"(?P<thread>.+)", precedence=10_000)
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("thread_abc")
    assert caught.value.code == "unknown_format"
    assert parse_run_id("thread_abc_run_1_0badf00d").format == "canonical"
    assert parse_run_id("abc").format == "anything"


def test_formats_that_agree_on_the_thread_are_not_ambiguous_and_precedence_names_it(
    reg: FormatRegistry,
) -> None:
    reg.register(IdFormat("low", r"run_(?P<thread>[a-z]+)_(?P<rand>[0-9a-f]{8})", precedence=1))
    reg.register(IdFormat("high", r"run_(?P<thread>[a-z]+)_[0-9a-f]{8}", precedence=500))
    parsed = parse_run_id("run_abc_0badf00d")
    assert (parsed.format, parsed.thread_id, parsed.rand) == ("high", "abc", None)
    assert reg.names()[:2] == ("canonical", "high")


def test_equal_precedence_is_broken_by_registration_order(reg: FormatRegistry) -> None:
    reg.register("first", r"x(?P<thread>[a-z]+)", precedence=7)
    reg.register("second", r"x(?P<thread>[a-z]+)", precedence=7)
    assert parse_run_id("xabc").format == "first"


def test_a_format_without_a_thread_group_reads_ids_the_store_must_resolve(
    reg: FormatRegistry,
) -> None:
    reg.register("ticket", re.compile(r"T-[0-9]{6}"))
    parsed = parse_run_id("T-123456")
    assert (parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (
        "ticket",
        None,
        None,
        None,
    )
    with pytest.raises(InvalidIdError) as caught:
        extract_thread_id("T-123456")
    assert caught.value.code == "unknown_run"


def test_an_id_read_with_a_thread_and_without_one_is_ambiguous(reg: FormatRegistry) -> None:
    reg.register("opaque", r"run_[a-z]+_[0-9a-f]{8}")
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("run_abc_0badf00d")
    assert caught.value.code == "ambiguous"
    assert caught.value.candidates == ("abc",)
    assert "no thread (store lookup)" in str(caught.value)
    parsed = parse_run_id("run_abc_0badf00d", resolver=lambda candidates: "abc")
    assert (parsed.format, parsed.thread_id) == ("legacy_run", "abc")


def test_an_optional_thread_group_that_matched_nothing_is_no_match(reg: FormatRegistry) -> None:
    reg.register("maybe", r"m(?:-(?P<thread>[a-z]+))?-[0-9]+")
    assert parse_run_id("m-abc-1").thread_id == "abc"
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("m-1")
    assert caught.value.code == "unknown_format"


def test_a_ts_group_without_digits_gives_no_timestamp(reg: FormatRegistry) -> None:
    reg.register("dated", r"d-(?P<thread>[a-z]+)-(?P<ts>[0-9a-z]+)")
    assert parse_run_id("d-abc-x1").timestamp_ms is None
    assert parse_run_id("d-abc-17").timestamp_ms == 17


def test_a_user_format_thread_over_128_characters_is_too_long(reg: FormatRegistry) -> None:
    reg.register("long", r"L(?P<thread>[a-z]+)")
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("L" + "a" * 129)
    assert caught.value.code == "too_long"


def test_disabling_a_format_stops_it_reading(reg: FormatRegistry) -> None:
    reg.disable("legacy_run")
    assert not reg.get("legacy_run").enabled
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("run_abc_0badf00d")
    assert caught.value.code == "unknown_format"
    reg.disable("uuid")
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("hello")
    assert "(none)" in str(caught.value)


def test_unregister_removes_a_format(reg: FormatRegistry) -> None:
    reg.unregister("uuid")
    assert "uuid" not in reg
    with pytest.raises(KeyError):
        reg.unregister("uuid")


def test_registry_refuses_what_would_break_it(reg: FormatRegistry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        reg.register("uuid", r"x")
    with pytest.raises(ValueError, match="cannot be replaced"):
        reg.register("canonical", r"x", replace=True)
    with pytest.raises(ValueError, match="cannot be disabled"):
        reg.disable("canonical")
    with pytest.raises(ValueError, match="cannot be removed"):
        reg.unregister("canonical")
    with pytest.raises(KeyError):
        reg.enable("nope")
    with pytest.raises(TypeError, match="needs a regex"):
        reg.register("nope")
    with pytest.raises(TypeError, match="not both"):
        reg.register(IdFormat("x", "x"), "x")
    reg.enable("canonical")  # already on: nothing to do, nothing to refuse
    assert reg.is_enabled("canonical")


def test_replace_swaps_a_format_in_place(reg: FormatRegistry) -> None:
    reg.register("uuid", r"u-(?P<thread>[a-z]+)", precedence=10, replace=True)
    assert parse_run_id("u-abc").thread_id == "abc"
    assert reg.names().index("uuid") == 3


@pytest.mark.parametrize(
    ("name", "regex", "message"),
    [
        ("", "x", "non-empty name"),  # a format needs a name
        (7, "x", "non-empty name"),  # and the name is text
        ("bad", r"(?P<thread>a)(?P<other>b)", "not other"),  # only thread, ts and rand
        ("bytes", re.compile(rb"(?P<thread>a)"), "not bytes"),  # IDs are text
    ],
)
def test_id_format_checks_its_definition(name: object, regex: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdFormat(name, regex)  # type: ignore[arg-type]


def test_id_format_is_an_immutable_value() -> None:
    fmt = IdFormat("job", r"j-(?P<thread>[a-z]+)", precedence=3, enabled=False)
    assert fmt == IdFormat("job", r"j-(?P<thread>[a-z]+)", precedence=3, enabled=False)
    assert fmt.pattern.pattern == r"j-(?P<thread>[a-z]+)"
    with pytest.raises(AttributeError):
        fmt.precedence = 4  # type: ignore[misc]


def test_scoped_undoes_every_change() -> None:
    before = registry.enabled_names()
    with registry.scoped():
        registry.enable("legacy_run_ts")
        registry.register("job", r"j(?P<thread>[a-z]+)")
        registry.disable("uuid")
    assert registry.enabled_names() == before
    assert "job" not in registry


def test_copy_is_independent_and_reset_restores_the_builtins() -> None:
    original = FormatRegistry([IdFormat("job", r"j(?P<thread>[a-z]+)")])
    copy = original.copy()
    copy.enable("legacy_run_ts")
    assert not original.is_enabled("legacy_run_ts")
    assert copy.names() == original.names()
    copy.reset()
    assert copy.names() == ("canonical", "legacy_run", "legacy_run_ts", "uuid")


def test_parse_with_an_explicit_registry_leaves_the_process_one_alone() -> None:
    mine = FormatRegistry()
    mine.enable("legacy_run_ts")
    parsed = parse_run_id(AMBIGUOUS, registry=mine, resolver=lambda c: "abc")
    assert parsed.format == "legacy_run_ts"
    assert parse_run_id(AMBIGUOUS).format == "legacy_run"
    assert extract_thread_id(AMBIGUOUS, registry=mine, resolver=lambda c: "abc") == "abc"
    assert mine.parse("thread_abc_run_1_0badf00d").thread_id == "abc"
