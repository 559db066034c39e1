"""Alembic environment: runs on the connection handed over by `duecourse.store.migrate`."""

from __future__ import annotations

from alembic import context

from duecourse.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `duecourse db upgrade`, which supplies the "
                       "connection from DUECOURSE_DATABASE_URL")

context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
