"""``python -m webui``: serve the dashboard, manage its users and the legacy senders' tokens, fetch its
front-end assets."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import logging
import os
import secrets
import signal
import sys
import threading
import time
from datetime import timedelta
from types import FrameType

from flask import Flask
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.errors import PlantModelError
from plantmodel.i18n import LANGUAGES, require_compiled
from plantmodel.readings import format_ts, utcnow
from store import audit as trail
from store import users as user_store
from store.claim import CHECK_EVERY_S, UserClaim
from store.db import (
    DatabaseUnavailable,
    connect_database,
    create_db_engine,
    database_url_from_env,
    describe,
    make_sessionmaker,
    wait_for_database,
)
from store.queries import close_abandoned_switches
from webui import assets, create_app, web_state
from webui.auth import hash_password, new_token
from webui.settings import WebSettings, check_secret_key

log = logging.getLogger("webui")

ENV_HELP = ("Configuration comes from the environment: DATABASE_URL, MQTT_HOST, MQTT_PORT, MQTT_USERNAME, "
            "MQTT_PASSWORD, MQTT_CREDENTIALS_FILE, PLANT_TOPIC_ROOT, PLANT_TZ, PLANT_LANGUAGE, WEBUI_HOST, "
            "WEBUI_PORT, SECRET_KEY, WEBUI_REPORT_PERIOD, WEBUI_METER_PERIOD, WEBUI_PUSH_INTERVAL, "
            "WEBUI_SWITCH_TIMEOUT, WEBUI_HTTPS, WEBUI_TRUSTED_PROXIES, WEBUI_THREADS, WEBUI_CLAIM_USER (0; 1 = claim a "
            "free web UI user of the credentials file: several processes behind nginx; MariaDB only).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m webui",
        description="Operator dashboard of the plant (Flask + Socket.IO) and its REST API. " + ENV_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="serve the dashboard and the API on the development server (the default "
                                     "command; the demo)")
    serve = sub.add_parser("serve", help="serve them with the production server (gunicorn, one process, "
                                         "WEBUI_THREADS threads)")
    for p in (run, serve):
        p.add_argument("--host", help="address to listen on (default: WEBUI_HOST or 127.0.0.1)")
        p.add_argument("--port", type=int, help="port to listen on (default: WEBUI_PORT or 8080)")
    serve.add_argument("--threads", type=int, help="requests and WebSockets served at once (default: "
                                                   "WEBUI_THREADS or 1000)")

    users = sub.add_parser("users", help="manage who can log in (DATABASE_URL selects the database)")
    usub = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create a user, e.g. the first admin: users add alice --role admin")
    add.add_argument("username")
    add.add_argument("--role", choices=user_store.ROLES, default="viewer")
    add.add_argument("--if-missing", action="store_true", help="do nothing when the user exists (scripts)")
    add.add_argument("--language", choices=LANGUAGES,
                     help="the pages' language for this user (default: the browser's, else PLANT_LANGUAGE)")
    passwd = usub.add_parser("passwd", help="set a user's password")
    passwd.add_argument("username")
    for p in (add, passwd):
        how = p.add_mutually_exclusive_group()
        how.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
        how.add_argument("--generate", action="store_true", help="generate a random password and print it")
    usub.add_parser("list", help="list the users and their roles")
    role = usub.add_parser("set-role", help="change a user's role")
    role.add_argument("username")
    role.add_argument("role", choices=user_store.ROLES)
    delete = usub.add_parser("delete", help="delete a user")
    delete.add_argument("username")
    token = usub.add_parser("token", help="issue a new API token for a user (replaces the old one) and print it")
    token.add_argument("username")

    tokens = sub.add_parser("token", help="manage the legacy HTTP senders' tokens (/collector/info, /webhook/)")
    tsub = tokens.add_subparsers(dest="action", metavar="ACTION", required=True)
    tcreate = tsub.add_parser("create", help="create a token for one device and print it (shown once)")
    tcreate.add_argument("--device", required=True,
                         help="units/<u> (may POST /collector/info for that unit) or meters/<id> (may call /webhook/)")
    tcreate.add_argument("--label", help="where the sender is, what it is (at most 64 characters)")
    tsub.add_parser("list", help="list the tokens (never the secrets)")
    trevoke = tsub.add_parser("revoke", help="revoke a token (the record is kept)")
    trevoke.add_argument("id", type=int, help="the token's id (see token list)")

    fetch = sub.add_parser("assets", help="fetch Chart.js and the Socket.IO client from the npm registry "
                                          "(NPM_REGISTRY, default https://registry.npmjs.org) into static/vendor")
    fetch.add_argument("--force", action="store_true", help="fetch again even when the pinned versions are present")
    fetch.add_argument("--check", action="store_true", help="only report whether they are present (exit 1 if not)")
    tr = sub.add_parser("translations", help="the French (and any other) catalogs: update them from the "
                                             "sources, check them, compile them for the services")
    tr.add_argument("action", choices=("update", "check", "compile"),
                    help="update: extract the marked strings into each .po; check: list missing, untranslated, "
                         "fuzzy or stale entries (exit 1 if any); compile: write the .mo files the services load")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # before reading the environment, so --help always works
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "users":
            return _users(args)
        if args.command == "assets":
            return _assets(args)
        if args.command == "translations":
            return _translations(args.action)
        if args.command == "token":
            return _tokens(args)
        return _run(getattr(args, "host", None), getattr(args, "port", None),
                    production=args.command == "serve", threads=getattr(args, "threads", None))
    except PlantModelError as exc:  # configuration or usage
        print(f"webui: {exc}", file=sys.stderr)
        return 2
    except DatabaseUnavailable as exc:
        print(f"webui: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"webui: database error: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}",
              file=sys.stderr)
        return 1


# -- run ------------------------------------------------------------------------------------------------

def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    # SIGTERM (docker stop) takes the same clean path as Ctrl-C: Werkzeug returns from
    # serve_forever on KeyboardInterrupt, then the MQTT loop is stopped below.
    raise KeyboardInterrupt


def _run(host: str | None, port: int | None, *, production: bool = False, threads: int | None = None) -> int:
    settings = WebSettings.from_env(os.environ)
    settings = dataclasses.replace(settings, host=host or settings.host, port=port or settings.port)
    missing = assets.missing_assets()
    if missing:
        print(f"webui: front-end assets missing ({', '.join(missing)}): run `python -m webui assets` first",
              file=sys.stderr)
        return 2
    require_compiled()  # without the catalogs a French plant would silently read English pages
    engine = create_db_engine(settings.database_url)
    check_secret_key(os.environ.get("SECRET_KEY", "").strip())  # serving: a forgeable key is refused

    for sig in (signal.SIGTERM, signal.SIGINT):  # SIGINT too: a background start may inherit it ignored
        signal.signal(sig, _interrupt)
    lost = threading.Event()  # set by the claim's watchdog (WEBUI_CLAIM_USER) when the claim is lost
    try:
        log.info("database: %s", describe(engine.url))
        # The database may start after us (no start order on a plant server): wait, do not crash.
        # It also creates missing tables; the bridge does it too: harmless, lets the UI start first.
        wait_for_database(engine, log=log)  # a signal ends the wait with KeyboardInterrupt
        sessions = make_sessionmaker(engine)
        with sessions() as session:
            if not user_store.list_users(session):
                log.warning("no user can log in yet: create one with `python -m webui users add NAME --role admin`")
        with sessions.begin() as session:
            stale = close_abandoned_switches(session, utcnow() - timedelta(seconds=settings.switch_timeout + 60))
        if stale:
            log.warning("%d remote switch(es) left pending by a web UI that stopped while waiting: marked as "
                        "errors (their outcome is unknown)", stale)
        if production:
            from webui.server import WebServer  # gunicorn: only this command needs it

            def make_app() -> Flask:  # in gunicorn's worker: the claim's connection is the worker's own
                return create_app(_claimed(settings, engine, threading.Event()), sessionmaker=sessions)

            count = threads or int(os.environ.get("WEBUI_THREADS", "1000"))
            engine.dispose()  # no pooled connection crosses the fork: the worker opens its own
            print(f"webui: serving http://{settings.host}:{settings.port}/ (gunicorn, {count} threads)", flush=True)
            WebServer(make_app, host=settings.host, port=settings.port, threads=count).run()
            log.info("stopped")
            return 0
        app = create_app(_claimed(settings, engine, lost), sessionmaker=sessions)
        web_state(app).feed.start()  # MQTT and the push thread: the server's, not the factory's
        try:
            print(f"webui: serving http://{settings.host}:{settings.port}/", flush=True)
            app.extensions["socketio"].run(app, settings.host, settings.port, allow_unsafe_werkzeug=True)
        finally:
            web_state(app).feed.stop()
    except KeyboardInterrupt:
        pass  # a signal before the server was up (or the claim's watchdog's, which set `lost`)
    finally:
        engine.dispose()
    log.info("stopped")
    return 3 if lost.is_set() else 0  # 3, as the bridge: a supervisor restarts it, and it claims again


def _claimed(settings: WebSettings, engine: Engine, lost: threading.Event) -> WebSettings:
    """With ``WEBUI_CLAIM_USER=1``: the settings with a free web UI user claimed (store/claim.py),
    held until the process ends; a watchdog sets ``lost`` and stops the process if the claim is lost
    (another web UI may take the user; gunicorn then starts a worker that claims again)."""
    if not settings.claim_from:
        return settings
    wait_for_database(engine, log=log)  # a new gunicorn worker may start while the database is down
    claim = UserClaim(engine, settings.claim_from, "WEBUI_CLAIM_USER")
    user, password = claim.acquire()

    def watch() -> None:
        while claim.held():
            time.sleep(CHECK_EVERY_S)
        log.error("the lock on MQTT user %s is lost; stopping this process", user)
        lost.set()
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="webui-claim", daemon=True).start()
    return dataclasses.replace(settings, mqtt=settings.mqtt.with_user(user, password))


# -- users ----------------------------------------------------------------------------------------------

def _sessions() -> sessionmaker[Session]:
    engine = create_db_engine(database_url_from_env(os.environ))
    connect_database(engine)  # one try: a command in a shell says what is wrong, it does not wait
    return make_sessionmaker(engine)


def _password(args: argparse.Namespace) -> tuple[str, bool]:
    """(password, generated)."""
    if args.generate:
        return secrets.token_urlsafe(12), True
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n"), False
    if not sys.stdin.isatty():
        raise PlantModelError("no terminal to ask the password on: use --password-stdin or --generate")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise PlantModelError("the two passwords differ")
    return first, False


def _users(args: argparse.Namespace) -> int:
    sessions = _sessions()
    now = utcnow()
    if args.action == "list":
        with sessions() as session:
            rows = user_store.list_users(session)
        print(f"{'user':24} {'role':9} {'token':6} last log-in")
        for u in rows:
            last = format_ts(u.last_login_at) if u.last_login_at else "never"
            print(f"{u.username:24} {u.role:9} {'yes' if u.token_hash else 'no':6} {last}")
        return 0
    with sessions.begin() as session:
        user = user_store.get_user(session, args.username)
        if args.action == "add":
            if user is not None and args.if_missing:
                print(f"user {args.username} exists")
                return 0
            password, generated = _password(args)
            row = user_store.add_user(session, args.username, hash_password(password), args.role, now)
            user_store.set_language(row, args.language)
            _audit(session, "user.create", username=args.username, role=args.role,
                   **({"language": args.language} if args.language else {}))
            print(f"created {args.username} ({args.role})" + (f", password: {password}" if generated else ""))
            return 0
        if user is None:
            raise PlantModelError(f"no user {args.username!r}")
        if args.action == "delete":
            user_store.check_admin_remains(session, user, None)
            session.delete(user)
            _audit(session, "user.delete", username=args.username, role=user.role)
            print(f"deleted {args.username}")
            return 0
        user.updated_at = now
        if args.action == "passwd":
            password, generated = _password(args)
            user_store.set_password(user, hash_password(password))
            _audit(session, "user.update", username=user.username, password="changed")
            print(f"password of {user.username} changed" + (f": {password}" if generated else "")
                  + "; its sessions and API token are revoked")
        elif args.action == "set-role":
            user_store.check_admin_remains(session, user, args.role)
            user_store.set_role(user, args.role)
            _audit(session, "user.update", username=user.username, role=args.role)
            print(f"{user.username} is now {args.role}")
        elif args.action == "token":
            token, digest = new_token()
            user.token_hash = digest
            _audit(session, "token.create", username=user.username)
            print(token)
    return 0


# -- legacy senders' tokens -----------------------------------------------------------------------------

def _cli_user() -> str:
    """Who ran the command, for created_by / revoked_by (the account may have no name in a container)."""
    try:
        return f"cli:{getpass.getuser()}"[:64]
    except (KeyError, OSError):
        return "cli"


def _audit(session: Session, action: str, **details: object) -> None:
    """The change's entry on the audit trail, in its transaction (as the web UI's), by ``cli:<os user>``."""
    trail.append(session, action, details, at=utcnow(), actor=_cli_user(), address=None)


def _tokens(args: argparse.Namespace) -> int:
    from store import models as orm
    from webui.api.tokens import add_device_token, device_tokens, revoke_device_token, token_item

    audit_log = logging.getLogger("webui.audit")  # the same AUDIT lines as the API's
    sessions = _sessions()
    if args.action == "list":
        with sessions() as session:
            items = [token_item(row) for row in device_tokens(session)]
        print(f"{'id':>5} {'device':32} {'state':8} {'last used':24} label")
        for t in items:
            print(f"{t['id']:>5} {t['device']:32} {'active' if t['active'] else 'revoked':8} "
                  f"{t['last_used_at'] or 'never':24} {t['label'] or ''}")
        return 0
    if args.action == "create":
        with sessions.begin() as session:
            row, token = add_device_token(session, args.device, args.label, _cli_user())
            token_id = row.id
            _audit(session, "device_token.create", id=token_id, device=row.device, label=row.label or "")
        audit_log.info("AUDIT user=%r from=cli action=device_token.create id=%d device=%r", _cli_user(), token_id,
                 args.device)
        print(token)
        print(f"token {token_id} for {args.device}: shown this once, only its hash is stored", file=sys.stderr)
        return 0
    with sessions.begin() as session:  # revoke
        found = session.get(orm.DeviceToken, args.id)
        if found is None:
            raise PlantModelError(f"no device token {args.id}")
        row = found
        if row.revoked_at is not None:
            raise PlantModelError(f"device token {args.id} was already revoked by {row.revoked_by}")
        revoke_device_token(row, _cli_user())
        device = row.device
        _audit(session, "device_token.revoke", id=args.id, device=device)
    audit_log.info("AUDIT user=%r from=cli action=device_token.revoke id=%d device=%r", _cli_user(), args.id, device)
    print(f"revoked token {args.id} of {device}")
    return 0


# -- assets ---------------------------------------------------------------------------------------------

def _assets(args: argparse.Namespace) -> int:
    if args.check:
        missing = assets.missing_assets()
        print("assets: missing " + ", ".join(missing) if missing else "assets: all present")
        return 1 if missing else 0
    registry = os.environ.get("NPM_REGISTRY", "").strip() or assets.DEFAULT_REGISTRY
    fetched = assets.ensure_assets(registry=registry, force=args.force)
    print(f"assets: {fetched} package(s) fetched into {assets.VENDOR_DIR}" if fetched
          else "assets: already present")
    return 0


# -- translations ---------------------------------------------------------------------------------------

def _translations(action: str) -> int:
    from webui import translations  # Babel's catalog tools: only this command needs them

    if action == "check":
        problems = translations.check()
        for line in problems:
            print(line)
        print(f"translations: {len(problems)} problem(s)" if problems else "translations: complete")
        return 1 if problems else 0
    for line in translations.update() if action == "update" else translations.compile_catalogs():
        print(f"translations: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
