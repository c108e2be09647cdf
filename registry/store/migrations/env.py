"""Alembic environment: migrations run on a connection the registry hands in.

The caller holds the write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL advisory lock)
for the whole upgrade, so many processes opening a new store at once migrate it once.
"""

from alembic import context

from registry.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
context.run_migrations()
