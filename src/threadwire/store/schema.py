"""Schema versions: run the packaged Alembic migrations in code (no alembic.ini needed).

SQLite (embedded) is brought up to date on open; PostgreSQL is created when empty and
otherwise only checked, because upgrading a shared production database is an
operator's decision (`threadwire db upgrade`). See docs/decisions/0012.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from threadwire.store.base import SchemaOutdated
from threadwire.store.engine import write_transaction

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
_PG_LOCK_KEY: Final = 0x7477_5F73_6368  # "tw_sch": one migrator at a time per database


@dataclass(frozen=True, slots=True)
class SchemaState:
    """Where a database stands: its revision (None when never installed) and the head."""

    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        """True when the database is at the code's head revision."""
        return self.current == self.head


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the store ships at least one revision"
    return head


def _current(sync_conn: Connection) -> str | None:
    return MigrationContext.configure(sync_conn).get_current_revision()


async def schema_state(conn: AsyncConnection) -> SchemaState:
    """The revision `conn`'s database is at, next to the head."""
    return SchemaState(await conn.run_sync(_current), head_revision())


async def upgrade(engine: AsyncEngine) -> SchemaState:
    """Apply every pending migration in one transaction; returns the state before."""
    async with write_transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        before = await schema_state(conn)
        if before.current is not None and not _is_known(before.current):
            raise SchemaOutdated(
                before.current, before.head, _safe_url(engine), database_is_newer=True
            )
        if not before.is_current:
            await conn.run_sync(_run_upgrade)
        return before


def _run_upgrade(sync_conn: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = sync_conn
    command.upgrade(config, "head")


async def ensure_schema(engine: AsyncEngine, *, migrate: bool | None = None) -> None:
    """Make sure the schema is current before serving.

    `migrate=None` picks per backend: SQLite upgrades; PostgreSQL installs the schema
    into a database that never had it and raises SchemaOutdated for an older one.
    """
    if migrate is None:
        migrate = engine.dialect.name == "sqlite"
    if migrate:
        await upgrade(engine)
        return
    async with engine.connect() as conn:
        state = await schema_state(conn)
    if state.is_current:
        return
    if state.current is None:
        await upgrade(engine)
        return
    raise SchemaOutdated(
        state.current,
        state.head,
        _safe_url(engine),
        database_is_newer=not _is_known(state.current),
    )


def _safe_url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _is_known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False
