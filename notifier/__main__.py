"""``python -m notifier``: send e-mail and webhook notifications of alarms (see notifier/service.py)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from sqlalchemy.exc import SQLAlchemyError

from notifier.service import Notifier, read_health
from notifier.settings import NotifierSettings
from plantmodel.errors import PlantModelError
from plantmodel.i18n import require_compiled
from plantmodel.readings import utcnow
from store.db import DatabaseUnavailable, create_db_engine, describe, make_sessionmaker, wait_for_database

ENVIRONMENT = """\
environment (defaults in brackets):
  DATABASE_URL               the plant's database [sqlite:///var/plant.db]; the web UI's account suffices
  NOTIFY_POLL_S              seconds between two looks at alarms and outbox [5]
  NOTIFY_HORIZON_MIN         events older than this are never notified (history, long outages) [60]
  NOTIFY_MAX_ATTEMPTS        tries before a notification is 'failed' [20: about 13 h of retries]
  NOTIFY_RETRY_BASE_S        wait before the 2nd try, doubled each time [30]
  NOTIFY_RETRY_MAX_S         longest wait between tries [3600]
  NOTIFY_WEBHOOK_TIMEOUT_S   per webhook POST [10]
  NOTIFY_SMTP_HOST           SMTP server; empty: e-mails fail (and are retried) [none]
  NOTIFY_SMTP_PORT           [25; 465 with ssl]
  NOTIFY_SMTP_SECURITY       none | starttls | ssl [none]
  NOTIFY_SMTP_USER, NOTIFY_SMTP_PASSWORD   log-in, if the server wants one [none]
  NOTIFY_SMTP_FROM           sender address [plant-notifier@localhost.localdomain]
  NOTIFY_SMTP_TIMEOUT_S      [10]
  NOTIFY_DASHBOARD_URL       e.g. https://plant.example.com: a link in every mail [none]
  PLANT_TZ                   time zone of the times in mails [the server's]
  PLANT_LANGUAGE             language of the mails: fr | en [fr] (webhook JSON: codes, ISO times)
  NOTIFY_STATS_S             seconds between two counter lines in the log (0: none) [300]
  NOTIFY_HEALTH_FILE         where each poll writes the notifier's health, for `health` [none]
  NOTIFY_ESCALATE_UNIT_S     seconds in one minute of escalate_after_min (tests only) [60]
first set-up, used only while the routes table is empty:
  NOTIFY_EMAIL_TO            addresses told on raise and clear (comma-separated)
  NOTIFY_WEBHOOK_URL         URL told on raise and clear
  NOTIFY_ESCALATE_EMAIL_TO   addresses told when an alarm is unacknowledged after ...
  NOTIFY_ESCALATE_AFTER_MIN  ... this many minutes [30]
  NOTIFY_MIN_SEVERITY        info | warning | critical, for those routes [warning]
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m notifier", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Notify alarm raises, clears and escalations by e-mail and webhook, as configured by "
                    "admins at /admin/notifications (or by the environment for the first set-up). Each "
                    "alarm transition is told once per route, retried with back-off; every attempt is kept.",
        epilog=ENVIRONMENT)
    parser.add_argument("--once", action="store_true", help="one poll (scan and deliver), then exit")
    sub = parser.add_subparsers(dest="command")
    p_health = sub.add_parser(
        "health", help="whether the running notifier is healthy (exit 0) or not (exit 1)",
        description="Read NOTIFY_HEALTH_FILE, which the running notifier rewrites after each poll: healthy when "
        "the last poll reached the database and is recent (3 poll periods, at least 60 s). A compose health check.")
    p_health.add_argument("--max-age", type=float, help="seconds a poll may be old (default: 3 x NOTIFY_POLL_S, >= 60)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("notifier")
    try:
        settings = NotifierSettings.from_env(os.environ)
        if args.command == "health":
            if not settings.health_file:
                print("error: NOTIFY_HEALTH_FILE is not set: the notifier writes no health file", file=sys.stderr)
                return 2
            code, text = read_health(settings.health_file, utcnow(),
                                     max_age=args.max_age or max(3 * settings.poll, 60.0))
            print(text)
            return code
        require_compiled()  # without the catalogs a French plant's mails would silently be English
        engine = create_db_engine(settings.database_url)
    except PlantModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    log.info("database %s; SMTP %s; poll every %g s; mails in %s", describe(engine.url),
             f"{settings.smtp.host}:{settings.smtp.port} ({settings.smtp.security})" if settings.smtp.host
             else "not configured", settings.poll, settings.language)
    try:
        # The database may start after us: wait for it, do not exit.
        if not wait_for_database(engine, stop=stop, log=log):
            return 0
        notifier = Notifier(settings, make_sessionmaker(engine))
        notifier.ensure_first_routes()
        if args.once:
            notifier.poll_once()
        else:
            notifier.run(stop)
    except DatabaseUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"database error: {exc.__class__.__name__}: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 1
    log.info("stopped: %s", notifier.stats.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
