"""Schema versions with Alembic: which revision a database is at, creating a new database, upgrading
an old one, the MariaDB SQL of the whole schema (``schema.sql``), a new revision's skeleton.

The ORM (``store/models.py``) is the source of truth; the revisions in ``store/migrations/versions``
create and change every table to match it (``tests/integration/test_schema.py`` checks that a
database migrated from nothing has exactly the ORM's schema, on MariaDB and SQLite).

A service's start (:func:`store.db.init_schema`) checks :func:`schema_state`: an empty
database gets the whole schema (``create_all`` and a stamp of the head revision: the same tables,
in one step instead of one per revision); a database at the head revision passes; any other one is
refused with what to run (``python -m store upgrade``), so a service never writes to a schema it
does not know. Creating and upgrading take a lock (MariaDB ``GET_LOCK``; SQLite ``BEGIN IMMEDIATE``):
services started together on an empty database create it once.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect, text

from store.models import Base

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
_LOCK_NAME = "plant_schema"
_LOCK_WAIT_S = 300  # a long upgrade (a backfill of rollups) holds it


def alembic_config(connection: Connection | None = None, *, stdout: TextIO | None = None) -> Config:
    """Alembic's configuration for our migrations (no alembic.ini needed), on ``connection``."""
    cfg = Config(stdout=stdout) if stdout is not None else Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    return _head(scripts())


def _head(script: ScriptDirectory) -> str:
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the baseline exists
        raise RuntimeError("no migration in store/migrations/versions")
    return head


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What a database holds: its revision (None: no ``alembic_version``) and whether it has tables."""

    revision: str | None
    has_tables: bool
    head: str
    known: bool  # the revision is one of ours (False: a newer release upgraded it, or it is foreign)

    @property
    def status(self) -> str:
        """``empty`` | ``legacy`` (tables from before migrations) | ``current`` | ``outdated`` | ``newer``."""
        if self.revision is None:
            return "legacy" if self.has_tables else "empty"
        if self.revision == self.head:
            return "current"
        return "outdated" if self.known else "newer"


def schema_state(conn: Connection) -> SchemaState:
    """Read the revision and the table list (only the tables this account may see)."""
    tables = set(inspect(conn).get_table_names())
    revision = None
    if VERSION_TABLE in tables:  # (read directly: Alembic's context would log two lines at every start)
        revision = conn.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    script = scripts()  # (parsed once: every service's start comes through here)
    known = revision is not None and _is_known(script, revision)
    return SchemaState(revision, bool(tables - {VERSION_TABLE}), _head(script), known)


def _is_known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises several kinds for an unknown id
        return False


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection holding the schema lock, committed at the end (rolled back on error)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # SQLite's DDL is transactional: one write transaction, taken now, covers check and change.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return
        # GET_LOCK names are server-wide: the database's name in it, so that one database's upgrade
        # does not hold up the services of another on the same server.
        name = f"{_LOCK_NAME}:{conn.scalar(text('SELECT DATABASE()'))}"[:64]
        got = conn.scalar(text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": _LOCK_WAIT_S})
        conn.commit()
        if got != 1:
            from store.db import SchemaBusy

            raise SchemaBusy(f"database {engine.url.render_as_string(hide_password=True)}: another process has "
                             f"held the schema lock for {_LOCK_WAIT_S} s (an upgrade running?)")
        try:
            yield conn
            conn.commit()
        finally:
            conn.rollback()
            conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
            conn.commit()


def create_current(conn: Connection) -> None:
    """An empty database: every table of the ORM, stamped at the head revision."""
    Base.metadata.create_all(conn)
    script = scripts()
    MigrationContext.configure(conn).stamp(script, "head")
    log.info("created the database schema at revision %s", _head(script))


def upgrade(engine: Engine, *, target: str = "head", out: TextIO | None = None) -> tuple[SchemaState, SchemaState]:
    """Bring the database to ``target`` (head): run the revisions it lacks, or adopt a database from
    before migrations (the baseline revision adds what an older release lacked). Returns the states
    before and after."""
    with locked(engine) as conn:
        before = schema_state(conn)
        if before.status == "newer":
            from store.db import SchemaTooNew

            raise SchemaTooNew(engine, before.revision, before.head)
        if before.status == "empty":
            create_current(conn)
        elif before.status != "current":
            command.upgrade(alembic_config(conn, stdout=out or io.StringIO()), target)
        after = schema_state(conn)
    return before, after


def offline_sql(*, stdout: TextIO) -> None:
    """The MariaDB SQL of every revision from nothing to head (what ``schema.sql`` holds)."""
    cfg = alembic_config(stdout=stdout)
    cfg.set_main_option("sqlalchemy.url", "mysql+pymysql://")  # (the mysql dialect renders the mysql_* table options)
    cfg.output_buffer = stdout  # type: ignore[attr-defined]  # alembic writes the offline SQL here
    command.upgrade(cfg, "head", sql=True)


# -- command line: python -m store upgrade | schema-sql | revision ---------------------------------------

SCHEMA_SQL_HEADER = """-- Au Bon Beurre telemetry: the MariaDB schema, GENERATED from the migrations (store/migrations/)
-- by: python -m store schema-sql > schema.sql
-- Do not edit: change store/models.py and add a revision (README "Schema upgrades"). Apply it to an
-- EMPTY database (mariadb plant < schema.sql); upgrade an existing one with `python -m store upgrade`.
-- Times are UTC, DATETIME(3) (milliseconds).

"""


def schema_sql() -> str:
    out = io.StringIO()
    offline_sql(stdout=out)
    return SCHEMA_SQL_HEADER + out.getvalue()


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "upgrade", help="bring the database's schema to this release's (run after installing a new release)",
        description="Upgrade the schema of DATABASE_URL to this release's revision: run the migrations it lacks "
        "(store/migrations/versions), or adopt a database created before migrations existed (the tables, columns "
        "and indexes an older release lacked are added; nothing is dropped); an empty database gets the whole "
        "schema. Back the database up first (python -m store backup). Needs an account that may change the schema "
        "(MariaDB: plant_admin or root). The services refuse to start on a database at an older revision, and "
        "say so. --check only tells where the database stands. Exit status: 0 done (or, with --check, already "
        "current), 1 failed or (--check) an upgrade is needed, 2 usage.")
    p.add_argument("--check", action="store_true", help="change nothing: print the revision and whether an upgrade "
                   "is needed")
    p.set_defaults(handler=cmd_upgrade)
    p = sub.add_parser("schema-sql", help="print the MariaDB schema generated from the migrations (schema.sql)",
                       description="Print the MariaDB SQL that creates the whole schema, generated offline from the "
                       "migrations (no database needed): python -m store schema-sql > schema.sql. A test fails "
                       "when schema.sql is not current.")
    p.set_defaults(handler=cmd_schema_sql)
    p = sub.add_parser(
        "revision", help="write a new migration from the difference between the models and the last revision",
        description="For developers: compare store/models.py with the schema the existing revisions build (on a "
        "throw-away SQLite database; DATABASE_URL is not used) and write a new revision file in "
        "store/migrations/versions with the operations found (review it: a rename shows as drop + add; a new "
        "measure's columns are better written with store.migrations.helpers.add_measure). Then regenerate "
        "schema.sql.")
    p.add_argument("-m", "--message", required=True, help="what the revision does, e.g. 'add measure lactose'")
    p.set_defaults(handler=cmd_revision)


def cmd_upgrade(args: argparse.Namespace) -> int:
    from store.db import create_db_engine, database_url_from_env, describe

    url = database_url_from_env(os.environ)
    engine = create_db_engine(url)
    try:
        if args.check:
            with engine.connect() as conn:
                state = schema_state(conn)
            print(f"database {describe(url)}: {_status_text(state)}")
            return 0 if state.status == "current" else 1
        print(f"upgrading the schema of {describe(url)} to revision {head_revision()}…", flush=True)
        out = _Progress()
        before, after = upgrade(engine, out=out)
    finally:
        engine.dispose()
    if before.status == "current":
        print(f"already at revision {after.revision}: nothing to do")
    else:
        print(f"done: {before.revision or before.status} -> {after.revision}")
    return 0


class _Progress(io.StringIO):
    """Alembic's "Running upgrade A -> B" lines, as they come (a backfill can take minutes)."""

    def write(self, s: str) -> int:
        print(s, end="", flush=True)
        return len(s)


def _status_text(state: SchemaState) -> str:
    return {"empty": f"empty (an upgrade creates revision {state.head})",
            "legacy": f"created before schema migrations: an upgrade adopts it and brings it to {state.head}",
            "current": f"at revision {state.revision}, this release's: nothing to do",
            "outdated": f"at revision {state.revision}: an upgrade to {state.head} is needed",
            "newer": f"at revision {state.revision}, newer than this release ({state.head}): use the newer release",
            }[state.status]


def cmd_schema_sql(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_sql())
    return 0


def cmd_revision(args: argparse.Namespace) -> int:
    import tempfile

    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/head.db")
        try:
            with engine.connect() as conn:
                command.upgrade(alembic_config(conn, stdout=io.StringIO()), "head")
                conn.commit()
                cfg = alembic_config(conn)
                script = command.revision(cfg, message=args.message, autogenerate=True,
                                          rev_id=f"{int(head_revision()) + 1:04d}")
        finally:
            engine.dispose()
    paths = [s.path for s in (script if isinstance(script, list) else [script]) if s is not None]
    print("wrote " + ", ".join(paths) + ": review it, then python -m store schema-sql > schema.sql")
    return 0
