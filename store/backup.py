"""Backups of the plant's database, and their restore (``python -m store backup|restore``).

MariaDB: ``mariadb-dump --single-transaction`` (one consistent snapshot of every InnoDB table,
without locking the bridge out), piped through gzip into ``<dir>/<prefix>-<UTC time>.sql.gz``; a
restore pipes it back into the ``mariadb`` client. SQLite: the online backup API (a consistent copy
while the bridge writes), gzipped into ``<dir>/<prefix>-<UTC time>.sqlite.gz``; a restore copies it
back into the target with the same API. ``<prefix>`` is the database's name (``plant``).

A backup is written under a hidden temporary name and gets its final name only once it is complete
and on disk: a crashed or failed backup never looks like one. Files are readable by their owner only
(the ``users`` table holds password and token hashes). The password never appears on a command line
(anyone on the host can read those): the MariaDB tools get it in a temporary option file.

Bacteria levels are food-safety records: a restore must give back exactly what was saved, so a file
is checked (complete gzip, complete dump / intact SQLite database) *before* the target database is
touched, and a database that holds tables is replaced only when asked (``force``).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Literal

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from plantmodel.envconf import DEFAULT_VAR_DIR, env_float, env_int, env_path
from plantmodel.errors import PlantModelError, ValidationError
from store.db import RETRYABLE, _cause, _problem, check_sqlite_folder, create_db_engine, database_url_from_env, describe
from store.dumpcheck import UnsafeDump, check_lines
from store.models import Base

log = logging.getLogger(__name__)

Kind = Literal["sql", "sqlite"]  # what a backup file holds: a MariaDB dump, or a SQLite database

DEFAULT_BACKUP_DIR = DEFAULT_VAR_DIR / "backups"
DEFAULT_KEEP = 14

# mariadb-dump's options. --single-transaction: one consistent InnoDB snapshot, no lock on the
# tables (the bridge keeps writing); so --skip-lock-tables (LOCK TABLES would end that snapshot, and
# needs a privilege a backup account should not have); --no-tablespaces: no query for tablespaces
# (needs PROCESS on MySQL); --hex-blob: binary columns as hex, safe through any charset;
# utf8mb4: our tables' charset (the client default, latin1 or utf8mb3, would garble 4-byte text).
# No database list (--databases): the dump carries no CREATE DATABASE / USE, so it restores into
# whatever database DATABASE_URL names.
DUMP_OPTIONS = (
    "--single-transaction",
    "--skip-lock-tables",
    "--routines",
    "--triggers",
    "--hex-blob",
    "--no-tablespaces",
    "--default-character-set=utf8mb4",
)
# --binary-mode: no client-side translation of the dump (\r\n, \0); the client's own commands
# other than DELIMITER are not interpreted either.
# --binary-mode: client commands (\\! shell, source, system) in a crafted dump are not run.
# --local-infile=0: nor is LOAD DATA LOCAL INFILE, which would copy our files (the environment,
# keys) into the database.
# --init-command: the dump's own SQL mode from the first line, so that the server reads strings
# as store/dumpcheck.py did (backslash escapes on), whatever the server's global mode.
CLIENT_OPTIONS = ("--default-character-set=utf8mb4", "--binary-mode", "--local-infile=0",
                  "--init-command=SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO'")
DUMP_COMPLETED = b"-- Dump completed"
CHUNK = 1 << 20
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
FUTURE_SLACK = timedelta(hours=1)  # a backup named later than now + this is "from the future"


class BackupError(PlantModelError):
    """A backup or a restore that did not happen; ``str()`` is one line for the operator."""


# -- settings ---------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BackupSettings:
    database_url: str
    directory: Path = DEFAULT_BACKUP_DIR
    keep: int = DEFAULT_KEEP  # newest backups kept; 0 = no limit by count
    max_age_days: float = 0.0  # older backups removed; 0 = no limit by age

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> BackupSettings:
        """``DATABASE_URL``, ``BACKUP_DIR`` (var/backups), ``BACKUP_KEEP`` (14; 0 = all) and
        ``BACKUP_MAX_AGE_DAYS`` (0 = no limit)."""
        return cls(
            database_url=database_url_from_env(env),
            directory=env_path(env, "BACKUP_DIR", DEFAULT_BACKUP_DIR),
            keep=env_int(env, "BACKUP_KEEP", DEFAULT_KEEP, minimum=0),
            max_age_days=env_float(env, "BACKUP_MAX_AGE_DAYS", 0.0),
        )


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    size: int  # bytes on disk (compressed)
    seconds: float
    rotated: tuple[Path, ...]  # older backups removed


@dataclass(frozen=True, slots=True)
class RestoreResult:
    tables: int  # tables in the database after the restore
    seconds: float
    dropped: int  # tables (and views) the database held before, replaced by --force


# -- naming and rotation ----------------------------------------------------------------------------------

def backup_prefix(url: URL) -> str:
    """The database's name (``plant``; the file name without suffix for SQLite), in file-name-safe
    characters: backups of several databases can share a folder without rotating each other away."""
    name = Path(url.database).stem if url.get_backend_name() == "sqlite" and url.database else url.database
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "") or "db"


def _name_pattern(prefix: str, kind: Kind) -> re.Pattern[str]:
    # plant-20260121T101500Z.sql.gz, and plant-20260121T101500Z-1.sql.gz for a second one that second.
    return re.compile(rf"{re.escape(prefix)}-(\d{{8}}T\d{{6}}Z)(?:-(\d{{1,4}}))?\.{kind}\.gz")


@dataclass(frozen=True, slots=True)
class BackupFile:
    path: Path
    taken_at: datetime
    serial: int  # 0, or n for the n+1th backup within one second

    @property
    def order(self) -> tuple[datetime, int]:
        return (self.taken_at, self.serial)


def list_backups(directory: Path, prefix: str, kind: Kind) -> list[BackupFile]:
    """Our backups in ``directory`` (regular files named by our pattern for this database and kind,
    nothing else), newest first."""
    pattern = _name_pattern(prefix, kind)
    found = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = pattern.fullmatch(entry.name)
        if m is None or not entry.is_file(follow_symlinks=False):
            continue
        if not _ours(entry):  # someone else's file: not ours to judge
            continue
        try:
            taken = datetime.strptime(m.group(1), STAMP_FORMAT).replace(tzinfo=UTC)
        except ValueError:  # 20261399T...: not a time, not ours
            continue
        found.append(BackupFile(Path(entry.path), taken, int(m.group(2) or 0)))
    return sorted(found, key=lambda b: b.order, reverse=True)


def _ours(entry: os.DirEntry[str]) -> bool:
    """Owned by the user running the backup (another user's file is neither counted nor removed)."""
    return entry.stat(follow_symlinks=False).st_uid == os.geteuid()


def rotate(directory: Path, prefix: str, kind: Kind, *, keep: int, max_age_days: float, now: datetime,
           protect: Path | None = None) -> list[Path]:
    """Remove our backups beyond the newest ``keep`` (0: no limit) or older than ``max_age_days``
    (0: no limit), judged by the time in their names; never ``protect`` (the backup just written),
    never a file not named like ours. Returns what was removed."""
    removed = []
    # Named after a time still to come: a clock that jumped, or planted. They neither count
    # towards `keep` (they would push real backups out) nor are removed.
    backups = list_backups(directory, prefix, kind)
    future = [b for b in backups if b.taken_at > now + FUTURE_SLACK]
    for item in future:
        log.warning("backup %s is dated in the future: left alone, not counted", item.path.name)
    for rank, item in enumerate(b for b in backups if b not in future):
        if protect is not None and item.path == protect:
            continue
        too_many = keep > 0 and rank >= keep
        too_old = max_age_days > 0 and now - item.taken_at > timedelta(days=max_age_days)
        if too_many or too_old:
            item.path.unlink(missing_ok=True)
            removed.append(item.path)
    return removed


# -- backup -----------------------------------------------------------------------------------------------

def backup(settings: BackupSettings, *, directory: Path | None = None, keep: int | None = None,
           now: datetime | None = None) -> BackupResult:
    """Back the database of ``settings`` up into a new file, then rotate the older ones away."""
    url = _parse(settings.database_url)
    directory = settings.directory if directory is None else directory
    keep = settings.keep if keep is None else keep
    started = time.monotonic()
    now = now or datetime.now(UTC)
    kind: Kind = "sqlite" if url.get_backend_name() == "sqlite" else "sql"
    prefix = backup_prefix(url)
    _make_private_dir(directory)
    partial = directory / f".{prefix}-{now.strftime(STAMP_FORMAT)}.{os.getpid()}.partial"
    try:
        if kind == "sqlite":
            _dump_sqlite(url, partial)
        else:
            _dump_mariadb(url, partial)
        final = _publish(partial, directory, prefix, kind, now)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    size = final.stat().st_size
    _remove_stale_partials(directory, prefix, now)
    rotated = rotate(directory, prefix, kind, keep=keep, max_age_days=settings.max_age_days, now=now,
                     protect=final)
    return BackupResult(final, size, time.monotonic() - started, tuple(rotated))


STALE_PARTIAL = timedelta(days=1)


def _remove_stale_partials(directory: Path, prefix: str, now: datetime) -> None:
    """What a backup killed outright (SIGKILL, power loss) left behind: hidden, never taken for a
    backup, but as big as one. Only ours, and only a day old (another backup may be running)."""
    pattern = re.compile(rf"\.{re.escape(prefix)}-\d{{8}}T\d{{6}}Z\.\d+\.partial(?:\.db)?")
    for entry in os.scandir(directory):
        if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            if not _ours(entry):
                continue  # someone else's (a sticky folder would refuse to let us remove it anyway)
            modified = datetime.fromtimestamp(entry.stat(follow_symlinks=False).st_mtime, UTC)
            if now - modified > STALE_PARTIAL:
                Path(entry.path).unlink(missing_ok=True)
                log.warning("removed %s, left by a backup that was killed", entry.path)


def _parse(database_url: str) -> URL:
    try:
        url = make_url(database_url)
    except ArgumentError:
        raise ValidationError("DATABASE_URL is not a database URL") from None  # not echoed: may hold a password
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:" or url.query.get("uri") == "true":
            raise ValidationError(f"DATABASE_URL {describe(url)}: only a SQLite file can be backed up or restored")
        check_sqlite_folder(url)
    elif backend not in ("mysql", "mariadb"):
        raise ValidationError(f"DATABASE_URL {describe(url)}: backups support MariaDB and SQLite only")
    elif not url.database:
        raise ValidationError(f"DATABASE_URL {describe(url)} names no database")
    return url


def _make_private_dir(directory: Path) -> None:
    if not directory.is_dir():
        directory.mkdir(mode=0o700, parents=True)
        log.info("created backup folder %s", directory)
    st = directory.stat()
    if st.st_mode & 0o022:
        # Others could plant files there: weighed against the real backups, or restored.
        raise BackupError(f"backup folder {directory} is writable by other users: chmod go-w it")
    if st.st_uid != os.geteuid():
        raise BackupError(f"backup folder {directory} belongs to uid {st.st_uid}, who could delete or replace the "
                          "backups: use a folder of the user running the backups")


def _create_private(path: Path) -> int:
    """A new file only its owner can read, whatever the umask; its descriptor."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _publish(partial: Path, directory: Path, prefix: str, kind: Kind, now: datetime) -> Path:
    """Give the complete, synced ``partial`` its final name, never over an existing backup."""
    stamp = now.strftime(STAMP_FORMAT)
    # Above every backup of the same second, not in a gap rotation left: names sort as taken.
    second = now.replace(microsecond=0)
    first = max((b.serial + 1 for b in list_backups(directory, prefix, kind) if b.taken_at == second), default=0)
    for serial in range(first, 10000):
        final = directory / (f"{prefix}-{stamp}" + (f"-{serial}" if serial else "") + f".{kind}.gz")
        try:
            os.link(partial, final)  # atomic, and fails if the name is taken (os.replace would overwrite)
        except FileExistsError:
            continue
        except OSError as exc:  # a file system without hard links (some network shares)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK) or final.exists():
                raise
            os.rename(partial, final)
        else:
            partial.unlink()
        _fsync_dir(directory)
        return final
    raise BackupError(f"no free backup name for {prefix}-{stamp} in {directory}")


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump_mariadb(url: URL, partial: Path) -> None:
    dump = _binary("mariadb-dump", "mysqldump")
    with _options_file(url) as options, tempfile.TemporaryFile() as errors:
        # The option file must come first: the tools read it only there.
        argv = [dump, f"--defaults-extra-file={options}", *DUMP_OPTIONS, "--", str(url.database)]
        tail = b""
        tables = _DumpedTables()
        with os.fdopen(_create_private(partial), "wb") as raw:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors,
                                    env=_tool_env())
            try:
                assert proc.stdout is not None
                with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
                    while chunk := proc.stdout.read(CHUNK):
                        out.write(chunk)
                        tables.feed(chunk)
                        tail = (tail + chunk)[-256:]
                code = proc.wait()
            finally:
                if proc.poll() is None:  # interrupted, or the disk is full: stop the dump too
                    proc.kill()
                    proc.wait()
                proc.stdout.close()  # type: ignore[union-attr]
            raw.flush()
            os.fsync(raw.fileno())
        message = _one_line(errors)
    if code != 0:
        raise BackupError(f"{Path(dump).name} failed (exit {code}): {message or 'no message'}")
    if not _last_line(tail).startswith(DUMP_COMPLETED):
        raise BackupError(f"{Path(dump).name} stopped before the end of the dump (no '-- Dump completed' line)"
                          + (f": {message}" if message else ""))
    # mariadb-dump leaves out, without a word, the tables the account may not read.
    missing = sorted(set(Base.metadata.tables) - tables.names)
    if missing:
        raise BackupError(f"the dump lacks tables {', '.join(missing)}: {url.username} may not read them; "
                          "back up as an account that reads every table (plant_delegate or plant_admin)")
    if message:
        log.warning("%s: %s", Path(dump).name, message)


def _tool_env() -> dict[str, str]:
    """The MariaDB tools' environment: where to find things, nothing secret."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")}


class _DumpedTables:
    """Names of the tables a dump creates, read from its stream as it passes. A table's line
    starts the line (data cannot: the dump escapes newlines inside values)."""

    _CREATE = re.compile(rb"\nCREATE TABLE `([^`]+)`")

    def __init__(self) -> None:
        self.names: set[str] = set()
        self._carry = b"\n"  # the stream's start counts as a line start

    def feed(self, chunk: bytes) -> None:
        buf = self._carry + chunk
        self.names.update(m.group(1).decode("utf-8", "replace") for m in self._CREATE.finditer(buf))
        # Keep the last line's start if it is recent: a CREATE TABLE cut by the chunk's end.
        cut = buf.rfind(b"\n", max(0, len(buf) - 256))
        self._carry = buf[cut:] if cut >= 0 else b""


def _dump_sqlite(url: URL, partial: Path) -> None:
    source_path = Path(url.database)  # type: ignore[arg-type]
    if not source_path.is_file():
        raise BackupError(f"no database file {source_path} (DATABASE_URL {describe(url)})")
    copy = partial.with_name(partial.name + ".db")
    os.close(_create_private(copy))  # SQLite takes an empty file as a new database, keeping its mode
    try:
        source = sqlite3.connect(source_path, timeout=30)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # one consistent snapshot, even while the bridge writes
                # A standalone file: no -wal/-shm companions when it is opened again.
                target.execute("PRAGMA journal_mode=DELETE")
                _check_sqlite(target, str(source_path))
            finally:
                target.close()
        finally:
            source.close()
        with open(copy, "rb") as src, os.fdopen(_create_private(partial), "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as out:
                shutil.copyfileobj(src, out, CHUNK)
            raw.flush()
            os.fsync(raw.fileno())
    except sqlite3.Error as exc:
        raise BackupError(f"SQLite backup of {source_path} failed: {exc}") from None
    finally:
        copy.unlink(missing_ok=True)


def _check_sqlite(conn: sqlite3.Connection, what: str) -> None:
    try:
        result = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
        result = [str(exc)]
    if result != ["ok"]:
        raise BackupError(f"{what} is damaged (PRAGMA quick_check: {'; '.join(map(str, result[:3]))})")


# -- restore ----------------------------------------------------------------------------------------------

def restore(database_url: str, file: Path, *, force: bool = False) -> RestoreResult:
    """Replace the database of ``database_url`` by the backup ``file``. The file is checked whole
    first; a database that holds tables is refused unless ``force``."""
    url = _parse(database_url)
    started = time.monotonic()
    kind: Kind = "sqlite" if url.get_backend_name() == "sqlite" else "sql"
    if not file.is_file():
        raise BackupError(f"no backup file {file}")
    if file.stat().st_mode & 0o022:
        raise BackupError(f"{file} is writable by other users (anyone could have changed it): check it, then "
                          "chmod go-w it")
    other: Kind = "sql" if kind == "sqlite" else "sqlite"
    if file.name.endswith(f".{other}.gz"):
        which = "a MariaDB dump" if other == "sql" else "a SQLite backup"
        raise BackupError(f"{file} is {which}; DATABASE_URL {describe(url)} is not: restore it into its own kind")
    if kind == "sqlite":
        tables, dropped = _restore_sqlite(url, file, force)
    else:
        _check_dump(file)
        tables, dropped = _restore_mariadb(url, file, force)
    return RestoreResult(tables, time.monotonic() - started, dropped)


def _refuse(url: URL, tables: list[str]) -> BackupError:
    shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
    return BackupError(f"database {describe(url)} is not empty ({len(tables)} tables: {shown}); a restore "
                       "replaces all its data: stop the bridge and the web UI, then run again with --force")


@contextlib.contextmanager
def _unpacked(file: Path) -> Iterator[gzip.GzipFile]:
    """``file`` decompressed; a damaged or truncated one raises :class:`BackupError` while read."""
    try:
        with gzip.open(file, "rb") as f:
            yield f
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise BackupError(f"{file} is not a complete gzip file ({exc or type(exc).__name__}): "
                          "damaged or truncated") from None


def _gunzip_chunks(file: Path) -> Iterator[bytes]:
    with _unpacked(file) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _check_dump(file: Path) -> None:
    """A whole pass over the file before the database is touched: complete gzip stream, only
    statements mariadb-dump writes (store/dumpcheck.py), ending with its completion line."""
    last = b""

    def lines() -> Iterator[bytes]:
        nonlocal last
        with _unpacked(file) as f:
            for line in f:
                if line.strip():
                    last = line
                yield line

    try:
        check_lines(lines(), str(file))
    except UnsafeDump as exc:
        raise BackupError(str(exc)) from None
    if not last.startswith(DUMP_COMPLETED):
        raise BackupError(f"{file} is not a complete MariaDB dump (no '-- Dump completed' line at its end)")


def _restore_mariadb(url: URL, file: Path, force: bool) -> tuple[int, int]:
    client = _binary("mariadb", "mysql")
    existing = _mariadb_objects(url)
    if existing and not force:
        raise _refuse(url, existing)
    dropped = _drop_mariadb_tables(url) if existing else 0
    with _options_file(url) as options, tempfile.TemporaryFile() as errors:
        argv = [client, f"--defaults-extra-file={options}", *CLIENT_OPTIONS, "--", str(url.database)]
        # Nothing of ours in its environment (DATABASE_URL holds a password).
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                env=_tool_env())
        assert proc.stdin is not None
        fed = False
        try:
            with contextlib.suppress(BrokenPipeError):  # the client stopped on an error: its message says which
                for chunk in _gunzip_chunks(file):
                    proc.stdin.write(chunk)
            fed = True
        finally:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
            if not fed:  # interrupted, or the file failed mid-way: no half-fed client left running
                proc.kill()
            code = proc.wait()
        message = _one_line(errors)
    if code != 0:
        raise BackupError(f"restore into {describe(url)} failed ({Path(client).name} exit {code}): "
                          f"{message or 'no message'}; the database is incomplete: restore again with --force")
    return len(_mariadb_objects(url)), dropped


def _mariadb_objects(url: URL) -> list[str]:
    """The tables and views of the target database (refusing to restore over them)."""
    engine = create_db_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            names = inspect(conn).get_table_names() + inspect(conn).get_view_names()
    except RETRYABLE as exc:
        problem, hint = _problem(exc)
        raise BackupError(f"database {describe(url)} {problem}: {_cause(exc)}{hint}") from None
    finally:
        engine.dispose()
    return sorted(names)


def _drop_mariadb_tables(url: URL) -> int:
    """Drop every table and view (``--force``): the database then holds exactly what the dump
    brings, not a table of a later release left next to it."""
    engine = create_db_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            views, tables = insp.get_view_names(), insp.get_table_names()
            quote = engine.dialect.identifier_preparer.quote
            conn.execute(text("SET FOREIGN_KEY_CHECKS=0"))
            if views:
                conn.execute(text("DROP VIEW IF EXISTS " + ", ".join(map(quote, views))))
            if tables:
                conn.execute(text("DROP TABLE IF EXISTS " + ", ".join(map(quote, tables))))
            conn.execute(text("SET FOREIGN_KEY_CHECKS=1"))
            conn.commit()
    except RETRYABLE as exc:
        problem, hint = _problem(exc)
        raise BackupError(f"database {describe(url)} {problem}: {_cause(exc)}{hint}") from None
    finally:
        engine.dispose()
    log.warning("dropped %d tables and views of %s (--force)", len(views) + len(tables), describe(url))
    return len(views) + len(tables)


def _restore_sqlite(url: URL, file: Path, force: bool) -> tuple[int, int]:
    target_path = Path(url.database)  # type: ignore[arg-type]
    # Unpacked next to the target (same disk, not a small /tmp), checked whole before it is used.
    copy = target_path.with_name(f".{target_path.name}.restore-{os.getpid()}")
    try:
        with os.fdopen(_create_private(copy), "wb") as out:
            for chunk in _gunzip_chunks(file):
                out.write(chunk)
        try:
            source = sqlite3.connect(copy)
            try:
                _check_sqlite(source, str(file))
                # Our schema has none: one in a backup file would run on the bridge's next write.
                extra = source.execute("SELECT type || ' ' || name FROM sqlite_master "
                                       "WHERE type IN ('trigger', 'view')").fetchall()
                if extra:
                    raise BackupError(f"{file} holds {', '.join(r[0] for r in extra)}, which our schema does not "
                                      "have: refusing to restore it")
                tables = _sqlite_objects(source)
                existing = _sqlite_objects_of(target_path)
                if existing and not force:
                    raise _refuse(url, existing)
                if not target_path.exists():
                    os.close(_create_private(target_path))
                target = sqlite3.connect(target_path, timeout=30)
                try:
                    # Page by page into the live file, under SQLite's own locks: every table the
                    # target held is replaced, and open connections see the new content.
                    source.backup(target)
                    _check_sqlite(target, str(target_path))
                finally:
                    target.close()
            finally:
                source.close()
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"restore of {file} into {target_path} failed: {exc}") from None
    finally:
        copy.unlink(missing_ok=True)
    return len(tables), len(existing)


def _sqlite_objects(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _sqlite_objects_of(path: Path) -> list[str]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        return _sqlite_objects(conn)
    finally:
        conn.close()


# -- MariaDB tools ----------------------------------------------------------------------------------------

def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise BackupError(f"{names[0]} is not installed: apt-get install -y --no-install-recommends mariadb-client")


def _option_value(value: str) -> str:
    """A value for a MySQL/MariaDB option file: double-quoted (keeps ``#``, ``;`` and leading or
    trailing spaces), with the escapes the option-file reader undoes."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("'", "\\'")
               .replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


@contextlib.contextmanager
def _options_file(url: URL) -> Iterator[Path]:
    """The connection settings of ``url``, password included, in a temporary option file only we
    can read, removed afterwards: never on a command line (``ps`` shows those to everyone)."""
    settings = {"user": url.username or ""}
    if url.password is not None:
        settings["password"] = str(url.password)
    socket = url.query.get("unix_socket")
    if socket:
        settings["socket"] = socket if isinstance(socket, str) else socket[0]
        settings["protocol"] = "SOCKET"
    else:
        # TCP, as PyMySQL does: the client would take "localhost" for its Unix socket.
        settings["host"] = url.host or "localhost"
        settings["port"] = str(url.port or 3306)
        settings["protocol"] = "TCP"
    fd, name = tempfile.mkstemp(prefix="store-backup-", suffix=".cnf")  # 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("[client]\n")
            for key, value in settings.items():
                f.write(f"{key}={_option_value(value)}\n")
        yield Path(name)
    finally:
        os.unlink(name)


def _one_line(stream: IO[bytes]) -> str:
    stream.seek(0)
    text_ = stream.read(8192).decode("utf-8", "replace")
    return " ".join(text_.split())[:600]


def _last_line(tail: bytes) -> bytes:
    lines = tail.rstrip(b"\n").rsplit(b"\n", 1)
    return lines[-1]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"
