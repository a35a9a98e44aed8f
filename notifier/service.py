"""The notifier: turns alarm transitions into outbox rows, and delivers the outbox.

Each poll (``NOTIFY_POLL_S``):

1. **scan** the alarms that may call for a notification (raised, cleared or past an escalation
   deadline within the horizon) against the enabled routes, and insert the missing
   ``(alarm, route, event)`` rows into ``notifications`` with insert-ignore semantics: the unique
   key makes a restart, or a second notifier doing the same, a no-op.
2. **deliver** the due pending rows. A row is *claimed* first, by an ``UPDATE`` that succeeds for
   one notifier only (it moves ``next_attempt_at`` past a lease), so two notifiers never send the
   same row; then sent; then the outcome is stored with one ``notification_attempts`` row. A failure
   is retried after ``retry_base · 2^(n-1)`` seconds (capped), up to ``max_attempts``, then the row
   is ``failed``. A notifier killed while sending leaves a claimed row that is tried again once its
   lease ends (at-least-once: the receiver may see that one twice).

Whatever goes wrong building or sending one notification (a webhook that is not an HTTP server, a
password smtplib cannot encode, a bug in the message) is a failed attempt of that row, never the end of
the notifier; an unexpected error in the loop itself is logged with its traceback and the loop goes on.
An escalation whose alarm was acknowledged before it could be sent (it was being retried) is
``skipped``, not sent: the second-level contact is not woken for an alarm someone already took.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from notifier import messages
from notifier.routing import ESCALATE, AlarmFacts, Route, backoff, due_events, masked_target
from notifier.settings import NotifierSettings
from plantmodel.errors import ValidationError
from plantmodel.readings import format_ts, utcnow
from plantmodel.servicehealth import Check, ServiceHealth
from store import models as orm
from store import queries
from store.db import RETRYABLE

log = logging.getLogger(__name__)

BATCH = 50  # outbox rows delivered per poll at most: a long queue does not starve the scan
ENV_USER = "env"


@dataclass(slots=True)
class Stats:
    created: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    db_errors: int = 0
    errors: int = 0  # unexpected ones (a bug): logged with a traceback, the loop went on
    by_event: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        events = " ".join(f"{k}={v}" for k, v in sorted(self.by_event.items())) or "none"
        return (f"notifications created={self.created} ({events}) sent={self.sent} retried={self.retried} "
                f"failed={self.failed} skipped={self.skipped} db_errors={self.db_errors} errors={self.errors}")


class Notifier:
    def __init__(self, settings: NotifierSettings, sessions: sessionmaker[Session], *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock  # a seam: unit tests move time, the service uses the wall clock
        self.zone = ZoneInfo(settings.plant_tz)
        self.stats = Stats()
        # A claim lasts longer than any one send can: a live notifier never loses its row.
        self.lease = timedelta(seconds=settings.smtp.timeout + settings.webhook_timeout + 60)

    # -- first set-up ------------------------------------------------------------------------------

    def ensure_first_routes(self) -> int:
        """Create the routes of ``NOTIFY_*`` when the routes table is empty (updated_by ``env``);
        returns how many. Once an admin has any route, the environment is not read again."""
        first = self.settings.first_routes
        wanted: list[dict[str, object]] = []
        if first.email_to:
            wanted.append(dict(name="e-mail (env)", channel="email", target=first.email_to, events="raise,clear"))
        if first.webhook_url:
            wanted.append(dict(name="webhook (env)", channel="webhook", target=first.webhook_url,
                               events="raise,clear"))
        if first.escalate_email_to:
            wanted.append(dict(name="escalation (env)", channel="email", target=first.escalate_email_to,
                               events=ESCALATE, escalate_after_min=first.escalate_after_min))
        if not wanted:
            return 0
        now = self.clock()
        with self.sessions.begin() as session:
            if session.scalar(select(func.count()).select_from(orm.NotificationRoute)):
                return 0
            for w in wanted:
                session.add(orm.NotificationRoute(min_severity=first.min_severity, scope="*", enabled=True,
                                                  updated_at=now, updated_by=ENV_USER, **w))
        for w in wanted:
            log.info("created route %r from the environment: %s %s", w["name"], w["channel"],
                     masked_target(str(w["channel"]), str(w["target"])))
        return len(wanted)

    # -- scan: alarms -> outbox ----------------------------------------------------------------------

    def load_routes(self, session: Session) -> list[Route]:
        rows = session.scalars(select(orm.NotificationRoute).where(orm.NotificationRoute.enabled.is_(True)))
        unit = self.settings.escalate_unit_s
        return [Route(r.id, r.channel, r.target, r.min_severity, r.scope, tuple(r.events.split(",")),
                      None if r.escalate_after_min is None else timedelta(seconds=r.escalate_after_min * unit),
                      r.updated_at) for r in rows]

    def scan(self) -> int:
        """Insert the outbox rows now due; returns how many this notifier created."""
        now = self.clock()
        horizon = timedelta(minutes=self.settings.horizon_min)
        created = 0
        with self.sessions.begin() as session:
            routes = self.load_routes(session)
            if not routes:
                return 0
            oldest = now - horizon
            longest = max((r.escalate_after for r in routes if r.escalate_after is not None), default=timedelta(0))
            # Raised recently, cleared recently, or open and within reach of an escalation deadline.
            alarms = list(session.scalars(select(orm.Alarm).where(or_(
                orm.Alarm.raised_at >= oldest - longest, orm.Alarm.cleared_at >= oldest))))
            if not alarms:
                return 0
            due = [(a.id, route_id, event, at) for a in alarms
                   for route_id, event, at in due_events(_facts(a), routes, now, horizon)]
            if not due:
                return 0
            ids = sorted({d[0] for d in due})
            have = {tuple(r) for r in session.execute(select(orm.Notification.alarm_id, orm.Notification.route_id,
                                              orm.Notification.event)
                                       .where(orm.Notification.alarm_id.in_(ids)))}
            for alarm_id, route_id, event, _at in due:
                if (alarm_id, route_id, event) in have:
                    continue
                # The web UI's account has no UPDATE on the key: skip, never overwrite, a duplicate.
                if queries.insert_skipping_existing(session, orm.Notification.__table__, [{
                        "alarm_id": alarm_id, "route_id": route_id, "event": event, "created_at": now,
                        "status": "pending", "attempts": 0, "next_attempt_at": now}],
                        ("alarm_id", "route_id", "event")):  # 0: another notifier inserted it first
                    created += 1
                    self.stats.by_event[event] = self.stats.by_event.get(event, 0) + 1
                    log.info("queued %s of alarm %d for route %d", event, alarm_id, route_id)
        self.stats.created += created
        return created

    # -- deliver: outbox -> mail / webhook ----------------------------------------------------------

    def deliver(self) -> int:
        """Try every due pending row (up to :data:`BATCH`); returns how many attempts were made."""
        now = self.clock()
        with self.sessions() as session:
            due = list(session.execute(
                select(orm.Notification.id, orm.Notification.attempts)
                .where(orm.Notification.status == "pending", orm.Notification.next_attempt_at <= now)
                .order_by(orm.Notification.next_attempt_at, orm.Notification.id).limit(BATCH)).all())
        tried = 0
        for nid, attempts in due:
            try:
                if self._claim(nid, attempts):
                    tried += 1
                    self._attempt(nid, attempts)
            except RETRYABLE:
                raise  # the database is away: run() waits for it; the claimed row is retried after its lease
            except Exception:  # a bug (sending errors are attempts already): the other rows still go
                self.stats.errors += 1
                log.exception("notification %d: unexpected error; tried again once its lease ends", nid)
        return tried

    def _claim(self, nid: int, attempts: int) -> bool:
        now = self.clock()
        with self.sessions.begin() as session:
            result = cast(CursorResult[Any], session.execute(
                update(orm.Notification)
                .where(orm.Notification.id == nid, orm.Notification.status == "pending",
                       orm.Notification.attempts == attempts, orm.Notification.next_attempt_at <= now)
                .values(next_attempt_at=now + self.lease)))
            return bool(result.rowcount)

    def _attempt(self, nid: int, attempts: int) -> None:
        s = self.settings
        error: str | None = None
        note: str | None = None
        final = False  # a failure no retry can fix (the alarm or route is gone)
        skip = False  # not to be sent any more (an escalation acknowledged meanwhile)
        channel = target = event = ""
        with self.sessions() as session:
            row = session.get(orm.Notification, nid)
            assert row is not None
            alarm = session.get(orm.Alarm, row.alarm_id)
            route = session.get(orm.NotificationRoute, row.route_id)
            if alarm is None or route is None or not route.enabled:
                error, final = ("the alarm is gone" if alarm is None else
                                "the route was deleted" if route is None else "the route is disabled"), True
            elif row.event == ESCALATE and alarm.acknowledged_at is not None:
                # Checked when queued, and again now: a retry may come long after someone took the alarm.
                # (A raise or clear is still told however late: it happened.)
                error, skip = (f"not sent: the alarm was acknowledged by {alarm.acknowledged_by} at "
                               f"{format_ts(alarm.acknowledged_at)} before the escalation went out"), True
            else:
                channel, target, event = route.channel, route.target, row.event
                try:
                    content = messages.build(row.event, alarm, escalate_after_min=route.escalate_after_min,
                                             zone=self.zone, dashboard_url=s.dashboard_url, now=self.clock(),
                                             notification_id=nid, route_name=route.name, language=s.language)
                except Exception as exc:  # a bug, or an alarm row nobody foresaw: this row fails, not the notifier
                    error = self._unexpected(nid, "building", channel, target, exc)
        if error is None:
            try:
                if channel == "email":
                    note = messages.send_email(s.smtp, target.split(","), content)
                else:
                    messages.post_webhook(target, content, s.webhook_timeout)
            except messages.DeliveryError as exc:
                error = str(exc)
            except Exception as exc:  # whatever a strange server makes the libraries raise
                error = self._unexpected(nid, "sending", channel, target, exc)
        self._record(nid, attempts + 1, error, note, final, skip)
        if error is None:
            self.stats.sent += 1
            log.info("sent notification %d (%s, %s, try %d)%s", nid, event, channel, attempts + 1,
                     f": {note}" if note else "")

    def _unexpected(self, nid: int, doing: str, channel: str, target: str, exc: Exception) -> str:
        """A failed attempt's reason for an exception the senders do not translate (logged with its
        traceback: it may be a bug). A webhook URL in it is masked: it may hold a secret."""
        log.warning("notification %d: unexpected error %s it", nid, doing, exc_info=True)
        reason = f"{channel or 'notification'}: {type(exc).__name__}: {exc}"
        if target and channel == "webhook":
            reason = reason.replace(target, masked_target(channel, target))
        return reason[:messages.ERROR_MAX]

    def _record(self, nid: int, tries: int, error: str | None, note: str | None, final: bool,
                skip: bool = False) -> None:
        now = self.clock()
        s = self.settings
        values: dict[str, object]
        error = None if error is None else error[:messages.ERROR_MAX]
        if error is None:
            values = dict(status="sent", attempts=tries, sent_at=now, next_attempt_at=None, last_error=note)
        elif skip:
            values = dict(status="skipped", attempts=tries, next_attempt_at=None, last_error=error)
            self.stats.skipped += 1
            log.info("notification %d skipped: %s", nid, error)
        elif final or tries >= s.max_attempts:
            values = dict(status="failed", attempts=tries, next_attempt_at=None, last_error=error)
            self.stats.failed += 1
            log.error("notification %d failed for good after %d attempt(s): %s", nid, tries, error)
        else:
            delay = backoff(tries, s.retry_base, s.retry_max)
            values = dict(attempts=tries, next_attempt_at=now + timedelta(seconds=delay), last_error=error)
            self.stats.retried += 1
            log.warning("notification %d attempt %d failed (%s); next try in %g s", nid, tries, error, delay)
        with self.sessions.begin() as session:
            session.execute(update(orm.Notification).where(orm.Notification.id == nid).values(**values))
            session.add(orm.NotificationAttempt(notification_id=nid, at=now, ok=error is None,
                                                error=(error or note)))

    # -- the loop ------------------------------------------------------------------------------------

    def poll_once(self) -> None:
        self.scan()
        self.deliver()

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop``; a database that goes away is waited for (back-off), never fatal; nor is
        an unexpected error (logged with its traceback, then the same back-off)."""
        delay = self.settings.poll
        next_stats = time.monotonic() + self.settings.stats_every
        while not stop.is_set():
            try:
                self.poll_once()
                delay = self.settings.poll
                self.write_health(Check(True))
            except RETRYABLE as exc:
                self.stats.db_errors += 1
                delay = min(max(delay * 2, 1.0), 30.0)
                log.warning("database unavailable (%s); retrying in %g s", type(exc).__name__, delay)
                self.write_health(Check(False, f"unreachable ({type(exc).__name__})"))
            except Exception:  # a bug: said loudly, but one bad row or poll never stops every notification
                self.stats.errors += 1
                delay = min(max(delay * 2, 1.0), 30.0)
                log.exception("unexpected error in the notifier's poll; going on in %g s", delay)
                # Failing, not unknown: a bug on every poll means no notification goes out.
                self.write_health(Check(False, "the last poll failed on an internal error (see the log)"))
            if self.settings.stats_every and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.settings.stats_every
                log.info("%s", self.stats.line())
            _sleep(stop, delay)


    def write_health(self, database: Check) -> None:
        """The last poll's outcome, for ``python -m notifier health`` (atomically: never half a file)."""
        path = self.settings.health_file
        if not path:
            return
        health = ServiceHealth("notifier", socket.gethostname()[:64] or "notifier", utcnow(), {"database": database},
                               {"report_every_s": self.settings.poll, "sent": float(self.stats.sent),
                                "failed": float(self.stats.failed)})
        try:
            tmp = f"{path}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(health.to_json())
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write the health file %s: %s", path, exc)


def read_health(path: str, now: datetime, *, max_age: float) -> tuple[int, str]:
    """``python -m notifier health``: (exit code, text). 0 when the last poll, no older than
    ``max_age`` seconds, reached the database."""
    try:
        with open(path, encoding="utf-8") as fh:
            health = ServiceHealth.from_json(fh.read())
    except (OSError, ValidationError) as exc:
        return 1, f"unhealthy: no readable health file {path}: {exc}"
    age = (now - health.ts).total_seconds()
    if age > max_age:
        return 1, f"unhealthy: the last poll was {age:.0f} s ago (the notifier is stuck or stopped)\n{health.to_json()}"
    return (0 if health.ok else 1), health.to_json()


def _facts(a: orm.Alarm) -> AlarmFacts:
    return AlarmFacts(a.id, a.source, a.severity, a.raised_at, a.cleared_at, a.acknowledged_at)


def _sleep(stop: threading.Event, seconds: float) -> None:
    """Polling ``stop`` (not ``stop.wait()``): the signal handler sets it from this very thread."""
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
