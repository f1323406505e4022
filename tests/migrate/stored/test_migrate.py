"""migrate_ids on SQLite and PostgreSQL: the mapping, the counts, idempotence, dry runs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.migrate.stored import legacy

from threadwire.ids import parse_run_id
from threadwire.migrate.stored import Resolution, migrate_ids, resolve_ids

NOW = datetime(2025, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)
NOW_MS = 1735787045678


def test_every_legacy_id_becomes_its_canonical_id_in_every_table(legacy_url: str) -> None:
    summary = migrate_ids(legacy_url, legacy.COLUMNS, now=NOW, **legacy.FULL_OPTIONS)

    recorded = legacy.aliases(legacy_url)
    assert set(recorded) == set(legacy.EXPECTED)
    for old, (thread, ts, rand) in legacy.EXPECTED.items():
        new, alias_thread = recorded[old]
        parsed = parse_run_id(new)
        assert parsed.is_canonical
        assert (parsed.thread_id, alias_thread) == (thread, thread)
        assert parsed.timestamp_ms == (ts if ts is not None else NOW_MS)
        if rand is not None:
            assert parsed.rand == rand
    # The exact shape for the plain cases, spelled out.
    assert recorded[legacy.LEGACY][0] == "thread_user_42_run_1714564801999_7f3a9c01"
    assert recorded[legacy.AMBIGUOUS][0] == "thread_abc_run_1719792000000_7f3a9c01"

    before_after = legacy.snapshot(legacy_url)
    for table, rows in before_after.items():
        for values in rows.values():
            for value in values:
                assert value not in recorded, f"{table} still holds legacy {value!r}"
    assert summary.to_json() == {
        "migrated": 6,
        "already_canonical": 2,
        "unresolvable": legacy.UNRESOLVABLE,
        "columns": {
            "runs.run_id": 5,
            # Every run_steps row follows runs through ON UPDATE CASCADE: the database
            # changed them, not the tool.
            "run_steps.run_id": 0,
            "messages.run_id": 4,
            "messages.parent_run_id": 4,
            "audit.run_ref": 5,
        },
    }
    assert summary.exit_code == 1


def test_a_legacy_id_in_several_tables_gets_one_canonical_id(legacy_url: str) -> None:
    migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)

    new = legacy.aliases(legacy_url)[legacy.LEGACY][0]
    rows = legacy.snapshot(legacy_url)
    assert rows["runs"][1] == (new,)
    assert rows["run_steps"][1] == rows["run_steps"][2] == (new,)
    assert rows["messages"][0][0] == rows["messages"][1][1] == new
    assert rows["audit"][0] == (new,)


def test_unresolvable_values_and_nulls_are_left_as_they_were(legacy_url: str) -> None:
    before = legacy.snapshot(legacy_url)
    migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)
    after = legacy.snapshot(legacy_url)

    kept = {u["id"] for u in legacy.UNRESOLVABLE} | {None, legacy.CANONICAL}
    kept.add(legacy.OTHER_CANONICAL)
    for table, rows in before.items():
        for key, values in rows.items():
            for old, new in zip(values, after[table][key], strict=True):
                if old in kept:
                    assert new == old


def test_after_migrating_every_old_id_resolves_to_the_same_thread(legacy_url: str) -> None:
    old_ids = [*legacy.EXPECTED, legacy.CANONICAL]

    def resolve() -> list[Resolution]:
        return resolve_ids(
            legacy_url, old_ids, enable_formats=["legacy_run_ts"], threads="threads.thread_id"
        )

    before = {r.id: r.thread_id for r in resolve()}
    migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)
    after = resolve()

    recorded = legacy.aliases(legacy_url)
    for answer in after:
        assert answer.error is None
        assert answer.thread_id == legacy.EXPECTED.get(answer.id, ("user_42",))[0]
        if answer.id in recorded:
            assert answer.run_id == recorded[answer.id][0]
        # IDs with a thread in them resolved the same way before the migration.
        if before[answer.id] is not None:
            assert before[answer.id] == answer.thread_id


def test_a_second_run_changes_nothing_and_reports_zero_migrated(legacy_url: str) -> None:
    migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)
    rows, recorded = legacy.snapshot(legacy_url), legacy.aliases(legacy_url)

    again = migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)

    assert again.migrated == 0
    assert again.already_canonical == 8  # 6 new IDs and the 2 that were canonical already
    assert set(again.columns.values()) == {0}
    assert (legacy.snapshot(legacy_url), legacy.aliases(legacy_url)) == (rows, recorded)


def test_dry_run_reports_what_the_real_run_does_and_writes_nothing(legacy_url: str) -> None:
    rows, tables = legacy.snapshot(legacy_url), legacy.table_names(legacy_url)

    dry = migrate_ids(legacy_url, legacy.COLUMNS, dry_run=True, **legacy.FULL_OPTIONS)

    assert legacy.snapshot(legacy_url) == rows
    assert legacy.table_names(legacy_url) == tables  # not even the aliases table
    real = migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)
    assert dry.to_json() == real.to_json()
    assert dry.exit_code == real.exit_code
    assert dry.dry_run and not real.dry_run


def test_dry_run_after_a_migration_predicts_a_no_op(legacy_url: str) -> None:
    real = migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)
    dry = migrate_ids(legacy_url, legacy.COLUMNS, dry_run=True, **legacy.FULL_OPTIONS)
    again = migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)

    assert real.migrated == 6
    assert dry.to_json() == again.to_json()
    assert dry.migrated == 0


@pytest.mark.parametrize("batch_size", [1, 2, 7, 1000])
def test_batch_size_changes_transactions_not_results(legacy_url: str, batch_size: int) -> None:
    summary = migrate_ids(
        legacy_url, legacy.COLUMNS, batch_size=batch_size, now=NOW, **legacy.FULL_OPTIONS
    )

    assert summary.migrated == 6
    assert sum(summary.columns.values()) == 18
    new = legacy.aliases(legacy_url)
    assert new[legacy.UUID_HEX][0] == "thread_abc_run_1735787045678_" + new[legacy.UUID_HEX][0][-8:]


def test_progress_is_reported_after_each_committed_batch(legacy_url: str) -> None:
    seen: list[tuple[int, int]] = []

    migrate_ids(
        legacy_url,
        legacy.COLUMNS,
        batch_size=1,
        progress=lambda done, total: seen.append((done, total)),
        **legacy.FULL_OPTIONS,
    )

    assert len(seen) == 6  # one batch per legacy ID
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert seen[-1][0] == seen[-1][1]


def test_without_legacy_run_ts_the_ambiguous_ids_read_one_way(legacy_url: str) -> None:
    summary = migrate_ids(
        legacy_url,
        legacy.COLUMNS,
        thread_column="runs.thread_id",
        created_at_column="runs.created_at",
    )

    recorded = legacy.aliases(legacy_url)
    assert recorded[legacy.AMBIGUOUS] == (
        "thread_abc_12345_run_1719792000000_7f3a9c01",
        "abc_12345",
    )
    assert recorded[legacy.AMBIGUOUS_UNKNOWN][1] == "zzz_999"
    assert [u.code for u in summary.unresolvable].count("ambiguous") == 0


def test_ambiguous_ids_without_threads_are_reported_not_guessed(legacy_url: str) -> None:
    summary = migrate_ids(
        legacy_url,
        legacy.COLUMNS,
        thread_column="runs.thread_id",
        created_at_column="runs.created_at",
        enable_formats=["legacy_run_ts"],
    )

    ambiguous = {u.id for u in summary.unresolvable if u.code == "ambiguous"}
    # run_user_42_7f3a9c01 reads as user_42 or user once legacy_run_ts is on.
    assert ambiguous == {
        legacy.LEGACY,
        legacy.LEGACY_UNDERSCORES,
        legacy.AMBIGUOUS,
        legacy.AMBIGUOUS_UNKNOWN,
        legacy.ORPHAN,
    }
    assert set(legacy.aliases(legacy_url)) == {legacy.UUID_HYPHENS, legacy.UUID_HEX}


def test_bare_uuids_without_a_thread_column_are_unknown_runs(legacy_url: str) -> None:
    summary = migrate_ids(legacy_url, legacy.COLUMNS, now=NOW)

    codes = {u.id: u.code for u in summary.unresolvable}
    assert codes[legacy.UUID_HYPHENS] == codes[legacy.UUID_HEX] == "unknown_run"
    assert legacy.aliases(legacy_url)[legacy.LEGACY][0] == (
        f"thread_user_42_run_{NOW_MS}_7f3a9c01"  # no creation column: migration time
    )


def test_recorded_aliases_are_reused_not_recomputed(legacy_url: str) -> None:
    chosen = "thread_user_42_run_1600000000000_0000abcd"
    with legacy.connection(legacy_url) as conn:
        conn.exec_driver_sql(
            "CREATE TABLE threadwire_id_aliases (legacy_id VARCHAR(256) PRIMARY KEY, "
            "run_id VARCHAR(256) NOT NULL, thread_id VARCHAR(128) NOT NULL, "
            "migrated_at TIMESTAMP NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO threadwire_id_aliases VALUES "
            f"('{legacy.LEGACY}', '{chosen}', 'user_42', CURRENT_TIMESTAMP)"
        )

    migrate_ids(legacy_url, legacy.COLUMNS, **legacy.FULL_OPTIONS)

    assert legacy.snapshot(legacy_url)["runs"][1] == (chosen,)
    assert legacy.aliases(legacy_url)[legacy.LEGACY] == (chosen, "user_42")


def test_a_new_id_already_taken_moves_a_millisecond_later(db_url: str) -> None:
    taken = "thread_t_run_1714564800000_0badf00d"
    with legacy.connection(db_url) as conn:
        conn.exec_driver_sql("CREATE TABLE jobs (run_id VARCHAR(256), created_at BIGINT)")
        conn.exec_driver_sql(
            f"INSERT INTO jobs VALUES ('{taken}', 1714564800), ('run_t_0badf00d', 1714564800)"
        )

    migrate_ids(db_url, ["jobs.run_id"], created_at_column="jobs.created_at")

    assert legacy.aliases(db_url)["run_t_0badf00d"][0] == "thread_t_run_1714564800001_0badf00d"


@pytest.mark.parametrize(
    ("column_type", "stored"),
    [
        ("TIMESTAMP", "2024-05-01 12:00:00.123999"),  # naive: UTC
        ("TIMESTAMP WITH TIME ZONE", "2024-05-01 14:00:00.123999+02:00"),
        ("TEXT", "2024-05-01T12:00:00.123999Z"),  # ISO 8601 text
        ("BIGINT", "1714564800123"),  # epoch milliseconds
        ("BIGINT", "1714564800"),  # epoch seconds
    ],
)
def test_creation_times_of_any_stored_type_become_the_timestamp(
    db_url: str, column_type: str, stored: str
) -> None:
    with legacy.connection(db_url) as conn:
        conn.exec_driver_sql(f"CREATE TABLE jobs (run_id VARCHAR(256), created {column_type})")
        conn.exec_driver_sql(f"INSERT INTO jobs VALUES ('run_t_0badf00d', '{stored}')")

    migrate_ids(db_url, ["jobs.run_id"], created_at_column="jobs.created")

    expected_ms = 1714564800123 if len(stored) != 10 else 1714564800000
    with legacy.connection(db_url) as conn:
        value: object = conn.exec_driver_sql("SELECT run_id FROM jobs").scalar_one()
    assert value == f"thread_t_run_{expected_ms}_0badf00d"
