"""Database layer shared by the bridge and the web UI: SQLAlchemy 2.x models matching
``schema.sql``, engine/session creation, and the queries both services run."""

from store.db import create_db_engine, database_url_from_env, init_schema, make_sessionmaker

__all__ = ["create_db_engine", "database_url_from_env", "init_schema", "make_sessionmaker"]
