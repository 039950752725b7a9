"""Alembic environment: runs on the connection slipway hands over, or opens its own."""

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import create_engine

from slipway.core.schema import load_models

config = context.config
target_metadata = load_models().metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as own_connection:
        _run(own_connection)
