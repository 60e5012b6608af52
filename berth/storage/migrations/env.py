from __future__ import annotations

from alembic import context

from berth.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    # `alembic revision --autogenerate` during development: an offline SQLite file.
    import sqlalchemy as sa

    engine = sa.create_engine(context.config.get_main_option("sqlalchemy.url") or "sqlite://")
    connection = engine.connect()

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=False,
)
context.run_migrations()
