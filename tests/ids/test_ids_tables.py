"""Tables of run IDs and thread IDs, valid and not, one reason per row (ids.md 1, 2, 4)."""

from __future__ import annotations

import pickle

import pytest

from threadwire.ids import (
    ERROR_CODES,
    InvalidIdError,
    extract_thread_id,
    is_valid_thread_id,
    parse_run_id,
    try_extract_thread_id,
    validate_thread_id,
)

T128 = "t" * 128
TS = "1764021712123"
N = int(TS)
R = "7f3a9c01"

# (run ID, format, thread ID, timestamp_ms, rand)
VALID_RUN_IDS = [
    # the plainest canonical ID
    (f"thread_abc_run_{TS}_7f3a9c01", "canonical", "abc", 1764021712123, "7f3a9c01"),
    # timestamp 0 has no leading zero, so it is allowed
    ("thread_abc_run_0_7f3a9c01", "canonical", "abc", 0, "7f3a9c01"),
    # a one-digit timestamp
    ("thread_abc_run_5_00000000", "canonical", "abc", 5, "00000000"),
    # a timestamp longer than the fast path's 100 digits: still canonical
    (f"thread_x_run_{'9' * 150}_7f3a9c01", "canonical", "x", int("9" * 150), "7f3a9c01"),
    # a thread ID that ends in what looks like a whole run suffix
    (f"thread_a_run_1_0badf00d_run_{TS}_{R}", "canonical", "a_run_1_0badf00d", N, R),
    # a thread ID ending in digits and hex, the parts the suffix is made of
    (f"thread_a_123_deadbeef_run_{TS}_{R}", "canonical", "a_123_deadbeef", N, R),
    # a thread ID that is only the word run
    (f"thread_run_run_{TS}_7f3a9c01", "canonical", "run", int(TS), "7f3a9c01"),
    # a thread ID of "_run_" itself
    (f"thread__run__run_{TS}_7f3a9c01", "canonical", "_run_", int(TS), "7f3a9c01"),
    # a thread ID that starts with thread_
    (f"thread_thread__run_{TS}_7f3a9c01", "canonical", "thread_", int(TS), "7f3a9c01"),
    # every punctuation mark the grammar allows
    (f"thread_-.:_run_{TS}_7f3a9c01", "canonical", "-.:", int(TS), "7f3a9c01"),
    # a 128-character thread ID, the longest allowed
    (f"thread_{T128}_run_{TS}_7f3a9c01", "canonical", T128, int(TS), "7f3a9c01"),
    # a legacy ID whose thread ends in 8 hex digits: the rand is only the last 8
    ("run_cafebabe_0badf00d", "legacy_run", "cafebabe", None, "0badf00d"),
    # a legacy ID whose thread contains _run_
    ("run_a_run_b_0badf00d", "legacy_run", "a_run_b", None, "0badf00d"),
    # a legacy ID whose thread is "run"
    ("run_run_0badf00d", "legacy_run", "run", None, "0badf00d"),
    # a legacy ID with digits before the rand reads as legacy_run while legacy_run_ts is off
    ("run_abc_12345_7f3a9c01", "legacy_run", "abc_12345", None, "7f3a9c01"),
    # a legacy ID with a 128-character thread
    (f"run_{T128}_0badf00d", "legacy_run", T128, None, "0badf00d"),
    # an uppercase UUID
    ("0B7E3C2A-9F1D-4E5B-8A6C-2D4F6E8A0C1E", "uuid", None, None, None),
    # the nil UUID
    ("00000000-0000-0000-0000-000000000000", "uuid", None, None, None),
    # a UUIDv7 in 32 hex digits, what new_thread_id() makes
    ("018f2b6c4d5e7a8b9c0d1e2f3a4b5c6d", "uuid", None, None, None),
]

# (input, code)
INVALID_RUN_IDS = [
    # not a string at all
    (None, "empty"),
    # bytes are not text, even when they spell an ID
    (b"thread_abc_run_1_7f3a9c01", "empty"),
    # a number
    (42, "empty"),
    # the empty string
    ("", "empty"),
    # 257 characters: over the limit even though every character is allowed
    ("a" * 257, "too_long"),
    # too long and full of bad characters: length is checked first
    (" " * 300, "too_long"),
    # exactly 256 allowed characters that are no ID
    ("a" * 256, "unknown_format"),
    # white space alone
    (" ", "bad_charset"),
    # a tab inside
    ("thread_a\tb_run_1_7f3a9c01", "bad_charset"),
    # a NUL character
    ("run_abc\x00_0badf00d", "bad_charset"),
    # a slash
    ("run_a/b_0badf00d", "bad_charset"),
    # a non-ASCII digit, which \d would have accepted
    ("thread_abc_run_\u0661_7f3a9c01", "bad_charset"),
    # a lone surrogate, as bytes decoded with surrogateescape give
    ("run_abc_\udcff0badf00d", "bad_charset"),
    # a trailing newline, which a $-anchored regex would have let through
    ("run_abc_0badf00d\n", "bad_charset"),
    # a leading zero in the timestamp
    ("thread_abc_run_01_7f3a9c01", "unknown_format"),
    # nine hex digits of rand
    ("thread_abc_run_1_7f3a9c011", "unknown_format"),
    # no rand at all
    ("thread_abc_run_1764021712123", "unknown_format"),
    # the prefix alone
    ("thread_", "unknown_format"),
    # thread_ prefix but the legacy shape: never tried as legacy
    ("thread_abc_0badf00d", "unknown_format"),
    # the legacy prefix alone
    ("run_", "unknown_format"),
    # legacy rand in uppercase
    ("run_abc_0BADF00D", "unknown_format"),
    # a UUID with a hyphen missing
    ("0b7e3c2a-9f1d4e5b-8a6c-2d4f6e8a0c1e", "unknown_format"),
    # 31 hex digits
    ("0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1", "unknown_format"),
    # a URN: colons are allowed characters, but this is no format of ours
    ("urn:uuid:0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e", "unknown_format"),
    # a canonical ID with a 129-character thread
    (f"thread_{'t' * 129}_run_{TS}_7f3a9c01", "too_long"),
    # a legacy ID with a 129-character thread
    (f"run_{'t' * 129}_0badf00d", "too_long"),
]

# (thread ID, valid?)
THREAD_IDS = [
    ("a", True),  # the shortest
    (T128, True),  # the longest
    ("thread_abc_123", True),  # what real code bases use
    ("abc_run_1764021712123_7f3a9c01", True),  # contains a whole run suffix
    ("A-Z.a-z:0-9_", True),  # every kind of allowed character
    ("", False),  # empty
    ("t" * 129, False),  # one too long
    ("a b", False),  # white space
    ("a/b", False),  # slash
    ("é", False),  # non-ASCII letter
    ("abc\n", False),  # trailing newline
    (None, False),  # not a string
    (b"abc", False),  # bytes
]


@pytest.mark.parametrize(("run_id", "fmt", "thread_id", "timestamp_ms", "rand"), VALID_RUN_IDS)
def test_valid_run_id_parses_to_its_fields(
    run_id: str, fmt: str, thread_id: str | None, timestamp_ms: int | None, rand: str | None
) -> None:
    parsed = parse_run_id(run_id)
    assert (parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (
        fmt,
        thread_id,
        timestamp_ms,
        rand,
    )
    assert parsed.raw == run_id
    assert try_extract_thread_id(run_id) == thread_id


@pytest.mark.parametrize(("value", "code"), INVALID_RUN_IDS)
def test_invalid_run_id_is_rejected_with_the_first_failing_check(value: object, code: str) -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id(value)
    assert caught.value.code == code
    assert isinstance(caught.value, ValueError)
    assert try_extract_thread_id(value) is None


@pytest.mark.parametrize(("thread_id", "valid"), THREAD_IDS)
def test_thread_id_grammar(thread_id: object, valid: bool) -> None:
    assert is_valid_thread_id(thread_id) is valid
    if valid:
        assert validate_thread_id(thread_id) == thread_id
    else:
        with pytest.raises(InvalidIdError):
            validate_thread_id(thread_id)


@pytest.mark.parametrize(
    ("thread_id", "code"),
    [
        (None, "empty"),  # not a string
        ("", "empty"),  # empty
        ("é" * 129, "too_long"),  # too long wins over bad characters
        ("a b", "bad_charset"),  # white space
    ],
)
def test_thread_id_errors_come_in_the_specified_order(thread_id: object, code: str) -> None:
    with pytest.raises(InvalidIdError) as caught:
        validate_thread_id(thread_id)
    assert caught.value.code == code


class _Sneaky(str):
    """A str subclass whose own methods lie; only its characters may count."""

    def __str__(self) -> str:
        return "thread_abc_run_1_7f3a9c01"

    def __len__(self) -> int:
        raise RuntimeError("len() must not be called on the subclass")

    def __repr__(self) -> str:
        raise RuntimeError("repr() must not be called on the subclass")


def test_a_str_subclass_is_read_by_its_characters_alone() -> None:
    parsed = parse_run_id(_Sneaky("run_abc_0badf00d"))
    assert parsed.thread_id == "abc"
    assert type(parsed.raw) is str
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id(_Sneaky("a b"))
    assert caught.value.code == "bad_charset"
    assert validate_thread_id(_Sneaky("abc")) == "abc"
    assert is_valid_thread_id(_Sneaky("abc"))


def test_an_object_pretending_to_be_a_str_is_still_not_one() -> None:
    class Pretender:
        @property  # type: ignore[misc]
        def __class__(self) -> type:
            return str

    assert isinstance(Pretender(), str)  # the lie works on isinstance...
    with pytest.raises(InvalidIdError) as caught:  # ...but not on the ID module
        parse_run_id(Pretender())
    assert caught.value.code == "empty"


def test_message_quotes_the_input_cut_to_80_characters_and_escaped() -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("x" * 100 + "\n")
    message = str(caught.value)
    assert repr("x" * 80) in message
    assert "x" * 81 not in message
    assert "(101 characters)" in message
    assert "\n" not in message
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("run_a\u202eb_0badf00d")  # a right-to-left override
    assert "\u202e" not in str(caught.value)
    assert "\\u202e" in str(caught.value)


def test_message_names_the_bad_character_and_where_it_is() -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("run_ab/c_0badf00d")
    assert "'/' at position 6" in str(caught.value)


def test_message_for_a_non_string_names_its_type_and_never_fails() -> None:
    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    class Verbose:
        def __repr__(self) -> str:
            return "v" * 500

    for value, expected in [
        (b"\xff", "bytes b'\\\\xff'"),
        (Unprintable(), "Unprintable <unprintable>"),
        (Verbose(), "Verbose " + "v" * 80 + "..."),
    ]:
        with pytest.raises(InvalidIdError) as caught:
            parse_run_id(value)
        assert expected in str(caught.value)


def test_unknown_format_message_lists_the_formats_tried() -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("hello")
    assert "(legacy_run, uuid)" in str(caught.value)
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id("thread_hello")
    assert "(canonical)" in str(caught.value)


def test_extract_thread_id_of_a_bare_uuid_is_unknown_run() -> None:
    with pytest.raises(InvalidIdError) as caught:
        extract_thread_id("0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e")
    assert caught.value.code == "unknown_run"
    assert "uuid" in str(caught.value)


def test_error_codes_are_listed_in_check_order() -> None:
    assert ERROR_CODES == (
        "empty",
        "too_long",
        "bad_charset",
        "unknown_format",
        "ambiguous",
        "unknown_run",
    )


def test_invalid_id_error_survives_pickling_with_code_and_candidates() -> None:
    error = InvalidIdError("ambiguous", "two ways", ("a", "b"))
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.code, str(copy), copy.candidates) == (
        InvalidIdError,
        "ambiguous",
        "two ways",
        ("a", "b"),
    )
