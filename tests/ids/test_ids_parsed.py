"""ParsedRunId as a value, the UnifiedIDManager facade, and the docstring examples."""

from __future__ import annotations

import copy
import doctest
import importlib
import pickle
from datetime import UTC, datetime

import pytest

import threadwire.ids
from threadwire.ids import ParsedRunId, UnifiedIDManager, parse_run_id

CANONICAL = "thread_user_42_run_1764021712123_7f3a9c01"


def test_parsed_id_is_immutable() -> None:
    parsed = parse_run_id(CANONICAL)
    with pytest.raises(AttributeError):
        parsed.thread_id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        parsed.extra = 1  # type: ignore[attr-defined]


def test_parsed_id_is_hashable_and_equal_by_its_fields() -> None:
    first, second = parse_run_id(CANONICAL), parse_run_id(CANONICAL)
    built = ParsedRunId(CANONICAL, "canonical", "user_42", 1764021712123, "7f3a9c01", True)
    assert first == second == built
    assert hash(first) == hash(second) == hash(built)
    assert len({first, second, built}) == 1
    assert first != parse_run_id("run_user_42_7f3a9c01")
    assert first != CANONICAL  # not equal to its text...
    assert str(first) == CANONICAL  # ...though str() gives it back
    assert first != tuple(first)  # nor to the tuple it is stored as
    assert not (first != second)


def test_parsed_id_round_trips_through_its_dict() -> None:
    for raw in (CANONICAL, "run_user_42_7f3a9c01", "0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e"):
        parsed = parse_run_id(raw)
        assert ParsedRunId(**parsed.to_dict()) == parsed
    minimal = ParsedRunId("run_abc_0badf00d", "legacy_run", "abc", rand="0badf00d")
    assert minimal == parse_run_id("run_abc_0badf00d")
    assert ParsedRunId(CANONICAL, "canonical", "user_42", 1764021712123, "7f3a9c01").is_canonical
    with pytest.raises(ValueError, match="disagrees"):
        ParsedRunId(CANONICAL, "canonical", "user_42", 5, "7f3a9c01", True, datetime.now(UTC))


def test_parsed_id_fields_of_each_shape() -> None:
    legacy = parse_run_id("run_user_42_7f3a9c01")
    assert legacy.to_dict() == {
        "raw": "run_user_42_7f3a9c01",
        "format": "legacy_run",
        "thread_id": "user_42",
        "timestamp_ms": None,
        "created_at": None,
        "rand": "7f3a9c01",
        "is_canonical": False,
    }
    canonical = parse_run_id(CANONICAL).to_dict()
    assert canonical["created_at"] == datetime(2025, 11, 24, 22, 1, 52, 123000, tzinfo=UTC)
    assert canonical["thread_id"] == "user_42"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (946684800000, datetime(2000, 1, 1, tzinfo=UTC)),  # first plausible millisecond
        (946684799999, None),  # just before 2000 in ms, and far beyond 2200 in seconds
        (7258118400000, datetime(2200, 1, 1, tzinfo=UTC)),  # last plausible millisecond
        (7258118400001, None),  # just after
        (946684800, datetime(2000, 1, 1, tzinfo=UTC)),  # first plausible second
        (946684799, None),  # just before
        (7258118400, datetime(2200, 1, 1, tzinfo=UTC)),  # last plausible second
        (7258118401, None),  # a second too late, and too early as milliseconds
        (0, None),  # the epoch is no creation time
    ],
)
def test_created_at_is_set_only_for_plausible_epochs(
    number: int, expected: datetime | None
) -> None:
    parsed = parse_run_id(f"thread_abc_run_{number}_7f3a9c01")
    assert parsed.timestamp_ms == number
    assert parsed.created_at == expected
    assert expected is None or parsed.created_at.tzinfo is UTC  # type: ignore[union-attr]


def test_parsed_id_survives_pickle_and_copy() -> None:
    for raw in (CANONICAL, "run_user_42_7f3a9c01", "0b7e3c2a9f1d4e5b8a6c2d4f6e8a0c1e"):
        parsed = parse_run_id(raw)
        assert pickle.loads(pickle.dumps(parsed)) == parsed
        assert copy.deepcopy(parsed) == parsed


def test_parsed_id_repr_shows_the_fields() -> None:
    assert repr(parse_run_id(CANONICAL)) == (
        "ParsedRunId(raw='thread_user_42_run_1764021712123_7f3a9c01', format='canonical', "
        "thread_id='user_42', timestamp_ms=1764021712123, rand='7f3a9c01', is_canonical=True)"
    )


def test_parse_is_also_a_named_constructor() -> None:
    assert ParsedRunId.parse(CANONICAL) == parse_run_id(CANONICAL)


def test_unified_id_manager_delegates_to_the_module() -> None:
    run_id = UnifiedIDManager.generate_run_id("legacy_caller")
    assert UnifiedIDManager.extract_thread_id(run_id) == "legacy_caller"
    as_dict = UnifiedIDManager.parse_run_id("run_abc_0badf00d")
    assert (as_dict["format"], as_dict["thread_id"]) == ("legacy_run", "abc")
    assert type(as_dict) is dict
    public = {name for name in vars(UnifiedIDManager) if not name.startswith("_")}
    assert public == {"generate_run_id", "parse_run_id", "extract_thread_id"}


def test_every_public_name_of_the_spec_is_exported() -> None:
    names = {
        "new_thread_id",
        "new_run_id",
        "parse_run_id",
        "extract_thread_id",
        "to_canonical",
        "InvalidIdError",
        "ParsedRunId",
        "IdFormat",
        "registry",
        "FormatRegistry",
        "new_event_id",
        "new_connection_id",
        "new_request_id",
        "UnifiedIDManager",
    }
    assert names <= set(threadwire.ids.__all__)
    assert all(hasattr(threadwire.ids, name) for name in threadwire.ids.__all__)


@pytest.mark.parametrize(
    "module",
    [
        "threadwire.ids",
        "threadwire.ids.errors",
        "threadwire.ids.grammar",
        "threadwire.ids.parsed",
        "threadwire.ids.formats",
        "threadwire.ids.generate",
        "threadwire.ids.migration",
        "threadwire.ids.facade",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
