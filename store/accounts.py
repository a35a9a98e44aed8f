"""The database accounts of ``accounts.sql`` (administrator, delegated administrator, collector,
datavision, retention), applied from Python: ``python -m store accounts`` and the tests.

Run with an account that may create users and grant (root, a DBA). In order, on the target
database: create it if missing, bring the schema up to date (:func:`store.migrate.upgrade`: the
migrations it lacks), then run ``accounts.sql`` with the passwords given (never written anywhere:
they are user variables of the session), which also seeds the default alarm thresholds (the
collector may only read thresholds). Every step is idempotent: running it again rotates the
passwords to the ones given and resets each account's grants to the file's.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError

from plantmodel.errors import ValidationError
from plantmodel.placeholders import refuse_placeholder
from store import migrate
from store.db import create_db_engine, database_url_from_env, describe

log = logging.getLogger(__name__)

ACCOUNTS_SQL = Path(__file__).resolve().parent.parent / "accounts.sql"

# role -> (MariaDB user, environment variable holding its password)
ACCOUNTS: dict[str, tuple[str, str]] = {
    "admin": ("plant_admin", "DB_ADMIN_PASSWORD"),
    "delegate": ("plant_delegate", "DB_DELEGATE_PASSWORD"),
    "collector": ("plant_collector", "DB_COLLECTOR_PASSWORD"),
    "datavision": ("plant_datavision", "DB_DATAVISION_PASSWORD"),
    "retention": ("plant_retention", "DB_RETENTION_PASSWORD"),
}
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


def check_password(role: str, password: str | None) -> str:
    """A usable password for ``role``'s account: not empty, not a ``.env.example`` placeholder."""
    variable = ACCOUNTS[role][1]
    if not password:
        raise ValidationError(f"{variable} is not set: the {ACCOUNTS[role][0]} account needs a password")
    if not all(" " <= c <= "~" for c in password):
        # PyMySQL sends a password as latin-1: a non-ASCII one set here would never log in.
        raise ValidationError(f"{variable} must be printable ASCII (e.g. python3 -c 'import secrets; "
                              "print(secrets.token_urlsafe(24))')")
    return refuse_placeholder(variable, password)


def passwords_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """role -> password, from ``DB_ADMIN_PASSWORD`` … ``DB_RETENTION_PASSWORD``; refuses a missing,
    empty or placeholder one."""
    return {role: check_password(role, env.get(variable, "").strip()) for role, (_, variable) in ACCOUNTS.items()}


def check_database_name(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValidationError(f"database name {name!r} must be 1-64 letters, digits, _ or $")
    return name


def account_url(url: str, role: str, password: str, database: str | None = None) -> str:
    """``url`` (any account's, e.g. root's) rewritten for ``role``'s account: what the services'
    ``DATABASE_URL`` look like (bridge: collector, web UI: datavision, retention job: retention)."""
    parsed = _parse(url).set(username=ACCOUNTS[role][0], password=password)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:  # not echoed: it may hold a password
        raise ValidationError("the database URL is not a URL (e.g. mariadb+pymysql://root:PW@host:3306/)") from None


def sql_statements(sql: str) -> Iterator[str]:
    """The statements of a SQL script as the ``mariadb`` client splits them (``;`` outside quotes and
    comments); ``--`` and ``#`` comments dropped. Enough for ``accounts.sql`` (no DELIMITER)."""
    statement: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            end = i + 1
            while end < n and sql[end] != c:
                end += 2 if sql[end] == "\\" and c != "`" else 1
            statement.append(sql[i:end + 1])
            i = end + 1
        elif c == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2] in " \t\r\n")):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif c == ";":
            stmt = "".join(statement).strip()
            if stmt:
                yield stmt
            statement = []
            i += 1
        else:
            statement.append(c)
            i += 1
    stmt = "".join(statement).strip()
    if stmt:
        yield stmt


def run_accounts_sql(engine: Engine, passwords: Mapping[str, str], sql_path: Path = ACCOUNTS_SQL) -> None:
    """Run ``accounts.sql`` on ``engine``'s database (its default database) with these passwords
    (one user variable ``@<role>_password`` per role of :data:`ACCOUNTS`)."""
    statements = list(sql_statements(sql_path.read_text(encoding="utf-8")))
    with engine.connect() as conn:
        # Bound parameters: the passwords reach the server as escaped literals, nowhere else.
        conn.execute(text("SET " + ", ".join(f"@{role}_password = :{role}" for role in ACCOUNTS)),
                     {role: passwords[role] for role in ACCOUNTS})
        try:
            for statement in statements:
                conn.exec_driver_sql(statement, execution_options={"no_parameters": True})
        finally:
            conn.execute(text("SET " + ", ".join(f"@{role}_password = NULL" for role in ACCOUNTS)))
        conn.commit()


def apply_accounts(admin_url: str, database: str, passwords: Mapping[str, str], *,
                   sql_path: Path = ACCOUNTS_SQL) -> None:
    """Create ``database`` if missing, bring its schema up to date, and run ``accounts.sql``: the five
    accounts with ``passwords`` (role -> password), the default thresholds. Connected as
    ``admin_url``'s account (one that may CREATE USER and GRANT, e.g. root)."""
    check_database_name(database)
    passwords = {role: check_password(role, passwords.get(role)) for role in ACCOUNTS}
    parsed = _parse(admin_url)
    if parsed.get_backend_name() not in ("mysql", "mariadb"):
        raise ValidationError(f"database accounts are for MariaDB; {describe(parsed)} is not")
    server = create_db_engine(parsed.set(database=None).render_as_string(hide_password=False))
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{database}` "
                                 "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    finally:
        server.dispose()
    engine = create_db_engine(parsed.set(database=database).render_as_string(hide_password=False))
    try:
        before, after = migrate.upgrade(engine)
        if before.revision != after.revision:
            log.info("schema of %s upgraded from %s to revision %s", database, before.revision or before.status,
                     after.revision)
        run_accounts_sql(engine, passwords, sql_path)
        log.info("accounts %s on %s: created or updated (passwords set, grants reset)",
                 ", ".join(user for user, _ in ACCOUNTS.values()), database)
    finally:
        engine.dispose()


# -- command line (``python -m store accounts``) ----------------------------------------------------------

def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``accounts`` subcommand; its ``handler`` is :func:`run`."""
    parser = subparsers.add_parser(
        "accounts", help="create or update the database accounts (administrator, delegate, collector, datavision, "
        "retention)",
        description="Create the database if missing, bring its schema up to date, then run accounts.sql: create "
        "or update the five accounts (passwords from DB_ADMIN_PASSWORD, DB_DELEGATE_PASSWORD, DB_COLLECTOR_PASSWORD, "
        "DB_DATAVISION_PASSWORD, DB_RETENTION_PASSWORD; grants reset to the file's) and seed the default alarm "
        "thresholds. Connects as an account that may create users and grant (root). Run it again to rotate "
        "passwords or after an upgrade.")
    parser.add_argument("--url", default=None,
                        help="the root (or DBA) account's URL, e.g. mariadb+pymysql://root:PW@host:3306/ "
                        "(default: DATABASE_URL)")
    parser.add_argument("--database", default=None,
                        help="the plant database (default: the one in the URL, else MARIADB_DATABASE, else plant)")
    parser.add_argument("--sql", type=Path, default=None,
                        help=f"the accounts script (default: ACCOUNTS_SQL, else {ACCOUNTS_SQL})")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """``python -m store accounts``: 0 when done, 2 on a usage or configuration error (one line on
    stderr, never a password). Database errors propagate (SQLAlchemyError) to the caller's handler."""
    env = os.environ if env is None else env
    args.sql = args.sql or Path(env.get("ACCOUNTS_SQL", "").strip() or ACCOUNTS_SQL)
    url = args.url or database_url_from_env(env)
    try:
        database = args.database or _parse(url).database or env.get("MARIADB_DATABASE", "").strip() or "plant"
        apply_accounts(url, database, passwords_from_env(env), sql_path=args.sql)
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the SQL file
        print(f"error: cannot read {args.sql}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"accounts ready on database {database}; the services' DATABASE_URL:")
    for role, (_, variable) in ACCOUNTS.items():
        shown = _parse(account_url(url, role, "x", database)).render_as_string(hide_password=True)
        print(f"  {role:10} {shown.replace('***', '$' + variable)}")
    return 0
