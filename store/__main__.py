"""``python -m store``: database maintenance — back up, restore, the database accounts, schema upgrades,
retention, a generated history, the audit trail.

Each command group adds its subcommands in its own ``add_parser(sub)`` (see :func:`build_parser`)
and sets ``handler``, a function of the parsed arguments returning the exit code: ``main`` runs it.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from plantmodel.errors import PlantModelError
from store import accounts, generate, migrate, retention
from store.backup import BackupError, BackupSettings, backup, human_size, restore
from store.db import DatabaseUnavailable, describe
from store.periodic import run_every

log = logging.getLogger("store")

ENV_HELP = ("Configuration comes from the environment: DATABASE_URL (sqlite:///var/plant.db), BACKUP_DIR "
            "(var/backups), BACKUP_KEEP (14 newest kept; 0 = no limit), BACKUP_MAX_AGE_DAYS (0 = no limit).")


# -- backup / restore -------------------------------------------------------------------------------------

def add_backup_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backup", help="write a compressed, consistent backup of the database, then rotate old ones away",
        description="Back up the database of DATABASE_URL into BACKUP_DIR as <name>-<UTC time>.sql.gz "
        "(MariaDB: mariadb-dump --single-transaction, a consistent snapshot taken while the bridge writes) or "
        "<name>-<UTC time>.sqlite.gz (SQLite: its online backup API). The file gets its name only once it is "
        "complete, and only its owner can read it. Then the backups of this database beyond the newest "
        "BACKUP_KEEP, or older than BACKUP_MAX_AGE_DAYS, are removed (files named otherwise are never "
        "touched). A MariaDB account needs SELECT, SHOW VIEW and TRIGGER on the database. " + ENV_HELP)
    p.add_argument("--dir", type=Path, help="folder for the backups (default: BACKUP_DIR or var/backups)")
    p.add_argument("--keep", type=int, help="how many backups of this database to keep (default: BACKUP_KEEP "
                   "or 14; 0 = all)")
    p.add_argument("--every", type=float, metavar="SECONDS",
                   help="keep running: back up now and then every SECONDS (e.g. 86400, the daily job in "
                   "docker-compose.yml) until SIGTERM / Ctrl-C; a failed backup is logged and tried again at "
                   "the next turn")
    p.set_defaults(handler=cmd_backup)

    p = sub.add_parser(
        "restore", help="replace the database's content by a backup file",
        description="Restore FILE (written by `backup`) into the database of DATABASE_URL: a .sql.gz into "
        "MariaDB (through the mariadb client), a .sqlite.gz into SQLite. The whole file is checked first. "
        "A database that holds tables is refused unless --force: a restore replaces all the data "
        "(stop the bridge and the web UI first). The MariaDB account needs to create, drop and fill "
        "tables. " + ENV_HELP)
    p.add_argument("file", type=Path, metavar="FILE", help="a backup file (.sql.gz or .sqlite.gz)")
    p.add_argument("--force", action="store_true",
                   help="replace a database that holds tables (every table it has is dropped first)")
    p.set_defaults(handler=cmd_restore)


def cmd_backup(args: argparse.Namespace) -> int:
    settings = BackupSettings.from_env(os.environ)
    if args.keep is not None and args.keep < 0:
        raise PlantModelError("--keep must be >= 0")
    if args.every is None:
        _backup_once(settings, args)
        return 0
    if not args.every > 0:
        raise PlantModelError("--every must be > 0 seconds")
    log.info("backing up %s every %g s", describe(settings.database_url), args.every)
    return run_every(args.every, lambda _stop: _backup_once(settings, args), what="backup", log=log)


def _backup_once(settings: BackupSettings, args: argparse.Namespace) -> None:
    result = backup(settings, directory=args.dir, keep=args.keep)
    rotated = f"; {len(result.rotated)} older backup(s) rotated away" if result.rotated else ""
    log.info("backup of %s written: %s (%s, %.1f s)%s", describe(settings.database_url), result.path,
             human_size(result.size), result.seconds, rotated)
    for path in result.rotated:
        log.debug("removed %s", path)


def cmd_restore(args: argparse.Namespace) -> int:
    settings = BackupSettings.from_env(os.environ)
    result = restore(settings.database_url, args.file, force=args.force)
    replaced = f"; replaced the {result.dropped} tables and views it held" if result.dropped else ""
    log.info("restored %s into %s: %d tables (%.1f s)%s", args.file, describe(settings.database_url),
             result.tables, result.seconds, replaced)
    return 0


# -- audit trail ------------------------------------------------------------------------------------------

def add_audit_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("audit", help="the tamper-evident audit trail (audit_log)",
                       description="The audit trail: log-ins, acknowledgements, threshold, user and device "
                       "changes, remote switching, each entry chained to the one before by SHA-256.")
    asub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    v = asub.add_parser(
        "verify", help="check that no audit entry was edited, inserted or deleted",
        description="Walk the audit trail of DATABASE_URL in order and recompute every entry's SHA-256: an "
        "edited entry no longer matches its hash, a deleted or inserted one breaks the link to its "
        "neighbour. Prints the number of entries checked, the head hash (the newest entry's) and each "
        "problem found (entry id and what). Deleting the NEWEST entries leaves a shorter chain that is "
        "still intact: record the head hash and count printed here (e.g. in the daily backup log or on "
        "paper) and pass it back with --expect-head, which fails when the head is no longer that entry. "
        "Any account that may read audit_log can run it (read only). Exit status: 0 intact, 1 tampered "
        "(or --expect-head differs, or the database failed), 2 usage. " + ENV_HELP)
    v.add_argument("--expect-head", metavar="HASH",
                   help="the head hash recorded earlier: fail unless it is still an entry of the chain "
                   "(newer entries after it are fine)")
    v.set_defaults(handler=cmd_audit_verify)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from store import audit
    from store.db import create_db_engine, database_url_from_env, make_sessionmaker
    from store.models import AuditEntry

    expected = args.expect_head.strip().lower() if args.expect_head else None
    if expected is not None and not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise PlantModelError("--expect-head must be a SHA-256 in hex (64 characters)")
    url = database_url_from_env(os.environ)
    engine = create_db_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            print(f"verifying the audit trail of {describe(url)}", flush=True)
            result = audit.verify(session, progress=lambda n: print(f"  {n} entries checked…", flush=True))
            found_expected = expected is None or expected == audit.GENESIS or session.scalar(
                select(AuditEntry.id).where(AuditEntry.hash == expected).limit(1)) is not None
    finally:
        engine.dispose()
    print(f"entries: {result.entries}")
    print(f"head: {result.head}")
    for problem in result.problems:
        print(f"problem: entry {problem.entry_id}: {problem.what}")
    ok = result.ok
    if expected is not None and not found_expected:
        print(f"problem: the recorded head {expected} is no longer in the chain (entries were deleted or "
              "the chain was replaced)")
        ok = False
    elif expected is not None and expected != result.head:
        print(f"the recorded head {expected[:12]}… is still in the chain; newer entries follow it")
    print("audit trail intact" if ok else "audit trail TAMPERED")
    return 0 if ok else 1


# -- entry point ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m store",
        description="Maintenance of the plant's database (DATABASE_URL): backups and restores, the database "
        "accounts of accounts.sql, schema upgrades (Alembic migrations) and schema.sql, retention, a generated "
        "history for demos and benchmarks, the audit trail's verification. "
        "Exit status: 0 done, 1 failed (dump, restore, database, files; or a restore refused without --force), "
        "2 configuration or usage error.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_backup_parsers(sub)
    accounts.add_parser(sub)
    retention.add_parser(sub)
    generate.add_parser(sub)
    add_audit_parsers(sub)
    migrate.add_parsers(sub)
    # More command groups go here, one call each: each sets a `handler(args) -> exit code`.
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before reading the environment, so --help always works
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except BackupError as exc:  # the work failed (or was refused): say why, in one line
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except PlantModelError as exc:  # configuration or usage
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:  # unreachable, or a schema this release does not use
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"error: database: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
