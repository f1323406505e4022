"""Alembic environment: runs on the connection `threadwire.store.schema` hands it.

There is no alembic.ini: `threadwire db upgrade` (or SqlStore.open) builds the config
in code and passes an open connection in `config.attributes["connection"]`.
"""

from __future__ import annotations

from alembic import context

from threadwire.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("run the store's migrations with `threadwire db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
