"""Alembic environment: migrations run on the connection :meth:`HubStore.migrate` passes in."""

from __future__ import annotations

from alembic import context

from phds.hub.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run hub migrations through phds.hub.store.HubStore.migrate()")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
