"""Alembic's environment: runs the revisions of ``versions/`` on the connection :mod:`store.migrate`
passes in (``config.attributes["connection"]``), or, for ``alembic`` run by hand from the repository
(alembic.ini), on ``DATABASE_URL``. Offline (``--sql``) it writes MariaDB SQL: that is schema.sql."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",  # SQLite's ALTER TABLE is limited
                      compare_type=True)


def run_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url") or "mysql+pymysql://",
                      target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    from store.db import create_db_engine, database_url_from_env  # alembic run by hand

    engine = create_db_engine(database_url_from_env(os.environ))
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
