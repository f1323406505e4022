"""Foreign keys among listed columns: update order, cascades, and what rows_changed counts."""

from __future__ import annotations

import pytest
from tests.migrate.stored import legacy

from threadwire.migrate.stored import MigrationError, migrate_ids
from threadwire.migrate.stored.sqlite_keys import _deferrable_keys

LEGACY = ["run_a_0000000a", "run_b_0000000b", "run_c_0000000c"]


def _chain(url: str, *, last_key: str) -> None:
    """jobs <- attempts (cascade) <- results (`last_key`), each row naming the same run."""
    with legacy.connection(url) as conn:
        conn.exec_driver_sql("CREATE TABLE jobs (run_id VARCHAR(256) PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE attempts (run_id VARCHAR(256) PRIMARY KEY "
            "REFERENCES jobs (run_id) ON UPDATE CASCADE)"
        )
        conn.exec_driver_sql(
            f"CREATE TABLE results (id INTEGER PRIMARY KEY, run_id VARCHAR(256) "
            f"REFERENCES attempts (run_id) {last_key})"
        )
        for i, run_id in enumerate(LEGACY):
            for table in ("jobs", "attempts"):
                conn.exec_driver_sql(f"INSERT INTO {table} VALUES ('{run_id}')")
            conn.exec_driver_sql(f"INSERT INTO results VALUES ({i}, '{run_id}')")


def test_cascades_through_two_tables_listed_out_of_order(db_url: str) -> None:
    _chain(db_url, last_key="ON UPDATE CASCADE")
    columns = ["jobs.run_id", "results.run_id", "attempts.run_id"]

    dry = migrate_ids(db_url, columns, dry_run=True)
    real = migrate_ids(db_url, columns)

    # Parents are updated first, whatever the listing order; the database does the rest.
    assert real.columns == {"jobs.run_id": 3, "results.run_id": 0, "attempts.run_id": 0}
    assert dry.to_json() == real.to_json()
    with legacy.connection(db_url) as conn:
        rows = conn.exec_driver_sql(
            "SELECT j.run_id, a.run_id, r.run_id FROM jobs j "
            "JOIN attempts a ON a.run_id = j.run_id JOIN results r ON r.run_id = j.run_id"
        ).all()
    assert len(rows) == 3
    assert {r[0] for r in rows} == {v[0] for v in legacy.aliases(db_url).values()}


def test_a_deferrable_key_below_a_cascade_is_rewritten_by_the_tool(db_url: str) -> None:
    _chain(db_url, last_key="DEFERRABLE INITIALLY IMMEDIATE")
    columns = ["jobs.run_id", "results.run_id", "attempts.run_id"]

    dry = migrate_ids(db_url, columns, dry_run=True, batch_size=1)
    real = migrate_ids(db_url, columns, batch_size=1)

    assert real.columns == {"jobs.run_id": 3, "results.run_id": 3, "attempts.run_id": 0}
    assert dry.to_json() == real.to_json()


@pytest.mark.parametrize("declared", ["DEFERRABLE INITIALLY DEFERRED", "DEFERRABLE"])
def test_a_key_declared_deferrable_on_its_column_is_deferred(db_url: str, declared: str) -> None:
    _chain(db_url, last_key=declared)

    summary = migrate_ids(db_url, ["jobs.run_id", "attempts.run_id", "results.run_id"])

    assert summary.columns["results.run_id"] == 3


@pytest.mark.parametrize("declared", ["", "NOT DEFERRABLE", "ON UPDATE RESTRICT DEFERRABLE"])
def test_a_key_that_rejects_the_rewrite_is_refused_however_declared(
    db_url: str, declared: str
) -> None:
    _chain(db_url, last_key=declared)

    with pytest.raises(MigrationError, match=r"^table results: foreign key results\(run_id\)"):
        migrate_ids(db_url, ["jobs.run_id", "attempts.run_id", "results.run_id"])


def test_sqlite_key_declarations_are_read_from_the_table_ddl() -> None:
    ddl = """CREATE TABLE "x y" (
        id INTEGER PRIMARY KEY,
        a VARCHAR(256) NOT NULL REFERENCES runs(run_id) ON UPDATE CASCADE DEFERRABLE,
        b TEXT REFERENCES [Runs] NOT DEFERRABLE INITIALLY DEFERRED,
        c TEXT, -- a comment, with a comma and DEFERRABLE
        e TEXT REFERENCES t2 /* DEFERRABLE */ NOT NULL,
        CONSTRAINT fk1 FOREIGN KEY (c, "d,e") REFERENCES main.other (x, y) DEFERRABLE,
        CHECK (a IN ('x,y', 'z'))
    )"""

    assert _deferrable_keys(ddl) == {
        (("a",), "runs"): True,
        (("b",), "runs"): False,  # NOT DEFERRABLE, whatever INITIALLY says
        (("e",), "t2"): False,  # the word in a comment does not count
        (("c", "d,e"), "other"): True,
    }
