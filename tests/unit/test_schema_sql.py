"""schema.sql is generated from the migrations: a test fails when it is not current."""

from __future__ import annotations

from store import migrate
from tests.processes import REPO


def test_schema_sql_is_what_the_migrations_generate() -> None:
    generated = migrate.schema_sql()
    assert (REPO / "schema.sql").read_text(encoding="utf-8") == generated, (
        "schema.sql is out of date: python -m store schema-sql > schema.sql")
    assert "CREATE TABLE readings_hour" in generated and "INSERT INTO alembic_version" in generated
    assert f"version_num='{migrate.head_revision()}'" in generated


def test_the_head_revision_is_the_last_file() -> None:
    versions = sorted(p.name for p in (REPO / "store" / "migrations" / "versions").glob("[0-9]*.py"))
    assert versions[-1].startswith(migrate.head_revision() + "_")
