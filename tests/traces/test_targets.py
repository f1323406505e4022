"""Both targets meet one contract on the real engine: the embedded chDB target, and the
server target's clickhouse-connect code driven over clickhouse-connect's chDB backend
(everything but its HTTP transport). URLs pick targets and fail precisely."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.traces.conftest import make_target

from threadwire.traces.embedded import ChdbTarget, insert_statement, parse_chdb_url
from threadwire.traces.schema import ALL_TABLES, EVENTS, RUNS, TOOL_CALLS, check_identifier
from threadwire.traces.server import ClickHouseTarget, parse_clickhouse_url
from threadwire.traces.target import TraceTarget, TraceTargetError, create_trace_target, mask_url


async def test_open_creates_mergetree_tables_with_the_documented_sort_keys(
    target: TraceTarget,
) -> None:
    await target.open()  # a second time: idempotent
    rows = await target.query(
        "SELECT name, engine, sorting_key FROM system.tables WHERE database = {db:String} "
        "ORDER BY name",
        {"db": target.database},
    )
    found = {r["name"]: (r["engine"], r["sorting_key"]) for r in rows}
    assert found == {
        "backfill_checkpoints": ("ReplacingMergeTree", "source"),
        "events": ("ReplacingMergeTree", "thread_id, ts, seq"),
        "runs": ("ReplacingMergeTree", "agent, created_at, run_id"),
        "tool_calls": ("ReplacingMergeTree", "tool, ts, event_id"),
    }
    for table in ALL_TABLES:
        columns = await target.query(
            "SELECT name, type FROM system.columns WHERE database = {db:String} "
            "AND table = {t:String} ORDER BY position",
            {"db": target.database, "t": table.name},
        )
        assert [(c["name"], c["type"]) for c in columns] == list(table.columns)


async def test_rows_round_trip_with_unicode_nulls_and_milliseconds(target: TraceTarget) -> None:
    ts = datetime(2026, 11, 24, 22, 1, 52, 123000, tzinfo=UTC)
    awkward = 'quote \' double " back\\slash\nnewline — ünïcødé 🚀'
    row = ("x", ts, "evt_1", "th", "run", 7, awkward, "", None, 1, awkward, 0)
    await target.insert(TOOL_CALLS.name, TOOL_CALLS.column_names, TOOL_CALLS.column_types, [row])
    got = await target.query(
        f"SELECT agent, error, duration_ms, toUnixTimestamp64Milli(ts) AS ms "
        f"FROM `{target.database}`.tool_calls"
    )
    assert got == [{"agent": awkward, "error": awkward, "duration_ms": None,
                    "ms": int(ts.timestamp() * 1000)}]


async def test_query_parameters_are_values_never_sql(target: TraceTarget) -> None:
    hostile = "x' OR 1=1 --"
    row = ("r1", "th", "a", "completed", datetime.now(UTC), None, datetime.now(UTC), None,
           None, 0, "", 0)
    await target.insert(RUNS.name, RUNS.column_names, RUNS.column_types, [row])
    query = f"SELECT count() AS n FROM `{target.database}`.runs WHERE agent = {{a:String}}"
    assert int((await target.query(query, {"a": hostile}))[0]["n"]) == 0
    assert int((await target.query(query, {"a": "a"}))[0]["n"]) == 1


async def test_a_query_error_is_a_trace_target_error(target: TraceTarget) -> None:
    with pytest.raises(TraceTargetError, match="no_such_table"):
        await target.query(f"SELECT * FROM `{target.database}`.no_such_table")


async def test_chdb_refuses_a_second_data_directory_in_one_process(
    chdb_path: Path, tmp_path: Path
) -> None:
    first = make_target("chdb", chdb_path, f"tw_{secrets.token_hex(6)}")
    await first.open()
    try:
        other = ChdbTarget(f"chdb://{tmp_path / 'other'}")
        with pytest.raises(TraceTargetError, match="one data directory per process") as info:
            await other.open()
        assert str(chdb_path) in str(info.value) and str(tmp_path / "other") in str(info.value)
    finally:
        await first.close()


def test_insert_statement_is_one_json_compact_insert() -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    sql = insert_statement("db", "t", ["a", "b", "c"], [("x\"y", ts, None), ("z", ts, 1.5)])
    assert sql == (
        "INSERT INTO `db`.`t` (`a`, `b`, `c`) FORMAT JSONCompactEachRow\n"
        '["x\\"y","2026-01-02 03:04:05.678",null]\n["z","2026-01-02 03:04:05.678",1.5]\n'
    )


@pytest.mark.parametrize(
    ("url", "path", "database"),
    [
        ("chdb:///var/lib/tw", "/var/lib/tw", "threadwire"),  # absolute
        ("chdb:///var/lib/tw?database=traces", "/var/lib/tw", "traces"),  # other database
    ],
)
def test_chdb_urls(url: str, path: str, database: str) -> None:
    assert parse_chdb_url(url) == (path, database)


def test_a_relative_chdb_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_chdb_url("chdb://traces.chdb")[0] == str(tmp_path / "traces.chdb")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # plain HTTP on the default port, default database and user
        ("clickhouse://ch.internal", {"host": "ch.internal", "port": 8123, "secure": False,
                                      "database": "threadwire", "username": "default"}),
        # TLS: default port 8443
        ("clickhouses://u:p%40ss@ch:9443/traces", {"port": 9443, "secure": True,
                                                   "username": "u", "password": "p@ss",
                                                   "database": "traces"}),
        # options pass through
        ("clickhouse://ch:8123/t?connect_timeout=3&verify=false", {"connect_timeout": 3.0,
                                                                   "verify": False}),
    ],
)
def test_clickhouse_urls(url: str, expected: dict[str, object]) -> None:
    args = parse_clickhouse_url(url)
    assert {k: args[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhouse:///db", "names no host"),
        ("clickhouse://ch:8123/db?timeout=3", "unknown option(s) ['timeout']"),
        ("clickhouse://ch/bad-name", "invalid ClickHouse database name 'bad-name'"),
        ("chdb://", "names no data directory"),
        ("chdb:///x?database=a;b", "invalid ClickHouse database name 'a;b'"),
        ("postgresql://u:secret@db/x", "unsupported trace URL 'postgresql://u:***@db/x'"),
        ("traces", "unsupported trace URL 'traces'"),
    ],
)
def test_bad_urls_are_refused_precisely(url: str, message: str) -> None:
    with pytest.raises(TraceTargetError) as info:
        create_trace_target(url)
    assert message in str(info.value)
    assert "secret" not in str(info.value)


def test_urls_pick_their_target() -> None:
    assert isinstance(create_trace_target("chdb:///tmp/x"), ChdbTarget)
    server = create_trace_target("clickhouses://u:pw@ch:8443/db")
    assert isinstance(server, ClickHouseTarget)
    assert server.url == "clickhouses://u:***@ch:8443/db"


def test_mask_url_hides_only_the_password() -> None:
    assert mask_url("clickhouse://u:pw@h:1/d") == "clickhouse://u:***@h:1/d"
    assert mask_url("clickhouse://h:1/d") == "clickhouse://h:1/d"


def test_identifiers_are_checked_before_they_reach_sql() -> None:
    assert check_identifier("tw_1") == "tw_1"
    with pytest.raises(ValueError, match="invalid ClickHouse database name '1x`'"):
        check_identifier("1x`")
    assert "`db`.`events`" in EVENTS.ddl("db")
