"""The public conformance vectors (shared/vectors/run_ids.json), every row a test."""

from __future__ import annotations

from typing import Any

import pytest
from tests.ids.ids_support import LOCAL_VECTORS, SHARED_VECTORS, load_vectors

from threadwire.ids import InvalidIdError, extract_thread_id, parse_run_id, registry

VECTORS = load_vectors()


def _row_id(row: dict[str, Any]) -> str:
    text: str = row["id"]
    return ascii(text if len(text) <= 60 else text[:57] + "...")


@pytest.mark.parametrize("row", VECTORS["valid"], ids=_row_id)
def test_valid_vector_parses_to_its_fields(row: dict[str, Any]) -> None:
    parsed = parse_run_id(row["id"])
    assert parsed.raw == row["id"]
    assert str(parsed) == row["id"]
    assert parsed.format == row["format"]
    assert parsed.thread_id == row["thread_id"]
    assert parsed.timestamp_ms == row["timestamp_ms"]
    assert parsed.rand == row["rand"]
    assert parsed.is_canonical == (row["format"] == "canonical")


@pytest.mark.parametrize("row", VECTORS["valid"], ids=_row_id)
def test_valid_vector_extracts_its_thread_or_needs_the_store(row: dict[str, Any]) -> None:
    if row["thread_id"] is None:
        with pytest.raises(InvalidIdError) as caught:
            extract_thread_id(row["id"])
        assert caught.value.code == "unknown_run"
    else:
        assert extract_thread_id(row["id"]) == row["thread_id"]


@pytest.mark.parametrize("row", VECTORS["invalid"], ids=_row_id)
def test_invalid_vector_is_rejected_with_its_code(row: dict[str, Any]) -> None:
    with pytest.raises(InvalidIdError) as caught:
        parse_run_id(row["id"])
    assert caught.value.code == row["code"]
    with pytest.raises(InvalidIdError) as caught:
        extract_thread_id(row["id"])
    assert caught.value.code == row["code"]


def test_the_copy_of_the_vectors_in_the_repository_matches_the_shared_file() -> None:
    if not SHARED_VECTORS.is_file():
        pytest.skip("no shared/ folder beside this clone; the copy is all there is")
    assert LOCAL_VECTORS.read_bytes() == SHARED_VECTORS.read_bytes()


@pytest.mark.parametrize("row", VECTORS["valid"], ids=_row_id)
def test_the_general_path_reads_every_valid_vector_as_the_fast_path_does(
    row: dict[str, Any],
) -> None:
    # Canonical IDs normally take the one-regex fast path (decision 0003); the general
    # path must agree with it for IDs that fall through (very long timestamps).
    assert registry._parse_slow(row["id"], None) == parse_run_id(row["id"])
