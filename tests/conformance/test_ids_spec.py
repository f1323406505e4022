"""Conformance: ids.md, statement by statement, through the public names of section 6 only.

Written as an outside tester would: nothing here imports a private module or reads an
internal attribute. The format registry is the public `registry`; tests that change it
put it back as they found it.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from threadwire.ids import (
    IdFormat,
    InvalidIdError,
    ParsedRunId,
    UnifiedIDManager,
    extract_thread_id,
    new_connection_id,
    new_event_id,
    new_request_id,
    new_run_id,
    new_thread_id,
    parse_run_id,
    registry,
    to_canonical,
)

GRAMMAR_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CANONICAL_RE = re.compile(r"thread_(.+)_run_(0|[1-9][0-9]*)_([0-9a-f]{8})")
UUID_EXAMPLE = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"
FROZEN_S = 1_764_021_712.123
FROZEN_MS = 1_764_021_712_123

thread_ids = st.text(alphabet=GRAMMAR_CHARS, min_size=1, max_size=128)
rand8s = st.text(alphabet="0123456789abcdef", min_size=8, max_size=8)
fuzz = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def code_of(call: Callable[[], object]) -> str:
    """The `code` of the InvalidIdError `call` raises (and nothing else may escape)."""
    with pytest.raises(InvalidIdError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    return caught.value.code


def parse_code(value: object, **kw: Any) -> str:
    return code_of(lambda: parse_run_id(value, **kw))


def fresh_thread(prefix: str = "t") -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@pytest.fixture
def ts_enabled() -> Iterator[None]:
    """`legacy_run_ts` switched on for one test."""
    registry.enable("legacy_run_ts")
    try:
        yield
    finally:
        registry.disable("legacy_run_ts")


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop both clocks a test might freeze: time.time and time.time_ns."""
    monkeypatch.setattr(time, "time", lambda: FROZEN_S)
    monkeypatch.setattr(time, "time_ns", lambda: FROZEN_MS * 1_000_000 + 456_789)


# -- 1. thread IDs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "thread_id",
    [
        "a",
        "Z",
        "0",
        "_",
        "-",
        ".",
        ":",
        "a" * 128,
        "thread_abc_123",
        "run",
        "run_",
        "_run_",
        "thread_",
        "thread_x_run_1_deadbeef",
        "x_run_0_00000000",
        "run_a_deadbeef",
        "abc_12345_7f3a9c01",
        "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e",
        "deadbeef",
        "a:b.c-d_e",
        "_run_1_deadbeef_run_2_cafebabe",
        "1" * 128,
        ("_run_1_deadbeef" * 9)[:128],
    ],
)
def test_every_valid_thread_id_round_trips_exactly(thread_id: str) -> None:
    run_id = new_run_id(thread_id)
    assert extract_thread_id(run_id) == thread_id
    parsed = parse_run_id(run_id)
    assert (parsed.format, parsed.thread_id, parsed.is_canonical) == ("canonical", thread_id, True)
    assert UnifiedIDManager.extract_thread_id(run_id) == thread_id
    assert UnifiedIDManager.parse_run_id(run_id)["thread_id"] == thread_id


@pytest.mark.parametrize(
    ("thread_id", "code"),
    [
        ("", "empty"),
        (None, "empty"),
        (b"abc", "empty"),
        (42, "empty"),
        (["abc"], "empty"),
        ("a" * 129, "too_long"),
        ("a b", "bad_charset"),
        ("a/b", "bad_charset"),
        ("é", "bad_charset"),
        ("a\x00", "bad_charset"),
        ("a\n", "bad_charset"),
        ("\ud800", "bad_charset"),
        ("a\t", "bad_charset"),
        ("ａ", "bad_charset"),  # fullwidth: \w would take it
        ("٣", "bad_charset"),  # Arabic-Indic digit: \d would take it
        ("a" * 200 + " ", "too_long"),  # too_long before bad_charset
    ],
)
def test_new_run_id_rejects_what_the_grammar_does(thread_id: object, code: str) -> None:
    assert code_of(lambda: new_run_id(thread_id)) == code  # type: ignore[arg-type]


def test_new_thread_id_is_32_lowercase_hex_of_a_uuid7() -> None:
    before = time.time_ns() // 1_000_000
    made = [new_thread_id() for _ in range(200)]
    after = time.time_ns() // 1_000_000
    for thread_id in made:
        assert re.fullmatch(r"[0-9a-f]{32}", thread_id)
        value = uuid.UUID(hex=thread_id)
        assert value.version == 7
        assert value.variant == uuid.RFC_4122
        assert thread_id[12] == "7" and thread_id[16] in "89ab"
        assert before <= value.int >> 80 <= after
        assert extract_thread_id(new_run_id(thread_id)) == thread_id
    assert len(set(made)) == len(made)
    assert made == sorted(made)  # time-ordered, even within one millisecond


# -- 2.1 canonical run IDs --------------------------------------------------------------


def test_new_run_id_shape() -> None:
    before = time.time_ns() // 1_000_000
    run_id = new_run_id("user_42")
    after = time.time_ns() // 1_000_000
    match = CANONICAL_RE.fullmatch(run_id)
    assert match is not None
    assert match.group(1) == "user_42"
    assert before <= int(match.group(2)) <= after
    parsed = parse_run_id(run_id)
    assert parsed.timestamp_ms == int(match.group(2))
    assert parsed.rand == match.group(3)
    assert parsed.raw == run_id
    assert parsed.created_at is not None and parsed.created_at.tzinfo is not None


def test_canonical_parse_is_anchored_right_for_thread_ids_that_look_like_run_ids() -> None:
    inner = "thread_x_run_1_deadbeef"
    run_id = f"thread_{inner}_run_1764021712123_0badf00d"
    parsed = parse_run_id(run_id)
    assert parsed.thread_id == inner
    assert parsed.timestamp_ms == 1764021712123
    assert parsed.rand == "0badf00d"
    assert extract_thread_id(run_id) == inner
    # a thread made of run suffixes only
    tricky = "_run_1_deadbeef_run_2_cafebabe"
    assert extract_thread_id(f"thread_{tricky}_run_3_00000000") == tricky


@pytest.mark.parametrize(
    "run_id",
    [
        "thread_a_run_01_deadbeef",  # leading zero
        "thread_a_run_-1_deadbeef",
        "thread_a_run_1.5_deadbeef",
        "thread_a_run_1_DEADBEEF",  # rand8 is lowercase
        "thread_a_run_1_deadbee",
        "thread_a_run_1_deadbeef0",
        "thread_a_run__deadbeef",
        "thread__run_1_deadbeef",  # empty thread
        "thread_a_run_1_deadbeeg",
        "thread_a_1_deadbeef",
        "thread_a_run_1",
        "thread_",
        "thread_a",
        "thread_" + "a" * 200,
    ],
)
def test_malformed_canonical_ids_are_unknown_format(run_id: str) -> None:
    assert parse_code(run_id) == "unknown_format"


def test_timestamp_zero_is_allowed_but_not_plausible() -> None:
    parsed = parse_run_id("thread_a_run_0_deadbeef")
    assert (parsed.thread_id, parsed.timestamp_ms, parsed.created_at) == ("a", 0, None)


def test_run_id_length_limits_and_check_order() -> None:
    # exactly 256, canonical with a 128-character thread: fine
    ts = "1" * (256 - len("thread_") - 128 - len("_run_") - 9)
    ok = f"thread_{'a' * 128}_run_{ts}_deadbeef"
    assert len(ok) == 256
    assert parse_run_id(ok).thread_id == "a" * 128
    # 257: too_long, even though it is otherwise a valid canonical ID
    over = f"thread_{'a' * 128}_run_{ts}1_deadbeef"
    assert len(over) == 257
    assert parse_code(over) == "too_long"
    # 257 with a bad character: too_long comes first
    assert parse_code("a" * 256 + " ") == "too_long"
    assert parse_code(" " * 257) == "too_long"
    # 256 with a bad character: bad_charset
    assert parse_code("a" * 255 + " ") == "bad_charset"
    # 256, valid charset, no format: unknown_format
    assert parse_code("a" * 256) == "unknown_format"
    # embedded thread over 128 in an otherwise valid run ID: too_long after matching
    long_thread = f"thread_{'a' * 129}_run_1764021712123_deadbeef"
    assert parse_code(long_thread) == "too_long"
    biggest = "thread_" + "b" * (256 - 7 - 5 - 13 - 9) + "_run_1764021712123_deadbeef"
    assert len(biggest) == 256
    assert parse_code(biggest) == "too_long"
    assert parse_code(f"run_{'a' * 129}_deadbeef") == "too_long"
    # a bad character inside a too-long thread: bad_charset first
    assert parse_code(f"thread_{'a' * 129} _run_1764021712123_deadbeef") == "bad_charset"
    # no format with a long "thread": unknown_format, not too_long
    assert parse_code("thread_" + "a" * 240) == "unknown_format"
    assert parse_code("run_" + "a" * 240) == "unknown_format"


def test_ambiguous_comes_before_too_long_of_the_thread(ts_enabled: None) -> None:
    run_id = f"run_{'a' * 130}_12345_7f3a9c01"
    assert parse_code(run_id) == "ambiguous"
    assert parse_code(run_id, resolver=lambda c: "a" * 130) == "too_long"


def test_unknown_run_comes_last() -> None:
    assert code_of(lambda: extract_thread_id(UUID_EXAMPLE)) == "unknown_run"
    assert code_of(lambda: extract_thread_id("")) == "empty"
    assert code_of(lambda: extract_thread_id("x" * 300)) == "too_long"
    assert code_of(lambda: extract_thread_id("not a run")) == "bad_charset"
    assert code_of(lambda: extract_thread_id("nothing")) == "unknown_format"


class StrSub(str):
    """A str subclass: not a plain string, but a string."""


class Weird:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __len__(self) -> int:
        raise RuntimeError("no len")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"run_a_deadbeef",
        bytearray(b"x"),
        0,
        1,
        3.5,
        True,
        [],
        ["run_a_deadbeef"],
        {},
        (),
        object(),
        Weird(),
    ],
    ids=lambda v: type(v).__name__,
)
def test_non_strings_are_empty(value: object) -> None:
    assert parse_code(value) == "empty"
    assert code_of(lambda: extract_thread_id(value)) == "empty"


def test_empty_string_and_empty_str_subclass_are_empty() -> None:
    assert parse_code("") == "empty"
    assert parse_code(StrSub("")) == "empty"


def test_a_str_subclass_is_read_as_its_text() -> None:
    # "not a string" means not a str: a str subclass is a string and parses as its text.
    parsed = parse_run_id(StrSub("run_user_42_7f3a9c01"))
    assert parsed.thread_id == "user_42"
    assert type(parsed.raw) is str


@pytest.mark.parametrize(
    "value",
    [
        "run_a\x00_deadbeef",
        "run_a\n_deadbeef",
        "\ud800",
        "run_\udcff_deadbeef",
        "a b",
        "a/b",
        "é",
        "\n",
        "\x00",
        "thread_a_run_1_deadbeef\n",
    ],
)
def test_control_surrogate_and_non_ascii_characters_are_bad_charset(value: str) -> None:
    assert parse_code(value) == "bad_charset"


def test_error_message_quotes_the_input_cut_to_80_and_escaped() -> None:
    long = "q" * 79 + "Z" + "w" * 100 + "\n"
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id(long)
    message = str(caught.value)
    assert "q" * 79 + "Z" in message
    assert "w" not in message  # cut at 80
    assert "\n" not in message
    for raw in ["a\nb", "a\x00b", "a\rb", "\ud800x", "a\x1bb"]:
        with pytest.raises(InvalidIdError) as caught:
            parse_run_id(raw)
        text = str(caught.value)
        assert "\n" not in text and "\x00" not in text and "\r" not in text and "\x1b" not in text
        text.encode("utf-8")  # no lone surrogate left in it
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("nothing_like_it")
    assert "nothing_like_it" in str(caught.value)


# -- 2.2 legacy formats -----------------------------------------------------------------


def test_legacy_run_example_and_right_anchoring() -> None:
    parsed = parse_run_id("run_user_42_7f3a9c01")
    assert (parsed.format, parsed.thread_id, parsed.rand, parsed.is_canonical) == (
        "legacy_run",
        "user_42",
        "7f3a9c01",
        False,
    )
    assert parsed.timestamp_ms is None and parsed.created_at is None
    assert parse_run_id("run_a_deadbeef_cafebabe").thread_id == "a_deadbeef"
    assert parse_run_id("run_thread_a_run_1_deadbeef").thread_id == "thread_a_run_1"
    assert parse_run_id("run_run_deadbeef").thread_id == "run"
    assert parse_run_id("run_abc_12345_7f3a9c01").thread_id == "abc_12345"  # ts off
    assert parse_code("run_a_DEADBEEF") == "unknown_format"
    assert parse_code("run__deadbeef") == "unknown_format"
    assert parse_code("run_deadbeef") == "unknown_format"


@given(thread_id=thread_ids, rand=rand8s)
@fuzz
def test_legacy_run_reads_any_thread_exactly(thread_id: str, rand: str) -> None:
    parsed = parse_run_id(f"run_{thread_id}_{rand}")
    assert (parsed.format, parsed.thread_id, parsed.rand) == ("legacy_run", thread_id, rand)


@pytest.mark.parametrize(
    "value",
    [
        UUID_EXAMPLE,
        UUID_EXAMPLE.upper(),
        UUID_EXAMPLE.replace("-", ""),
        UUID_EXAMPLE.replace("-", "").upper(),
        str(uuid.uuid4()),
        uuid.uuid1().hex,
        str(uuid.UUID(int=0)),
    ],
)
def test_uuids_parse_without_a_thread(value: str) -> None:
    parsed = parse_run_id(value)
    assert (parsed.format, parsed.thread_id, parsed.is_canonical) == ("uuid", None, False)
    assert parsed.raw == value
    assert code_of(lambda: extract_thread_id(value)) == "unknown_run"


@pytest.mark.parametrize(
    "value",
    [
        UUID_EXAMPLE[:-1],
        UUID_EXAMPLE + "0",
        UUID_EXAMPLE.replace("-", "")[:31],
        "{" + UUID_EXAMPLE + "}",
        UUID_EXAMPLE.replace("0", "g"),
    ],
)
def test_not_quite_uuids_are_rejected(value: str) -> None:
    assert parse_code(value) in {"unknown_format", "bad_charset"}


def test_legacy_run_ts_is_off_by_default() -> None:
    parsed = parse_run_id("run_abc_12345_7f3a9c01")
    assert parsed.format == "legacy_run" and parsed.thread_id == "abc_12345"


def test_legacy_run_ts_when_enabled_is_ambiguous_and_names_every_candidate(
    ts_enabled: None,
) -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("run_abc_12345_7f3a9c01")
    assert caught.value.code == "ambiguous"
    assert "'abc_12345'" in str(caught.value) and "'abc'" in str(caught.value)
    assert code_of(lambda: extract_thread_id("run_abc_12345_7f3a9c01")) == "ambiguous"


def test_a_resolver_settles_ambiguity(ts_enabled: None) -> None:
    seen: list[tuple[str, ...]] = []

    def pick(candidates: tuple[str, ...]) -> str | None:
        seen.append(tuple(candidates))
        return "abc"

    parsed = parse_run_id("run_abc_12345_7f3a9c01", resolver=pick)
    assert set(seen[0]) == {"abc", "abc_12345"}
    assert (parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (
        "legacy_run_ts",
        "abc",
        12345,
        "7f3a9c01",
    )
    other = parse_run_id("run_abc_12345_7f3a9c01", resolver=lambda c: "abc_12345")
    assert (other.format, other.thread_id) == ("legacy_run", "abc_12345")
    assert extract_thread_id("run_abc_12345_7f3a9c01", resolver=lambda c: "abc") == "abc"
    assert parse_code("run_abc_12345_7f3a9c01", resolver=lambda c: None) == "ambiguous"
    assert parse_code("run_abc_12345_7f3a9c01", resolver=lambda c: "neither") == "ambiguous"
    # an unambiguous ID never calls the resolver
    calls: list[object] = []
    assert parse_run_id("run_abc_7f3a9c01", resolver=lambda c: calls.append(c)).thread_id == "abc"
    assert (
        parse_run_id(new_run_id("abc_1"), resolver=lambda c: calls.append(c)).thread_id == "abc_1"
    )
    assert calls == []


def test_legacy_run_ts_created_at_from_a_plausible_number(ts_enabled: None) -> None:
    parsed = parse_run_id("run_abc_1700000000000_7f3a9c01", resolver=lambda c: "abc")
    assert parsed.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_prefix_decides_the_family() -> None:
    greedy = "everything"
    registry.register(greedy, r"(?P<thread>.+)", precedence=10_000)
    try:
        # a thread_ string is only ever canonical, whatever a legacy regex would match
        assert parse_code("thread_abc") == "unknown_format"
        assert parse_run_id("thread_abc_run_1_deadbeef").format == "canonical"
        # a run_ string is only ever legacy: the greedy format reads it too, so the
        # legacy readings disagree, but the canonical regex is never tried
        assert parse_run_id("run_abc_deadbeef", resolver=lambda c: "abc").format == "legacy_run"
        assert parse_run_id("plain", resolver=lambda c: "plain").format == greedy
    finally:
        registry.unregister(greedy)
    thread_only = "thread_shape"
    registry.register(thread_only, r"thread_(?P<thread>[a-z]+)", precedence=10_000)
    try:
        assert parse_code("thread_abc") == "unknown_format"
    finally:
        registry.unregister(thread_only)
    # a run_ string shaped like a canonical ID is read as legacy_run
    parsed = parse_run_id("run_thread_a_run_1_deadbeef")
    assert (parsed.format, parsed.thread_id) == ("legacy_run", "thread_a_run_1")


def test_a_registered_format_with_a_thread_group() -> None:
    fmt = IdFormat(
        "job", r"job-(?P<thread>[a-z0-9]+)-(?P<ts>[0-9]+)-(?P<rand>[0-9a-f]{8})", precedence=50
    )
    registry.register(fmt)
    try:
        parsed = parse_run_id("job-acme-1700000000-0badf00d")
        assert (parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (
            "job",
            "acme",
            1700000000,
            "0badf00d",
        )
        assert parsed.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        assert extract_thread_id("job-acme-1700000000-0badf00d") == "acme"
        when = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        assert to_canonical(parsed, created_at=when) == (
            f"thread_acme_run_{int(when.timestamp() * 1000)}_0badf00d"
        )
    finally:
        registry.unregister("job")
    assert parse_code("job-acme-1700000000-0badf00d") == "unknown_format"


def test_a_registered_format_without_a_thread_group() -> None:
    registry.register(IdFormat("ticket", r"T-[0-9]{6}", precedence=5))
    try:
        parsed = parse_run_id("T-123456")
        assert (parsed.format, parsed.thread_id, parsed.is_canonical) == ("ticket", None, False)
        assert code_of(lambda: extract_thread_id("T-123456")) == "unknown_run"
    finally:
        registry.unregister("ticket")


def test_precedence_names_the_format_when_formats_agree() -> None:
    registry.register(
        IdFormat("shadow", r"run_(?P<thread>[a-z]+)_(?P<rand>[0-9a-f]{8})", precedence=500)
    )
    try:
        assert parse_run_id("run_abc_deadbeef").format == "shadow"
        assert parse_run_id("run_abc_1_deadbeef").format == "legacy_run"  # shadow needs [a-z]+
    finally:
        registry.unregister("shadow")
    registry.register(
        IdFormat("under", r"run_(?P<thread>[a-z]+)_(?P<rand>[0-9a-f]{8})", precedence=1)
    )
    try:
        assert parse_run_id("run_abc_deadbeef").format == "legacy_run"
    finally:
        registry.unregister("under")


def test_disabled_registered_formats_do_not_match() -> None:
    registry.register(IdFormat("off", r"off-(?P<thread>[a-z]+)", enabled=False))
    try:
        assert parse_code("off-abc") == "unknown_format"
        registry.enable("off")
        assert parse_run_id("off-abc").thread_id == "off-abc"[4:]
    finally:
        registry.unregister("off")


# -- 2.3 the parsed value ---------------------------------------------------------------


def test_parsed_value_is_immutable_hashable_and_has_its_fields() -> None:
    run_id = "thread_user_42_run_1764021712123_7f3a9c01"
    parsed = parse_run_id(run_id)
    assert isinstance(parsed, ParsedRunId)
    assert parsed.raw == run_id
    assert parsed.format == "canonical"
    assert parsed.thread_id == "user_42"
    assert parsed.timestamp_ms == 1764021712123
    assert parsed.created_at == datetime(2025, 11, 24, 22, 1, 52, 123000, tzinfo=UTC)
    assert parsed.rand == "7f3a9c01"
    assert parsed.is_canonical is True
    for name in (
        "raw",
        "format",
        "thread_id",
        "timestamp_ms",
        "created_at",
        "rand",
        "is_canonical",
    ):
        with pytest.raises((AttributeError, TypeError)):
            setattr(parsed, name, "x")
    again = parse_run_id(run_id)
    assert again == parsed and hash(again) == hash(parsed)
    assert len({parsed, again, parse_run_id("run_user_42_7f3a9c01")}) == 2
    assert {parsed: 1}[again] == 1
    legacy = parse_run_id("run_user_42_7f3a9c01")
    assert legacy.is_canonical is False
    assert legacy != parsed


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (1700000000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1700000000123, datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
        (946684800, datetime(2000, 1, 1, tzinfo=UTC)),
        (946684800000, datetime(2000, 1, 1, tzinfo=UTC)),
        (7258118399, datetime(2199, 12, 31, 23, 59, 59, tzinfo=UTC)),
        (7258118399999, datetime(2199, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)),
        (0, None),
        (1, None),
        (12345, None),
        (946684799, None),  # 1999 in seconds, 1970 in ms
        (10_000_000_000, None),  # 2286 in seconds, 1970 in ms
        (900_000_000_000, None),  # 1998 in ms
        (7258118400001, None),  # past 2200 in ms
        (10**40, None),
    ],
)
def test_created_at_is_aware_utc_or_none(ts: int, expected: datetime | None) -> None:
    parsed = parse_run_id(f"thread_t_run_{ts}_deadbeef")
    assert parsed.timestamp_ms == ts
    assert parsed.created_at == expected
    if expected is not None:
        assert parsed.created_at is not None
        assert parsed.created_at.utcoffset() is not None
        assert parsed.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_a_generated_run_id_has_a_plausible_created_at() -> None:
    parsed = parse_run_id(new_run_id("x"))
    assert parsed.created_at is not None
    assert abs((datetime.now(UTC) - parsed.created_at).total_seconds()) < 60


# -- 2.4 migration ----------------------------------------------------------------------


def test_to_canonical_keeps_thread_and_rand_and_takes_the_time() -> None:
    when = datetime(2025, 11, 24, 22, 1, 52, 123456, tzinfo=UTC)
    new = to_canonical(parse_run_id("run_user_42_7f3a9c01"), created_at=when)
    assert new == "thread_user_42_run_1764021712123_7f3a9c01"
    parsed = parse_run_id(new)
    assert (parsed.thread_id, parsed.rand, parsed.timestamp_ms) == (
        "user_42",
        "7f3a9c01",
        1764021712123,
    )
    # tricky legacy thread IDs
    tricky = to_canonical(parse_run_id("run_thread_x_run_1_deadbeef_0badf00d"), created_at=when)
    assert extract_thread_id(tricky) == "thread_x_run_1_deadbeef"
    assert parse_run_id(tricky).rand == "0badf00d"


def test_to_canonical_is_idempotent_on_canonical_input() -> None:
    run_id = "thread_user_42_run_1764021712123_7f3a9c01"
    later = datetime(2030, 1, 1, tzinfo=UTC)
    assert to_canonical(parse_run_id(run_id), created_at=later) == run_id
    migrated = to_canonical(parse_run_id("run_a_0badf00d"), created_at=later)
    assert (
        to_canonical(parse_run_id(migrated), created_at=datetime(2040, 1, 1, tzinfo=UTC))
        == migrated
    )


def test_to_canonical_of_an_id_without_thread_raises() -> None:
    with pytest.raises(InvalidIdError) as caught:
        to_canonical(parse_run_id(UUID_EXAMPLE), created_at=datetime(2025, 1, 1, tzinfo=UTC))
    assert caught.value.code == "unknown_run"


def test_to_canonical_of_an_ambiguous_id_settled_by_a_resolver(ts_enabled: None) -> None:
    parsed = parse_run_id("run_abc_12345_7f3a9c01", resolver=lambda c: "abc")
    when = datetime(2025, 11, 24, 22, 1, 52, 123000, tzinfo=UTC)
    assert to_canonical(parsed, created_at=when) == "thread_abc_run_1764021712123_7f3a9c01"


# -- 3. other IDs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "prefix"),
    [(new_event_id, "evt_"), (new_connection_id, "conn_"), (new_request_id, "req_")],
)
def test_ulid_ids_have_their_shape_and_sort(make: Callable[[], str], prefix: str) -> None:
    before = time.time_ns() // 1_000_000
    made = [make() for _ in range(500)]
    after = time.time_ns() // 1_000_000
    for value in made:
        assert value.startswith(prefix)
        body = value[len(prefix) :]
        assert len(body) == 26
        assert set(body) <= set(CROCKFORD)
        assert body[0] in "01234567"  # 128 bits fit
        ms = 0
        for char in body[:10]:
            ms = ms * 32 + CROCKFORD.index(char)
        assert before <= ms <= after
    assert len(set(made)) == len(made)
    assert made == sorted(made)


# -- uniqueness under a frozen clock ----------------------------------------------------


def test_uniqueness_under_a_frozen_clock_from_many_threads(frozen: None) -> None:
    per_thread, workers = 1500, 8
    results: list[list[str]] = [[] for _ in range(workers)]
    barrier = threading.Barrier(workers)

    def work(slot: int) -> None:
        barrier.wait()
        out = results[slot]
        for _ in range(per_thread):
            out.append(new_run_id("same_thread"))
            out.append(new_thread_id())
            out.append(new_event_id())
            out.append(new_connection_id())
            out.append(new_request_id())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [v for out in results for v in out]
    assert len(everything) == per_thread * workers * 5
    assert len(set(everything)) == len(everything)
    runs = [v for v in everything if v.startswith("thread_")]
    assert {parse_run_id(r).timestamp_ms for r in runs} == {FROZEN_MS}
    assert {uuid.UUID(hex=v).int >> 80 for v in everything if re.fullmatch("[0-9a-f]{32}", v)} == {
        FROZEN_MS
    }
    # within one thread, IDs made in one frozen millisecond still sort in order made
    for out in results:
        mine = [v for v in out if re.fullmatch("[0-9a-f]{32}", v)]
        assert mine == sorted(mine)
        events = [v for v in out if v.startswith("evt_")]
        assert events == sorted(events)


def test_frozen_clock_through_time_time_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: FROZEN_S)
    made = {new_run_id("abc") for _ in range(5000)}
    assert len(made) == 5000
    assert {parse_run_id(r).timestamp_ms for r in made} == {FROZEN_MS}


def test_frozen_clock_through_time_ns_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time_ns", lambda: FROZEN_MS * 1_000_000)
    made = {new_run_id("abc") for _ in range(2000)}
    assert len(made) == 2000
    stamps = {parse_run_id(r).timestamp_ms for r in made}
    # either clock is a fair reading; a frozen one must not break uniqueness
    assert len(stamps) >= 1


# -- 4. errors: fuzzing -----------------------------------------------------------------


def _only_invalid_id_error(value: object) -> None:
    for call in (
        lambda: parse_run_id(value),
        lambda: extract_thread_id(value),
        lambda: UnifiedIDManager.parse_run_id(value),  # type: ignore[arg-type]
        lambda: UnifiedIDManager.extract_thread_id(value),  # type: ignore[arg-type]
    ):
        try:
            call()
        except InvalidIdError as error:
            assert error.code in {
                "empty",
                "too_long",
                "bad_charset",
                "unknown_format",
                "ambiguous",
                "unknown_run",
            }
            str(error).encode("utf-8")
            assert "\n" not in str(error)


@given(st.text(max_size=300))
@fuzz
def test_fuzz_text(value: str) -> None:
    _only_invalid_id_error(value)


@given(st.binary(max_size=300))
@fuzz
def test_fuzz_bytes_decoded_with_surrogates(raw: bytes) -> None:
    _only_invalid_id_error(raw.decode("utf-8", "surrogateescape"))
    _only_invalid_id_error(
        raw.decode("utf-16", "surrogatepass") if len(raw) % 2 == 0 else raw.decode("latin-1")
    )
    _only_invalid_id_error(raw)


@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.complex_numbers(),
        st.binary(),
        st.lists(st.text(max_size=5), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
        st.tuples(st.text()),
        st.text(max_size=300).map(StrSub),
        st.builds(object),
        st.builds(Weird),
        st.sampled_from([int, str, type, Ellipsis, NotImplemented]),
    )
)
@fuzz
def test_fuzz_objects(value: object) -> None:
    _only_invalid_id_error(value)


@given(st.text(alphabet=GRAMMAR_CHARS, max_size=300))
@fuzz
def test_fuzz_grammar_text(value: str) -> None:
    _only_invalid_id_error(value)
    _only_invalid_id_error("thread_" + value)
    _only_invalid_id_error("run_" + value)


@given(st.text(alphabet=GRAMMAR_CHARS, max_size=300))
@fuzz
def test_fuzz_grammar_text_with_ts_enabled(value: str) -> None:
    registry.enable("legacy_run_ts")
    try:
        _only_invalid_id_error("run_" + value)
        _only_invalid_id_error(f"run_{value}_1_deadbeef")
    finally:
        registry.disable("legacy_run_ts")


@given(thread_id=thread_ids)
@fuzz
def test_round_trip_for_every_valid_thread(thread_id: str) -> None:
    run_id = new_run_id(thread_id)
    assert len(run_id) <= 256
    assert extract_thread_id(run_id) == thread_id
    assert parse_run_id(run_id).thread_id == thread_id


@given(thread_id=thread_ids, ts=st.integers(min_value=0, max_value=10**20), rand=rand8s)
@fuzz
def test_canonical_parse_is_exact(thread_id: str, ts: int, rand: str) -> None:
    run_id = f"thread_{thread_id}_run_{ts}_{rand}"
    if len(run_id) > 256:
        assert parse_code(run_id) == "too_long"
        return
    parsed = parse_run_id(run_id)
    assert (parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (thread_id, ts, rand)


# -- 5. the facade ----------------------------------------------------------------------


def test_facade_has_exactly_three_static_methods() -> None:
    public = {name for name in dir(UnifiedIDManager) if not name.startswith("_")}
    assert public == {"generate_run_id", "parse_run_id", "extract_thread_id"}
    for name in public:
        assert isinstance(inspect.getattr_static(UnifiedIDManager, name), staticmethod)


def test_facade_delegates() -> None:
    run_id = UnifiedIDManager.generate_run_id("thread_abc_123")
    assert CANONICAL_RE.fullmatch(run_id)
    assert UnifiedIDManager.extract_thread_id(run_id) == "thread_abc_123"
    as_dict = UnifiedIDManager.parse_run_id(run_id)
    assert type(as_dict) is dict
    assert as_dict["format"] == "canonical" and as_dict["thread_id"] == "thread_abc_123"
    legacy = UnifiedIDManager.parse_run_id("run_user_42_7f3a9c01")
    assert (legacy["format"], legacy["thread_id"]) == ("legacy_run", "user_42")
    assert UnifiedIDManager.parse_run_id(UUID_EXAMPLE)["thread_id"] is None
    for call in (
        lambda: UnifiedIDManager.parse_run_id("nope"),
        lambda: UnifiedIDManager.extract_thread_id(UUID_EXAMPLE),
        lambda: UnifiedIDManager.generate_run_id("a b"),
    ):
        with pytest.raises(InvalidIdError):
            call()


# -- 7. observability -------------------------------------------------------------------


def _samples(metric: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == metric:
                found[next(iter(sample.labels.values()), "")] = sample.value
    return found


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        k: after.get(k, 0) - before.get(k, 0)
        for k in set(before) | set(after)
        if after.get(k, 0) != before.get(k, 0)
    }


def _moved(call: Callable[[], object]) -> tuple[dict[str, float], dict[str, float]]:
    formats, errors = (
        _samples("threadwire_id_parse_total"),
        _samples("threadwire_id_parse_errors_total"),
    )
    try:
        call()
    except InvalidIdError:
        pass
    return (
        _delta(formats, _samples("threadwire_id_parse_total")),
        _delta(errors, _samples("threadwire_id_parse_errors_total")),
    )


def test_counters_move_by_one_per_parse(ts_enabled: None) -> None:
    canonical = new_run_id("m")
    assert _moved(lambda: parse_run_id(canonical)) == ({"canonical": 1}, {})
    assert _moved(lambda: extract_thread_id(canonical)) == ({"canonical": 1}, {})
    assert _moved(lambda: parse_run_id("run_m_deadbeef")) == ({"legacy_run": 1}, {})
    assert _moved(lambda: parse_run_id(UUID_EXAMPLE)) == ({"uuid": 1}, {})
    assert _moved(lambda: parse_run_id("run_abc_12345_7f3a9c01", resolver=lambda c: "abc")) == (
        {"legacy_run_ts": 1},
        {},
    )
    assert _moved(lambda: UnifiedIDManager.parse_run_id("run_m_deadbeef")) == (
        {"legacy_run": 1},
        {},
    )
    for value, code in [
        ("", "empty"),
        (None, "empty"),
        ("x" * 257, "too_long"),
        ("a b", "bad_charset"),
        ("nothing", "unknown_format"),
        ("run_abc_12345_7f3a9c01", "ambiguous"),
        (f"thread_{'a' * 129}_run_1_deadbeef", "too_long"),
    ]:
        assert _moved(functools.partial(parse_run_id, value)) == ({}, {code: 1}), value
    _formats, errors = _moved(lambda: extract_thread_id(UUID_EXAMPLE))
    assert errors == {"unknown_run": 1}
    # the reads through get_sample_value, as a scraper sees them
    before = REGISTRY.get_sample_value("threadwire_id_parse_total", {"format": "canonical"}) or 0.0
    parse_run_id(canonical)
    after = REGISTRY.get_sample_value("threadwire_id_parse_total", {"format": "canonical"})
    assert after == before + 1
    before = (
        REGISTRY.get_sample_value("threadwire_id_parse_errors_total", {"code": "bad_charset"})
        or 0.0
    )
    with pytest.raises(InvalidIdError):
        parse_run_id("\x00")
    assert (
        REGISTRY.get_sample_value("threadwire_id_parse_errors_total", {"code": "bad_charset"})
        == before + 1
    )


def test_counters_count_from_many_threads() -> None:
    before = REGISTRY.get_sample_value("threadwire_id_parse_total", {"format": "legacy_run"}) or 0.0
    run_id = "run_counted_deadbeef"

    def work() -> None:
        for _ in range(1000):
            parse_run_id(run_id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (
        REGISTRY.get_sample_value("threadwire_id_parse_total", {"format": "legacy_run"})
        == before + 8000
    )


def test_legacy_parses_are_logged_once_per_distinct_id(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    first = f"run_{fresh_thread()}_{secrets.token_hex(4)}"
    second = f"run_{fresh_thread()}_{secrets.token_hex(4)}"
    bare = str(uuid.uuid4())
    for _ in range(3):
        parse_run_id(first)
        extract_thread_id(first)
        UnifiedIDManager.parse_run_id(first)
        parse_run_id(second)
        parse_run_id(bare)
        parse_run_id(new_run_id("x"))
    for legacy_id, format_name in [(first, "legacy_run"), (second, "legacy_run"), (bare, "uuid")]:
        records = [r for r in caplog.records if legacy_id in r.getMessage()]
        assert len(records) == 1, legacy_id
        assert records[0].levelno == logging.INFO
        assert format_name in records[0].getMessage()
    assert not [r for r in caplog.records if "thread_x_run_" in r.getMessage()]


def test_rejections_are_not_logged_as_legacy(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(2):
        with pytest.raises(InvalidIdError):
            parse_run_id("run_not_hex_zzzzzzzz")
    assert not [
        r
        for r in caplog.records
        if "run_not_hex_zzzzzzzz" in r.getMessage()
        and r.levelno == logging.INFO
        and "legacy" in r.getMessage()
    ]
