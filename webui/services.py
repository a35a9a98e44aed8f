"""The services' health as the web UI sees it (``GET /healthz``, ``GET /api/health``, the services
page): its own (this process's broker connection and database), each bridge's (the retained report
it publishes on ``<root>/bridge/health/<user>``, see :meth:`bridge.service.Bridge.self_health`) and
the notifier's, judged by its outbox in the database (a notification nobody delivered for long
means the notifier is down or cannot reach its mail server)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from plantmodel.errors import ValidationError
from plantmodel.readings import format_ts, utcnow
from plantmodel.servicehealth import Check, ServiceHealth
from store.db import database_check
from store.models import Notification

log = logging.getLogger(__name__)

# A report older than this many of its own periods: the bridge stopped reporting (killed, cut off).
STALE_PERIODS = 3
# A pending notification older than this: nobody delivers (the notifier is down, or its SMTP server).
NOTIFY_OVERDUE = timedelta(minutes=15)


def instance_name() -> str:
    """This process, as the services page names it: host and process id."""
    return f"{socket.gethostname()[:48]}/{os.getpid()}"


class BridgeReports:
    """The latest health report of each bridge (by MQTT user), as received; thread-safe."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[ServiceHealth, float]] = {}
        self._clock = clock

    def received(self, user: str, payload: bytes) -> None:
        """A message on ``<root>/bridge/health/<user>`` (empty: the bridge left, its report is removed)."""
        if not payload:
            with self._lock:
                self._reports.pop(user, None)
            return
        try:
            health = ServiceHealth.from_json(payload)
        except ValidationError as exc:
            log.warning("skipping the health report of bridge %r: %s", user[:64], exc.reason)
            return
        with self._lock:
            self._reports[user] = (health, self._clock())

    def items(self) -> list[tuple[ServiceHealth, float]]:
        """(report, seconds since it was received), by user."""
        now = self._clock()
        with self._lock:
            return [(h, now - at) for _, (h, at) in sorted(self._reports.items())]


def webui_health(make_session: sessionmaker[Session], link: Mapping[str, Any]) -> ServiceHealth:
    """This process: its database (one ``SELECT 1``) and its broker connection, as its live feed's
    health says it (``LiveFeed.health.to_dict()``; ``mqtt`` None: the feed was never started, as in
    unit tests)."""
    mqtt = link["mqtt"]
    broker = Check(mqtt, "" if mqtt is not False else (link["reasons"].get("mqtt") or "not connected"))
    return ServiceHealth("webui", instance_name(), utcnow(),
                         {"broker": broker, "database": database_check(make_session)})


def notifier_health(session: Session, now: datetime) -> ServiceHealth:
    """The notifier as its outbox shows it: pending notifications, and how long the oldest waits."""
    n = Notification
    pending, oldest = session.execute(
        select(func.count(), func.min(n.created_at)).where(n.status == "pending")).one()
    failed = session.scalar(select(func.count()).where(n.status == "failed", n.created_at >= now - timedelta(days=1)))
    waited = (now - oldest).total_seconds() if oldest is not None else None
    late = waited is not None and waited > NOTIFY_OVERDUE.total_seconds()
    outbox = Check(False, f"a notification has waited {waited / 60:.0f} min") if late else Check(True)
    return ServiceHealth("notifier", "outbox", now, {"outbox": outbox},
                         {"pending": float(pending or 0), "oldest_pending_s": waited, "failed_24h": float(failed or 0)})


def report_dict(health: ServiceHealth, age: float | None = None) -> dict[str, Any]:
    """A report for the API: ``stale`` when it is older than :data:`STALE_PERIODS` of its period,
    counted from its receipt or its own time, whichever is older (a web UI started after a bridge
    died receives the dead bridge's retained report as new)."""
    if age is not None:
        age = max(age, (utcnow() - health.ts).total_seconds())
    data = health.to_dict()
    every = health.values.get("report_every_s")
    stale = age is not None and every is not None and age > STALE_PERIODS * every
    data.update(stale=stale, age_s=age, ok=health.ok and not stale)
    return data


def all_services(make_session: sessionmaker[Session], own: ServiceHealth, bridges: BridgeReports) -> dict[str, Any]:
    """``{"ok", "ts", "services": [...]}``: this web UI, every bridge that reports, the notifier."""
    now = utcnow()
    services = [report_dict(own)]
    services += [report_dict(h, age) for h, age in bridges.items()]
    try:
        with make_session() as session:
            services.append(report_dict(notifier_health(session, now)))
    except SQLAlchemyError as exc:  # own's database check says it
        log.debug("notifier outbox not read: %s", exc)
    return {"ok": all(s["ok"] for s in services) and any(s["service"] == "bridge" for s in services),
            "ts": format_ts(now), "services": services}
