"""The ORM models (the source of truth), the migrations and the generated schema.sql describe the same
database; an existing database is upgraded without losing a row; services refuse other revisions."""

from __future__ import annotations

import io
import subprocess
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from store import migrate
from store.db import create_db_engine, init_schema, make_sessionmaker
from store.models import Base
from tests.processes import REPO
from tests.servers import MariaDBServer, find_binary

pytestmark = pytest.mark.integration


def describe(engine: sa.Engine) -> dict[str, Any]:
    """Everything about the tables that matters, read back from information_schema."""
    queries = {
        "tables": "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                  "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1",
        "columns": "SELECT TABLE_NAME, ORDINAL_POSITION, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, "
                   "EXTRA, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
                   "WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2",
        "indexes": "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME FROM "
                   "information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() ORDER BY 1, 2, 4",
        "foreign_keys": "SELECT TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION, COLUMN_NAME, REFERENCED_TABLE_NAME, "
                        "REFERENCED_COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
                        "DATABASE() AND REFERENCED_TABLE_NAME IS NOT NULL ORDER BY 1, 2, 3",
    }
    with engine.connect() as conn:
        return {k: [tuple(r) for r in conn.execute(sa.text(q))] for k, q in queries.items()}


def apply_schema_sql(mariadb: MariaDBServer, url: str) -> None:
    """The documented way: the mariadb client reading schema.sql."""
    database = sa.engine.make_url(url).database
    with (REPO / "schema.sql").open("rb") as sql:
        subprocess.run([find_binary("mariadb"), f"--socket={mariadb.socket}", "-uroot", str(database)],
                       stdin=sql, check=True, capture_output=True)


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    out = []
    for key in a:
        only_a, only_b = set(a[key]) - set(b[key]), set(b[key]) - set(a[key])
        out += [f"{key} only in schema.sql: {r}" for r in sorted(only_a, key=str)]
        out += [f"{key} only in models: {r}" for r in sorted(only_b, key=str)]
    return out


def test_schema_sql_matches_orm_models(mariadb: MariaDBServer) -> None:
    from_sql = create_db_engine(mariadb.create_database("schema_sql"))
    from_orm = create_db_engine(mariadb.create_database("schema_orm"))
    from_migrations = create_db_engine(mariadb.create_database("schema_migrations"))
    apply_schema_sql(mariadb, str(from_sql.url))
    init_schema(from_orm)  # an empty database at a service's start: create_all + stamp
    with from_migrations.connect() as conn:  # every revision, one after the other
        command.upgrade(migrate.alembic_config(conn, stdout=io.StringIO()), "head")
        conn.commit()

    described_sql, described_orm = describe(from_sql), describe(from_orm)
    assert len(described_sql["tables"]) == len(Base.metadata.tables) + 1 == 27  # + alembic_version
    assert diff(described_sql, described_orm) == []
    assert diff(describe(from_migrations), described_orm) == []
    with from_sql.connect() as conn:
        assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == migrate.head_revision()

    # The comparison is sensitive: one altered column is reported.
    with from_sql.begin() as conn:
        conn.execute(sa.text("ALTER TABLE readings MODIFY ph FLOAT NOT NULL"))
    assert any("readings" in d and "'ph'" in d for d in diff(describe(from_sql), described_orm))


def test_orm_works_on_database_built_from_schema_sql(mariadb: MariaDBServer) -> None:
    """The services' create_all is a no-op on a schema.sql database, and the ORM writes to it."""
    from datetime import UTC, datetime

    from store import queries

    url = mariadb.create_database("schema_use")
    apply_schema_sql(mariadb, url)
    engine = create_db_engine(url)
    init_schema(engine)
    with make_sessionmaker(engine).begin() as session:
        assert queries.seed_default_thresholds(session, datetime.now(UTC)) > 0
    with make_sessionmaker(engine)() as session:
        assert {t.measure for t in queries.load_thresholds(session)} >= {"tank_temp_c", "apower"}
