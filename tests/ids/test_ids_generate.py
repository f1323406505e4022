"""Making IDs: thread IDs, canonical run IDs, event/connection/request IDs, the clock."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import ulid
from tests.ids.ids_support import frozen_clock

from threadwire.ids import (
    InvalidIdError,
    generate,
    new_connection_id,
    new_event_id,
    new_request_id,
    new_run_id,
    new_thread_id,
    parse_run_id,
)

FROZEN_S = 1764021712.123
FROZEN_MS = 1764021712123
LATER_S = 1764021712.124  # one millisecond on, written out: float sums drift


def test_new_thread_id_is_the_hex_of_a_uuid7_from_now() -> None:
    before = time.time_ns() // 1_000_000
    thread_id = new_thread_id()
    after = time.time_ns() // 1_000_000
    assert re.fullmatch(r"[0-9a-f]{32}", thread_id)
    value = uuid.UUID(thread_id)
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_thread_ids_made_in_one_millisecond_are_distinct_and_sorted() -> None:
    with frozen_clock(FROZEN_S):
        made = [new_thread_id() for _ in range(500)]
    assert len(set(made)) == 500
    assert made == sorted(made)
    assert {uuid.UUID(t).int >> 80 for t in made} == {FROZEN_MS}


def test_new_run_id_is_canonical_with_the_clock_time_and_round_trips() -> None:
    with frozen_clock(FROZEN_S):
        run_id = new_run_id("user_42")
    parsed = parse_run_id(run_id)
    assert parsed.is_canonical
    assert parsed.thread_id == "user_42"
    assert parsed.timestamp_ms == FROZEN_MS
    assert parsed.created_at is not None
    assert parsed.created_at.isoformat() == "2025-11-24T22:01:52.123000+00:00"
    assert re.fullmatch(r"[0-9a-f]{8}", parsed.rand or "")


@pytest.mark.parametrize(
    ("thread_id", "code"),
    [
        ("", "empty"),  # no thread
        (None, "empty"),  # not a string
        ("t" * 129, "too_long"),  # over 128
        ("a b", "bad_charset"),  # white space
        ("thread/1", "bad_charset"),  # slash
    ],
)
def test_new_run_id_refuses_an_invalid_thread_id(thread_id: object, code: str) -> None:
    with pytest.raises(InvalidIdError) as caught:
        new_run_id(thread_id)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_run_ids_stay_unique_under_a_frozen_clock_across_threads() -> None:
    with frozen_clock(FROZEN_S), ThreadPoolExecutor(max_workers=8) as pool:
        batches = list(pool.map(lambda _: [new_run_id("hot") for _ in range(500)], range(8)))
    made = [run_id for batch in batches for run_id in batch]
    assert len(made) == len(set(made)) == 4000
    assert {parse_run_id(run_id).timestamp_ms for run_id in made} == {FROZEN_MS}


def test_a_repeated_rand8_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter(["00000000", "00000000", "00000000", "00000001"])
    monkeypatch.setattr(generate._entropy, "hex", lambda n: next(draws))
    with frozen_clock(FROZEN_S):
        first = new_run_id("same")
        second = new_run_id("same")
    assert first.endswith("_00000000")
    assert second.endswith("_00000001")


def test_the_same_rand8_is_fine_for_another_thread_or_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(generate._entropy, "hex", lambda n: "0badf00d")
    with frozen_clock(FROZEN_S):
        assert new_run_id("a").endswith(f"_{FROZEN_MS}_0badf00d")
        assert new_run_id("b").endswith(f"_{FROZEN_MS}_0badf00d")
    with frozen_clock(LATER_S):
        assert new_run_id("a").endswith(f"_{FROZEN_MS + 1}_0badf00d")


@pytest.mark.parametrize(
    ("make", "prefix"),
    [(new_event_id, "evt_"), (new_connection_id, "conn_"), (new_request_id, "req_")],
)
def test_ulid_ids_have_their_prefix_and_a_valid_ulid(make: object, prefix: str) -> None:
    assert callable(make)
    with frozen_clock(FROZEN_S):
        made = make()
    assert isinstance(made, str)
    assert made.startswith(prefix)
    text = made[len(prefix) :]
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", text)
    parsed = ulid.ULID.from_str(text)  # python-ulid agrees on the encoding
    assert str(parsed) == text
    assert parsed.milliseconds == FROZEN_MS


def test_event_ids_are_monotonic_within_a_millisecond_and_across_threads() -> None:
    with frozen_clock(FROZEN_S), ThreadPoolExecutor(max_workers=4) as pool:
        batches = list(pool.map(lambda _: [new_event_id() for _ in range(300)], range(4)))
    for batch in batches:
        assert batch == sorted(batch)
    made = [event_id for batch in batches for event_id in batch]
    assert len(set(made)) == 1200


def test_ulids_of_a_later_millisecond_sort_after() -> None:
    with frozen_clock(FROZEN_S):
        early = new_event_id()
    with frozen_clock(LATER_S):
        late = new_event_id()
    assert early < late


def test_a_random_part_at_its_top_starts_again_from_a_fresh_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh = iter([254, 3, 9])
    monkeypatch.setattr(generate, "_fresh", lambda bits: next(fresh))
    counter = generate._Monotonic(8)
    # 254, then +1 within the millisecond, then past 8 bits: fresh; a new ms: fresh
    assert [counter.next(5), counter.next(5), counter.next(5), counter.next(5)] == [254, 255, 3, 4]
    assert counter.next(6) == 9


def test_the_entropy_buffer_refills_when_used_up() -> None:
    entropy = generate._Entropy()
    seen = {entropy.hex(8) for _ in range(2 * generate._Entropy._BLOCK // 4 + 3)}
    assert all(re.fullmatch(r"[0-9a-f]{8}", value) for value in seen)
    assert len(seen) > 500


def test_now_ms_reads_a_monkeypatched_time_exactly() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time", lambda: 1764021712.123)
        assert generate.now_ms() == 1764021712123  # float multiplication would say ...122


def test_now_ms_honours_a_patched_time_ns_alone() -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time_ns", lambda: 1_764_021_712_123_456_789)
        assert generate.now_ms() == 1764021712123


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [
        (-5.0, 0),  # before 1970: clamped to the epoch, so IDs stay unsigned
        (1e13, (1 << 48) - 1),  # beyond 48 bits: clamped to the largest
        (0.0, 0),  # the epoch itself
    ],
)
def test_now_ms_stays_within_48_bits(seconds: float, ms: int) -> None:
    with frozen_clock(seconds):
        assert generate.now_ms() == ms
        run_id = new_run_id("t")
    assert parse_run_id(run_id).timestamp_ms == ms


def test_after_fork_the_child_draws_fresh_randomness() -> None:
    read, write = os.pipe()
    with frozen_clock(FROZEN_S), warnings.catch_warnings():
        # Python 3.12+ warns about fork() with threads alive (earlier tests' pools).
        warnings.simplefilter("ignore", DeprecationWarning)
        parent_before = new_run_id("forked")
        pid = os.fork()
        if pid == 0:  # the child: report its run ID and leave at once
            os.close(read)
            os.write(write, new_run_id("forked").encode())
            os._exit(0)
        os.close(write)
        parent_after = new_run_id("forked")
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    assert len({parent_before, parent_after, child}) == 3


def test_the_fork_handler_resets_every_generator() -> None:
    with frozen_clock(FROZEN_S):
        before = new_event_id()
        generate._after_fork()
        after = new_event_id()
        run_id = new_run_id("again")
    assert before != after
    assert parse_run_id(run_id).timestamp_ms == FROZEN_MS


def test_generation_is_thread_safe_for_every_kind_at_once() -> None:
    barrier = threading.Barrier(6)

    def make(kind: int) -> list[str]:
        barrier.wait()
        maker = [new_thread_id, new_event_id, new_request_id][kind % 3]
        return [maker() for _ in range(200)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        made = [x for batch in pool.map(make, range(6)) for x in batch]
    assert len(set(made)) == len(made)
