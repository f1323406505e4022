"""resolve_ids: aliases first, then the parse; a database without aliases has none."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.migrate.stored import legacy

from threadwire.migrate.stored import MigrationError, migrate_ids, resolve_ids


def test_without_an_aliases_table_ids_resolve_by_parsing_alone(legacy_url: str) -> None:
    ids = [legacy.CANONICAL, legacy.LEGACY, legacy.UUID_HEX, "hello world", legacy.AMBIGUOUS]

    answers = [a.to_json() for a in resolve_ids(legacy_url, ids)]

    assert answers == [
        {"id": legacy.CANONICAL, "run_id": legacy.CANONICAL, "thread_id": "user_42"},
        # legacy, not migrated yet: the parse still finds its thread
        {"id": legacy.LEGACY, "run_id": None, "thread_id": "user_42"},
        # a bare UUID names no thread and has no alias
        {"id": legacy.UUID_HEX, "error": "unknown_run"},
        {"id": "hello world", "error": "bad_charset"},
        {"id": legacy.AMBIGUOUS, "run_id": None, "thread_id": "abc_12345"},
    ]
    assert "threadwire_id_aliases" not in legacy.table_names(legacy_url)


def test_ambiguous_ids_are_settled_by_the_threads_column(legacy_url: str) -> None:
    ids = [legacy.AMBIGUOUS, legacy.AMBIGUOUS_UNKNOWN]

    plain = resolve_ids(legacy_url, ids, enable_formats=["legacy_run_ts"])
    settled = resolve_ids(
        legacy_url, ids, enable_formats=["legacy_run_ts"], threads="threads.thread_id"
    )

    assert [a.error for a in plain] == ["ambiguous", "ambiguous"]
    assert [a.to_json() for a in settled] == [
        {"id": legacy.AMBIGUOUS, "run_id": None, "thread_id": "abc"},
        {"id": legacy.AMBIGUOUS_UNKNOWN, "error": "ambiguous"},
    ]


def test_migrated_ids_resolve_through_their_alias(legacy_url: str) -> None:
    migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)
    recorded = legacy.aliases(legacy_url)

    # Even with no format switched on, the alias answers the IDs a parse could not.
    answers = resolve_ids(legacy_url, [legacy.UUID_HEX, legacy.AMBIGUOUS, legacy.ORPHAN_UUID])

    assert [a.to_json() for a in answers] == [
        {"id": legacy.UUID_HEX, "run_id": recorded[legacy.UUID_HEX][0], "thread_id": "abc"},
        {"id": legacy.AMBIGUOUS, "run_id": recorded[legacy.AMBIGUOUS][0], "thread_id": "abc"},
        {"id": legacy.ORPHAN_UUID, "error": "unknown_run"},
    ]


def test_an_unreachable_database_is_a_migration_error(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="cannot reach database"):
        resolve_ids(f"sqlite:///{tmp_path / 'missing.db'}", [legacy.LEGACY])


def test_a_threads_column_that_does_not_exist_is_named(legacy_url: str) -> None:
    with pytest.raises(MigrationError, match=r"^--threads threads\.nope: table 'threads' has no"):
        resolve_ids(legacy_url, [legacy.LEGACY], threads="threads.nope")
