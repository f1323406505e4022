"""Hypothesis: round trips over the whole thread-ID grammar, and nothing but
InvalidIdError ever escapes, whatever the input."""

from __future__ import annotations

import threading
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.ids.ids_support import Expected, frozen_clock, reference_parse

from threadwire.ids import (
    ERROR_CODES,
    InvalidIdError,
    ParsedRunId,
    extract_thread_id,
    is_valid_thread_id,
    new_run_id,
    parse_run_id,
    to_canonical,
    try_extract_thread_id,
    validate_thread_id,
)

SETTINGS = settings(max_examples=400, database=None, deadline=None)
GRAMMAR = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:"

# Pieces that make thread IDs and near-miss run IDs hard: the words and shapes a
# right-anchored parse could be fooled by.
PIECES = st.sampled_from(
    [
        "_",
        "__",
        "run",
        "_run_",
        "run_",
        "thread_",
        "_thread_",
        "0",
        "01",
        "1764021712123",
        "7f3a9c01",
        "0BADF00D",
        "deadbeef",
        "-",
        ".",
        ":",
        "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e",
    ]
)
GRAMMAR_TEXT = st.text(alphabet=GRAMMAR, min_size=1, max_size=12)

THREAD_IDS = st.one_of(
    st.from_regex(r"[-.:0-9A-Z_a-z]{1,128}", fullmatch=True),
    st.lists(st.one_of(PIECES, GRAMMAR_TEXT), min_size=1, max_size=12)
    .map("".join)
    .filter(lambda text: len(text) <= 128),
)

NEAR_MISSES = st.lists(
    st.one_of(PIECES, GRAMMAR_TEXT, st.sampled_from(["\n", " ", "é", "\udcff", "/"])),
    min_size=0,
    max_size=14,
).map("".join)

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=300)
DECODED_BYTES = st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))
ANY_OBJECT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.binary(),
    st.binary().map(bytearray),
    st.lists(st.text(max_size=5), max_size=3),
    st.tuples(st.text(max_size=5)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
    st.sampled_from([str, ParsedRunId, ..., NotImplemented, 1j]),
)


@SETTINGS
@given(THREAD_IDS)
def test_every_valid_thread_id_round_trips_through_a_new_run_id(thread_id: str) -> None:
    assert is_valid_thread_id(thread_id)
    run_id = new_run_id(thread_id)
    assert extract_thread_id(run_id) == thread_id
    parsed = parse_run_id(run_id)
    assert parsed.thread_id == thread_id
    assert parsed.is_canonical
    assert len(run_id) <= 256


@SETTINGS
@given(
    THREAD_IDS,
    st.integers(min_value=0, max_value=10**20),
    st.from_regex(r"[0-9a-f]{8}", fullmatch=True),
)
def test_any_canonical_id_reads_back_its_parts(thread_id: str, ms: int, rand: str) -> None:
    run_id = f"thread_{thread_id}_run_{ms}_{rand}"
    parsed = parse_run_id(run_id)
    assert (parsed.thread_id, parsed.timestamp_ms, parsed.rand) == (thread_id, ms, rand)
    assert to_canonical(parsed, created_at=0) == run_id  # already canonical: unchanged


@SETTINGS
@given(THREAD_IDS, st.from_regex(r"[0-9a-f]{8}", fullmatch=True))
def test_any_legacy_id_migrates_to_a_canonical_id_of_the_same_thread(
    thread_id: str, rand: str
) -> None:
    parsed = parse_run_id(f"run_{thread_id}_{rand}")
    assert parsed.thread_id == thread_id
    canonical = to_canonical(parsed, created_at=1764021712123)
    assert extract_thread_id(canonical) == thread_id
    assert parse_run_id(canonical).rand == rand
    assert to_canonical(canonical, created_at=1) == canonical


def _outcome(value: object) -> Expected:
    try:
        parsed = parse_run_id(value)
    except InvalidIdError as error:
        assert error.code in ERROR_CODES
        assert isinstance(str(error), str)
        return Expected(code=error.code)
    return Expected(parsed.format, parsed.thread_id, parsed.timestamp_ms, parsed.rand)


@SETTINGS
@given(NEAR_MISSES)
def test_near_misses_parse_exactly_as_the_spec_reads_them(text: str) -> None:
    assert _outcome(text) == reference_parse(text)
    assert _outcome("thread_" + text) == reference_parse("thread_" + text)
    assert _outcome("run_" + text) == reference_parse("run_" + text)


@settings(max_examples=1000, database=None, deadline=None)
@given(st.one_of(ANY_TEXT, DECODED_BYTES))
def test_any_text_parses_or_raises_invalid_id_error_and_agrees_with_the_spec(text: str) -> None:
    assert _outcome(text) == reference_parse(text)
    try_extract_thread_id(text)
    try:
        validate_thread_id(text)
    except InvalidIdError:
        pass


class _StrChild(str):
    pass


@settings(max_examples=300, database=None, deadline=None)
@given(st.one_of(ANY_OBJECT, st.text(max_size=40).map(_StrChild)))
def test_any_object_raises_only_invalid_id_error(value: Any) -> None:
    for call in (parse_run_id, extract_thread_id, validate_thread_id, new_run_id):
        try:
            call(value)
        except InvalidIdError as error:
            assert error.code in ERROR_CODES
    assert try_extract_thread_id(value) is None or isinstance(value, str)


@settings(
    max_examples=25, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(THREAD_IDS, st.integers(min_value=2, max_value=8))
def test_run_ids_are_unique_under_a_frozen_clock_and_many_threads(
    thread_id: str, workers: int
) -> None:
    made: list[list[str]] = [[] for _ in range(workers)]
    start = threading.Barrier(workers)

    def work(slot: int) -> None:
        start.wait()
        made[slot].extend(new_run_id(thread_id) for _ in range(300))

    with frozen_clock(1764021712.123):
        threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    every = [run_id for batch in made for run_id in batch]
    assert len(set(every)) == len(every) == 300 * workers
    assert {parse_run_id(run_id).timestamp_ms for run_id in every} == {1764021712123}
