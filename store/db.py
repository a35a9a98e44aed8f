"""Engine and session creation. ``DATABASE_URL`` picks the database; the default is a SQLite file
in the git-ignored ``var/`` folder (which must exist: nothing here creates folders)."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.errors import ValidationError
from plantmodel.placeholders import refuse_placeholder
from plantmodel.servicehealth import Check
from store import migrate

log = logging.getLogger(__name__)

DEFAULT_SQLITE_PATH = Path("var/plant.db")


def database_url_from_env(env: Mapping[str, str]) -> str:
    """``DATABASE_URL`` (default: SQLite in var/); one with a placeholder password is refused."""
    url = env.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # create_db_engine says what is wrong with it
    # The driver also takes a password from the query string.
    for password in (parsed.password, parsed.query.get("password"), parsed.query.get("passwd")):
        if password is not None:
            refuse_placeholder("the password in DATABASE_URL", str(password), "see .env.example")
    return url


# A Galera cluster (or any set of replicas that all take writes): the URL names the first node, this
# setting the others, tried in order when the one before refuses or times out.
FAILOVER_ENV = "DATABASE_FAILOVER_HOSTS"
FAILOVER_CONNECT_TIMEOUT_S = 3  # per host, unless the URL sets connect_timeout
GALERA_NOT_READY = 1047  # ER_UNKNOWN_COM_ERROR, what a Galera node out of the primary component answers
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?)\Z")

Host = tuple[str, int]


def parse_failover_hosts(text: str) -> tuple[Host, ...]:
    """``DATABASE_FAILOVER_HOSTS``: ``host[:port],host[:port]…`` (port 3306 by default, IPv6 in
    brackets), or empty for none. Anything else (a URL, a user, an empty item, a bad port, a host
    named twice) raises :class:`ValidationError`."""
    text = text.strip()
    if not text:
        return ()
    hosts: list[Host] = []
    for item in (part.strip() for part in text.split(",")):
        host, port = item, "3306"
        if item.startswith("["):
            end = item.find("]")
            if end > 0 and item[end + 1:].startswith(":"):
                host, port = item[:end + 1], item[end + 2:]
        elif ":" in item:
            host, _, port = item.rpartition(":")
        if not _HOST.match(host) or not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
            raise ValidationError(f"{FAILOVER_ENV}: {item!r} is not host[:port] (e.g. db2:3306,db3:3306)")
        entry = (host.strip("[]"), int(port))
        if entry in hosts:
            raise ValidationError(f"{FAILOVER_ENV}: {item!r} is named twice")
        hosts.append(entry)
    return tuple(hosts)


def failover_hosts_from_env(env: Mapping[str, str]) -> tuple[Host, ...]:
    return parse_failover_hosts(env.get(FAILOVER_ENV, ""))


def _failover(engine: Engine, hosts: tuple[Host, ...]) -> None:
    """Every new connection of ``engine`` goes through :func:`connect_in_order`: the URL's host
    first, then each failover host. An established connection that dies is pool_pre_ping's and the
    caller's business (the bridge retries its batch, on a new connection, so on the next host)."""
    first = (engine.url.host or "localhost", engine.url.port or 3306)
    candidates = (first, *(h for h in hosts if h != first))

    @event.listens_for(engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return connect_in_order(dialect.loaded_dbapi, cargs, cparams, candidates)

    event.listen(engine, "handle_error", galera_not_ready_is_a_disconnect)


def galera_not_ready_is_a_disconnect(context: Any) -> None:
    """A node cut off from the cluster stays up and answers every query with 1047 (WSREP has not
    yet prepared node for application use), which SQLAlchemy does not count as a disconnect: the
    pooled connection would be reused, on that node, for every retry. Marked a disconnect, the pool
    drops it and the retry connects to a ready node."""
    # (A function of the module, not a closure: the unit test calls it with a stand-in context.)
    args = getattr(context.original_exception, "args", ())  # the driver's own exception
    if args and args[0] == GALERA_NOT_READY:
        context.is_disconnect = True


def connect_in_order(dbapi: Any, cargs: Any, cparams: dict[str, Any], candidates: tuple[Host, ...]) -> Any:
    """A DB-API connection to the first of ``candidates`` that takes it. A host is skipped when it
    refuses the connection, times out (``connect_timeout``: 3 s unless the URL sets one), or is a
    Galera node not ready for clients (``wsrep_ready`` OFF: out of the primary component, or still
    joining). The last host's error is raised when none will do."""
    params = {"connect_timeout": FAILOVER_CONNECT_TIMEOUT_S, **cparams}
    last: Exception | None = None
    for host, port in candidates:
        try:
            conn = dbapi.connect(*cargs, **{**params, "host": host, "port": port})
        except dbapi.OperationalError as exc:
            last = exc
            continue
        try:
            if _galera_ready(conn):
                if (host, port) != candidates[0]:
                    log.info("database: connected to failover host %s:%s", host, port)
                return conn
            last = dbapi.OperationalError(1047, f"{host}:{port} is a Galera node not ready for clients "
                                                "(wsrep_ready OFF)")
        except dbapi.OperationalError as exc:
            last = exc
        conn.close()
    assert last is not None, "no candidate host"
    raise last


def _galera_ready(conn: Any) -> bool:
    """False for a Galera node that does not take queries; True for a ready one or not Galera."""
    with conn.cursor() as cur:
        cur.execute("SHOW STATUS LIKE 'wsrep_ready'")
        row = cur.fetchone()
    return row is None or str(row[1]).upper() == "ON"


def create_db_engine(url: str, *, failover_hosts: tuple[Host, ...] = (), **kwargs: Any) -> Engine:
    """An engine for MariaDB (``mariadb+pymysql://…``) or SQLite (``sqlite:///path``). Connects
    lazily; a URL that cannot work (unparsable, unknown driver, SQLite folder missing) raises
    :class:`ValidationError` at once. ``failover_hosts`` (MariaDB only, see
    :func:`parse_failover_hosts`): the hosts tried after the URL's own, in order."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        # Not echoed: an unparsable URL may still hold a password.
        raise ValidationError("DATABASE_URL is not a database URL (e.g. sqlite:///var/plant.db or "
                              "mariadb+pymysql://user:pw@host:3306/plant?charset=utf8mb4)") from None
    try:
        if failover_hosts and parsed.get_backend_name() not in ("mysql", "mariadb"):
            raise ValidationError(f"{FAILOVER_ENV} needs a MariaDB DATABASE_URL, not {describe(parsed)}")
        if failover_hosts and "unix_socket" in parsed.query:
            raise ValidationError(f"{FAILOVER_ENV} needs a DATABASE_URL with a host and port, not a unix_socket")
        if parsed.get_backend_name() == "sqlite":
            check_sqlite_folder(parsed)
            engine = create_engine(parsed, connect_args={"timeout": 30}, **kwargs)
            if parsed.database and parsed.database != ":memory:":
                # First: SQLite gives the WAL files it creates next the database file's mode.
                event.listen(engine, "connect", _owner_only(parsed.database))
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        kwargs.setdefault("pool_pre_ping", True)  # survive a MariaDB restart / idle timeout
        kwargs.setdefault("pool_recycle", 3600)
        engine = create_engine(parsed, **kwargs)
        if failover_hosts:
            _failover(engine, failover_hosts)
        return engine
    except (ArgumentError, ImportError) as exc:  # unknown dialect, driver not installed
        raise ValidationError(f"DATABASE_URL {describe(parsed)}: {exc}") from None


def check_sqlite_folder(url: URL) -> None:
    """Refuse a SQLite file whose folder does not exist: SQLite would create a new, empty database
    anywhere a typo points, and the services would run on it without a word."""
    database = url.database
    if not database or database == ":memory:" or url.query.get("uri") == "true":
        return
    folder = Path(os.path.abspath(database)).parent
    if not folder.is_dir():
        raise ValidationError(f"DATABASE_URL {describe(url)}: folder {folder} does not exist "
                              "(create it first; the database file itself is created on first use)")


def _owner_only(database: str) -> Any:
    """The database file and its WAL files readable by their owner only: they hold password and
    token hashes (and a local user has no business reading the plant's data)."""

    def restrict(_dbapi_conn: Any, _record: Any) -> None:
        for path in (database, database + "-wal", database + "-shm"):
            try:
                if os.stat(path).st_mode & 0o077:
                    os.chmod(path, 0o600)
            except FileNotFoundError:
                pass

    return restrict


_WAL_SWITCH_WAIT_S = 10.0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: the web UI reads while the bridge writes; foreign keys are off by default in SQLite.
    # Switching a new database to WAL needs it unlocked, and SQLite's busy timeout does not apply
    # to that switch: services opening a new file together would fail at once with "database is
    # locked" while one of them creates the tables. Once the file is in WAL nothing is switched.
    deadline = time.monotonic() + _WAL_SWITCH_WAIT_S
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def init_schema(engine: Engine) -> None:
    """Make sure the database has this release's schema before a service uses it.

    An empty database gets it (every table, stamped at the newest migration; see
    :mod:`store.migrate`). A database at the newest migration passes. Any other one is refused:
    :class:`SchemaOutdated` (an older revision, or tables from before migrations: ``python -m store
    upgrade``) or :class:`SchemaTooNew` (a newer release upgraded it). A service never changes an
    existing schema itself: upgrading is the administrator's decision, after a backup."""
    with migrate.locked(engine) as conn:
        state = migrate.schema_state(conn)
        status = state.status
        if status == "current":
            return
        if status == "empty":
            try:
                migrate.create_current(conn)
            except DBAPIError as exc:
                if error_code(exc) not in _DDL_DENIED:
                    raise
                raise SchemaOutdated(engine, "the database has no tables (none this account may see), and user "
                                     f"{engine.url.username} may not create them") from None
            return
    if status == "newer":
        raise SchemaTooNew(engine, state.revision, state.head)
    if status == "legacy":
        raise SchemaOutdated(engine, "its schema is from a release before schema migrations (no alembic_version "
                             "table, or this account may not read it)")
    raise SchemaOutdated(engine, f"its schema is at revision {state.revision}; this release needs {state.head}")


def describe(url: str | URL) -> str:
    """The URL without its password, for logs."""
    return make_url(url).render_as_string(hide_password=True)


# What a database that is down, starting, restarting or unreachable raises; retried by
# wait_for_database. Anything else (a bug, a broken schema) propagates.
RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)

# MariaDB/MySQL error codes that are not "down" but still worth retrying: the user or the database
# may be created right after the server starts (docker's MariaDB image does exactly that).
_ACCESS_DENIED = frozenset({1044, 1045, 1698})
_UNKNOWN_DATABASE = 1049


class DatabaseUnavailable(Exception):
    """The database could not be reached (or refused us); ``str()`` is one line for the user."""


# "command denied" for a table or a column: a least-privilege account met DDL or a table not granted.
_DDL_DENIED = frozenset({1142, 1143})


class SchemaOutdated(DatabaseUnavailable):
    """The database's schema is not this release's (not retried: an administrator upgrades it first)."""

    def __init__(self, engine: Engine, what: str) -> None:
        super().__init__(f"database {describe(engine.url)}: {what}. Back it up, then upgrade it with an account "
                         "that may change the schema: DATABASE_URL=<that account's URL> python -m store upgrade "
                         "(README \"Schema upgrades\"), and start again")


class SchemaBusy(DatabaseUnavailable):
    """Another process holds the schema lock (an upgrade, say) for too long: retried by
    :func:`wait_for_database`, like a database that is down."""


class SchemaTooNew(DatabaseUnavailable):
    """A newer release upgraded the database (not retried)."""

    def __init__(self, engine: Engine, revision: str | None, head: str) -> None:
        super().__init__(f"database {describe(engine.url)} is at schema revision {revision}, which this release "
                         f"does not know (it knows up to {head}): a newer release upgraded it; run that release "
                         "(or restore a backup made for this one)")


def database_check(make_session: sessionmaker[Session]) -> Check:
    """A service's ``database`` health check: one ``SELECT 1`` on a pooled connection."""
    try:
        with make_session() as session:
            session.execute(text("SELECT 1"))
        return Check(True)
    except SQLAlchemyError as exc:
        log.warning("health check: database unavailable: %s", exc)
        return Check(False, f"unreachable ({exc.__class__.__name__})")


def connect_database(engine: Engine) -> None:
    """Connect once and create the missing tables; raise :class:`DatabaseUnavailable` (one line)
    when the database is not reachable."""
    try:
        init_schema(engine)
    except RETRYABLE as exc:
        problem, hint = _problem(exc)
        raise DatabaseUnavailable(f"database {describe(engine.url)} {problem}: {_cause(exc)}{hint}") from exc


def wait_for_database(engine: Engine, *, stop: threading.Event | None = None,
                      log: logging.Logger = log, first_delay: float = 1.0, max_delay: float = 30.0) -> bool:
    """Connect and create the missing tables, retrying with back-off (1, 2, 4 … ``max_delay`` s)
    while the database is unreachable, one log line per attempt: services may start before their
    database. Returns False if ``stop`` is set meanwhile; other errors propagate."""
    if stop is None:
        stop = threading.Event()
    delay = first_delay
    while not stop.is_set():
        try:
            init_schema(engine)
        except RETRYABLE as exc:
            problem, hint = _problem(exc)
            log.warning("database %s %s (%s)%s; retrying in %g s", describe(engine.url), problem, _cause(exc), hint,
                        delay)
            if _sleep_unless(stop, delay):
                break
            delay = min(delay * 2, max_delay)
            continue
        except SchemaBusy as exc:
            log.warning("%s; retrying in %g s", exc, delay)
            if _sleep_unless(stop, delay):
                break
            delay = min(delay * 2, max_delay)
            continue
        log.info("database %s reachable", describe(engine.url))
        return True
    return False


def _sleep_unless(stop: threading.Event, seconds: float) -> bool:
    """Sleep, polling ``stop``; True if it was set. Polling, not ``stop.wait()``: a signal handler
    calling ``stop.set()`` could interrupt the main thread inside ``wait()`` while it holds the
    event's lock, and deadlock."""
    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(left, 0.1))
    return True


def _problem(exc: Exception) -> tuple[str, str]:
    """(what went wrong, a hint to append) for a log line or an error message."""
    code = error_code(exc)
    if code in _ACCESS_DENIED:
        return "refused the log-in", "; check the user and password in DATABASE_URL"
    if code == _UNKNOWN_DATABASE:
        return "has no such database", "; create it, or check DATABASE_URL"
    return "not reachable", ""


def error_code(exc: BaseException) -> int | None:
    """The database's own error number (MariaDB's 1062, 2003 ...) behind a SQLAlchemy error."""
    args = exc.orig.args if isinstance(exc, DBAPIError) and exc.orig is not None else ()
    return args[0] if args and isinstance(args[0], int) else None


def _cause(exc: Exception) -> str:
    """``OperationalError: (2003, "Can't connect …")``: the driver's error on one line, without
    SQLAlchemy's wrapping (statement, background link)."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    return " ".join(f"{type(orig).__name__}: {orig}".split())
