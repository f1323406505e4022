"""resolve_thread: the store's answer to what a run-ID string alone cannot say."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import insert
from tests.store.helpers import new_run

from threadwire import ids
from threadwire.events import utcnow
from threadwire.store import Store
from threadwire.store.sql import SqlStore
from threadwire.store.tables import id_aliases

UUID = "0b7e3c2a-9f1d-4e5b-8a6c-2d4f6e8a0c1e"
TWO_WAY = "run_abc_12345_7f3a9c01"  # legacy_run: abc_12345, legacy_run_ts: abc


@pytest.fixture
def two_way_formats() -> Iterator[None]:
    """legacy_run_ts on, so that TWO_WAY reads as two threads."""
    with ids.format_registry.scoped():
        ids.format_registry.enable("legacy_run_ts")
        yield


async def test_canonical_id_names_its_thread_without_a_lookup(store: Store) -> None:
    assert await store.resolve_thread(ids.new_run_id("abc_run_123")) == "abc_run_123"


async def test_legacy_id_names_its_thread(store: Store) -> None:
    assert await store.resolve_thread("run_user_42_7f3a9c01") == "user_42"


@pytest.mark.usefixtures("two_way_formats")
@pytest.mark.parametrize("existing", ["abc", "abc_12345"])
async def test_ambiguous_id_is_settled_by_the_thread_that_exists(
    store: Store, existing: str
) -> None:
    await store.create_thread(existing, "alice")
    assert await store.resolve_thread(TWO_WAY) == existing


@pytest.mark.usefixtures("two_way_formats")
@pytest.mark.parametrize(
    "existing",
    [
        [],  # neither reading names a thread
        ["abc", "abc_12345"],  # both do
    ],
)
async def test_ambiguous_id_no_thread_settles_is_refused_naming_both(
    store: Store, existing: list[str]
) -> None:
    for thread_id in existing:
        await store.create_thread(thread_id, "alice")
    with pytest.raises(ids.InvalidIdError) as error:
        await store.resolve_thread(TWO_WAY)
    assert error.value.code == "ambiguous"
    assert "abc_12345" in str(error.value)


async def test_bare_uuid_resolves_through_its_alias(store: Store) -> None:
    await store.create_thread("t", "alice")
    await store.ensure_run(new_run("t"), legacy_id=UUID)
    assert await store.resolve_thread(UUID) == "t"


async def test_unknown_bare_uuid_is_an_unknown_run(store: Store) -> None:
    with pytest.raises(ids.InvalidIdError) as error:
        await store.resolve_thread(UUID)
    assert error.value.code == "unknown_run"
    assert UUID in str(error.value)


async def test_alias_wins_over_the_parse(store: Store) -> None:
    await store.create_thread("moved", "alice")
    run = await store.create_run(new_run("moved"))
    await store.add_alias("run_user_42_7f3a9c01", run.run_id, "moved")
    assert await store.resolve_thread("run_user_42_7f3a9c01") == "moved"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "empty"),  # nothing at all
        ("run_a b_7f3a9c01", "bad_charset"),  # a space
        ("nonsense", "unknown_format"),  # no format matches
        ("x" * 300, "too_long"),  # over 256 characters
    ],
)
async def test_unparseable_id_raises_its_error_code(store: Store, raw: str, code: str) -> None:
    with pytest.raises(ids.InvalidIdError) as error:
        await store.resolve_thread(raw)
    assert error.value.code == code


async def test_not_a_string_raises_an_id_error(store: Store) -> None:
    with pytest.raises(ids.InvalidIdError):
        await store.resolve_thread(42)  # type: ignore[arg-type]


async def test_ids_migrated_by_migrate_ids_resolve_through_the_shared_table(
    sql_url: str,
) -> None:
    store = SqlStore(sql_url)
    await store.open()
    try:
        await store.create_thread("t", "alice")
        run = await store.create_run(new_run("t"))
        async with store.engine.begin() as conn:  # what `threadwire db migrate-ids` writes
            await conn.execute(
                insert(id_aliases).values(
                    legacy_id=UUID, run_id=run.run_id, thread_id="t", migrated_at=utcnow()
                )
            )
        assert await store.resolve_thread(UUID) == "t"
        assert await store.get_run(UUID) == run
        assert await store.canonical_run_id(UUID) == run.run_id
    finally:
        await store.close()
