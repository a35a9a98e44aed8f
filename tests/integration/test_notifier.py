"""The notifier against real parts: MariaDB (and SQLite), an SMTP server on loopback (aiosmtpd) and
an HTTP receiver on loopback (http.server in a thread). Time is moved through the notifier's clock
seam, never waited for; one test runs two notifiers as real processes, then restarts one."""

from __future__ import annotations

import json
import logging
import socketserver
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from notifier import messages
from notifier.routing import masked_url
from notifier.service import Notifier
from notifier.settings import FirstRoutes, NotifierSettings, SmtpSettings
from store import models as orm
from store.db import create_db_engine, init_schema, make_sessionmaker
from tests.processes import Service, wait_for
from tests.servers import MariaDBServer, free_port

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)


# -- the real receivers ------------------------------------------------------------------------------

class Mailbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], Message]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 OK"

    def received(self) -> list[tuple[list[str], Message]]:
        with self._lock:
            return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


class Receiver:
    """An HTTP server recording every POST; ``fail_next`` answers that many with 500 first."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []  # accepted: (path, JSON)
        self.requests = 0
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests += 1
                    fail = receiver.fail_next > 0
                    if fail:
                        receiver.fail_next -= 1
                    else:
                        receiver.posts.append((self.path, json.loads(body)))
                self.send_response(500 if fail else 204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.posts if path is None or p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


class NotHttp:
    """A TCP server that answers every connection with an SSH banner: a webhook URL pointing at the
    wrong port. ``http.client`` raises ``BadStatusLine``, which is neither ``OSError`` nor ``ValueError``."""

    def __init__(self) -> None:
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                data = b""  # the whole request first: closing on unread data would reset the connection
                while b"\r\n\r\n" not in data and (chunk := self.request.recv(4096)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length and (chunk := self.request.recv(4096)):
                    body += chunk
                self.request.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def not_http() -> Iterator[NotHttp]:
    n = NotHttp()
    yield n
    n.server.shutdown()
    n.server.server_close()


class Running:
    """``Notifier.run`` in a thread, as ``python -m notifier`` runs it."""

    def __init__(self, notifier: Notifier) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=notifier.run, args=(self.stop,), daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        assert self.thread.is_alive(), "the notifier's loop died"
        return True

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


# -- database and notifier helpers -------------------------------------------------------------------

def sessions_for(url: str) -> sessionmaker[Session]:
    engine = create_db_engine(url)
    init_schema(engine)
    return make_sessionmaker(engine)


@pytest.fixture
def maria_url(mariadb: MariaDBServer) -> str:
    return mariadb.create_database("notify")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def settings(smtp_port: int, **kw: Any) -> NotifierSettings:
    return replace(NotifierSettings(database_url="unused", poll=0.1, retry_base=0.05, retry_max=0.2,
                                    webhook_timeout=5, dashboard_url="https://plant.example", plant_tz="Europe/Paris",
                                    language="en",
                                    smtp=SmtpSettings(host="127.0.0.1", port=smtp_port, sender="plant@example.com",
                                                      timeout=5)), **kw)


def add_route(make: sessionmaker[Session], channel: str, target: str, *, min_severity: str = "warning",
              scope: str = "*", events: str = "raise,clear", escalate_after_min: int | None = None,
              at: datetime = T0 - timedelta(hours=1)) -> int:
    with make.begin() as s:
        row = orm.NotificationRoute(name=f"{channel} {scope}", channel=channel, target=target,
                                    min_severity=min_severity, scope=scope, events=events,
                                    escalate_after_min=escalate_after_min, enabled=True, updated_at=at,
                                    updated_by="test")
        s.add(row)
        s.flush()
        return row.id


def raise_alarm(make: sessionmaker[Session], at: datetime, *, unit: int = 3, automate: int = 7,
                severity: str = "critical", measure: str = "salmonella_ppm", value: float = 41.0) -> int:
    with make.begin() as s:
        row = orm.Alarm(source=f"units/{unit}/automates/{automate}", unit_id=unit, automate_no=automate,
                        measure=measure, bound="high", severity=severity, state="active", value=value,
                        limit_value=37.0, last_value=value, raised_at=at)
        s.add(row)
        s.flush()
        return row.id


def clear_alarm(make: sessionmaker[Session], alarm_id: int, at: datetime, value: float = 30.0) -> None:
    with make.begin() as s:
        row = s.get(orm.Alarm, alarm_id)
        assert row is not None
        row.state, row.cleared_at, row.last_value = "cleared", at, value


def outbox(make: sessionmaker[Session]) -> list[orm.Notification]:
    with make() as s:
        return list(s.scalars(select(orm.Notification).order_by(orm.Notification.id)))


def polls(notifier: Notifier, times: int = 3) -> None:
    for _ in range(times):
        notifier.poll_once()


# -- tests ---------------------------------------------------------------------------------------------

def test_raise_then_clear_one_mail_and_one_post_each(database_url: str, smtp: tuple[Mailbox, int],
                                                     receiver: Receiver) -> None:
    box, port = smtp
    make = sessions_for(database_url)
    add_route(make, "email", "quality@example.com,night@example.com", min_severity="critical")
    add_route(make, "webhook", receiver.url + "/hook", min_severity="critical")
    clock = Clock(T0)
    notifier = Notifier(settings(port), make, clock=clock)
    alarm_id = raise_alarm(make, T0 - timedelta(seconds=5))

    polls(notifier)
    assert len(box.received()) == 1 and len(receiver.received()) == 1
    rcpts, mail = box.received()[0]
    assert sorted(rcpts) == ["night@example.com", "quality@example.com"]
    subject = mail["Subject"]
    for part in ("[CRITICAL]", "raised", "unit 3 automate 7", "Salmonella", "41", "37", "active"):
        assert part in subject, (part, subject)
    body = mail.get_payload(decode=True).decode()
    assert "21 Nov 2026 09:59:55 CET" in body  # plant time (Europe/Paris), with the zone
    assert "https://plant.example/alarms" in body
    hook = receiver.received()[0]
    assert hook["event"] == "raise" and hook["alarm"]["id"] == alarm_id
    assert hook["alarm"]["severity"] == "critical" and hook["alarm"]["state"] == "active"
    assert hook["alarm"]["value"] == 41.0 and hook["alarm"]["limit"] == 37.0 and hook["sent_at"].endswith("Z")

    clock.now = T0 + timedelta(minutes=2)
    clear_alarm(make, alarm_id, T0 + timedelta(minutes=1))
    polls(notifier)
    assert len(box.received()) == 2 and len(receiver.received()) == 2
    assert "cleared" in box.received()[1][1]["Subject"]
    assert receiver.received()[1]["event"] == "clear" and receiver.received()[1]["alarm"]["state"] == "cleared"
    assert [(n.event, n.status, n.attempts) for n in outbox(make)] == [("raise", "sent", 1)] * 2 + \
        [("clear", "sent", 1)] * 2

    # A new notifier (a restart) on the same database finds nothing left to say.
    polls(Notifier(settings(port), make, clock=clock))
    assert len(box.received()) == 2 and len(receiver.received()) == 2


def test_escalation_goes_to_the_second_contact_only_while_unacknowledged(
        maria_url: str, smtp: tuple[Mailbox, int]) -> None:
    box, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "email", "boss@example.com", events="escalate", escalate_after_min=30)
    clock = Clock(T0)
    notifier = Notifier(settings(port), make, clock=clock)
    late = raise_alarm(make, T0)
    acked = raise_alarm(make, T0, unit=4)
    polls(notifier)
    assert box.received() == []  # raise and clear are not the escalation contact's business

    clock.now = T0 + timedelta(minutes=29, seconds=59)
    with make.begin() as s:
        row = s.get(orm.Alarm, acked)
        assert row is not None
        row.acknowledged_at, row.acknowledged_by = clock.now, "operator"
    polls(notifier)
    assert box.received() == []

    clock.now = T0 + timedelta(minutes=30)
    polls(notifier)
    [(rcpts, mail)] = box.received()
    assert rcpts == ["boss@example.com"] and "Unacknowledged for 30 min" in mail["Subject"]
    assert [(n.alarm_id, n.event) for n in outbox(make)] == [(late, "escalate")]


def test_escalate_unit_shortens_minutes_for_a_test_setup(maria_url: str, smtp: tuple[Mailbox, int]) -> None:
    """``NOTIFY_ESCALATE_UNIT_S``: the same route escalates after 2 x 0.5 s on the wall clock."""
    box, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "email", "boss@example.com", events="escalate", escalate_after_min=2,
              at=datetime.now(UTC) - timedelta(minutes=1))
    notifier = Notifier(settings(port, escalate_unit_s=0.5), make)
    raise_alarm(make, datetime.now(UTC))
    wait_for(lambda: (notifier.poll_once(), box.received())[1], 10, "the escalation mail")
    assert len(box.received()) == 1


def test_webhook_failing_twice_is_delivered_once_with_three_attempts(maria_url: str, smtp: tuple[Mailbox, int],
                                                                     receiver: Receiver) -> None:
    _, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "webhook", receiver.url + "/flaky")
    receiver.fail_next = 2
    notifier = Notifier(settings(port), make)  # the wall clock: back-off 0.05 s, then 0.1 s
    raise_alarm(make, datetime.now(UTC))

    def sent() -> bool:
        notifier.poll_once()
        return [n.status for n in outbox(make)] == ["sent"]

    wait_for(sent, 15, "the webhook delivered")
    assert receiver.requests == 3 and len(receiver.received()) == 1
    [row] = outbox(make)
    assert row.attempts == 3 and row.last_error is None and row.sent_at is not None
    with make() as s:
        tries = list(s.scalars(select(orm.NotificationAttempt).where(orm.NotificationAttempt.notification_id == row.id)
                               .order_by(orm.NotificationAttempt.id)))
    assert [t.ok for t in tries] == [False, False, True]
    assert "HTTP 500" in (tries[0].error or "")


def test_gives_up_after_max_attempts(maria_url: str, smtp: tuple[Mailbox, int], receiver: Receiver) -> None:
    _, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "webhook", receiver.url + "/down")
    receiver.fail_next = 100
    notifier = Notifier(settings(port, max_attempts=3), make)
    raise_alarm(make, datetime.now(UTC))
    wait_for(lambda: (notifier.poll_once(), [n.status for n in outbox(make)] == ["failed"])[1], 15, "failed")
    assert outbox(make)[0].attempts == 3 and receiver.requests == 3
    polls(notifier)
    assert receiver.requests == 3  # failed is final


def attempts_of(make: sessionmaker[Session], nid: int) -> list[orm.NotificationAttempt]:
    with make() as s:
        return list(s.scalars(select(orm.NotificationAttempt).where(orm.NotificationAttempt.notification_id == nid)
                              .order_by(orm.NotificationAttempt.id)))


def test_a_webhook_answering_garbage_is_a_failed_attempt_and_mail_still_goes(
        database_url: str, smtp: tuple[Mailbox, int], not_http: NotHttp) -> None:
    """One bad webhook must not stop the notifier: its row is a failed attempt (stored, retried with
    back-off) and the other routes are told; the loop, and a restarted notifier, go on."""
    box, port = smtp
    make = sessions_for(database_url)
    hook_route = add_route(make, "webhook", not_http.url, at=datetime.now(UTC) - timedelta(minutes=1))  # 1st
    add_route(make, "email", "ops@example.com", at=datetime.now(UTC) - timedelta(minutes=1))
    raise_alarm(make, datetime.now(UTC))
    running = Running(Notifier(settings(port), make))
    try:
        wait_for(lambda: running.alive() and box.received(), 10, "the mail of the other route")
        hook = next(n for n in outbox(make) if n.route_id == hook_route)
        wait_for(lambda: running.alive() and len(attempts_of(make, hook.id)) >= 2, 10, "the webhook retried")
        tries = attempts_of(make, hook.id)
        assert not any(t.ok for t in tries) and "BadStatusLine" in (tries[0].error or ""), tries[0].error
        hook = next(n for n in outbox(make) if n.route_id == hook_route)
        assert hook.status == "pending" and hook.attempts >= 2 and "BadStatusLine" in (hook.last_error or "")
        assert not_http.connections >= 2
    finally:
        running.close()
    # A restart does not crash-loop on that row either.
    Notifier(settings(port), make).poll_once()
    assert len(box.received()) == 1


def test_an_smtp_password_smtplib_cannot_send_is_a_failed_attempt(maria_url: str) -> None:
    """smtplib encodes the log-in as ASCII: a password with an accent raises ``UnicodeEncodeError``.
    That is one failed attempt with its reason, not the end of the notifier."""
    port = free_port()

    def accept(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        return AuthResult(success=True)

    controller = Controller(Mailbox(), hostname="127.0.0.1", port=port, authenticator=accept,
                            auth_require_tls=False)
    controller.start()
    try:
        make = sessions_for(maria_url)
        add_route(make, "email", "ops@example.com")
        raise_alarm(make, T0)
        s = settings(port)
        notifier = Notifier(replace(s, smtp=replace(s.smtp, user="plant", password="crème-brûlée")), make,
                            clock=Clock(T0))
        notifier.poll_once()
    finally:
        controller.stop()
    [row] = outbox(make)
    assert row.status == "pending" and row.attempts == 1 and "UnicodeEncodeError" in (row.last_error or "")
    [attempt] = attempts_of(make, row.id)
    assert not attempt.ok and attempt.error == row.last_error
    assert not any(c in (row.last_error or "") for c in ("crème", "è", "\\xe8"))  # not even one character of it
    assert "ASCII" in (row.last_error or "")


def test_any_exception_building_or_sending_one_notification_is_a_failed_attempt(
        tmp_path: Path, smtp: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the errors the senders translate: whatever one row raises (a bug in the message, an
    exception nobody foresaw) fails that row's attempt; the others go. A webhook URL in the reason is masked."""
    box, port = smtp
    make = sessions_for(f"sqlite:///{tmp_path / 'plant.db'}")
    secret = "https://hooks.example/services/XXXXsecretXXXX"
    hook = add_route(make, "webhook", secret)
    mail = add_route(make, "email", "ops@example.com")
    broken = add_route(make, "email", "broken@example.com")
    broken_name = f"email * {broken}"
    with make.begin() as s:
        row = s.get(orm.NotificationRoute, broken)
        assert row is not None
        row.name = broken_name
    build = messages.build

    def build_with_a_bug(*args: Any, route_name: str, **kw: Any) -> messages.Content:
        if route_name == broken_name:
            raise KeyError("a bug in the message")
        return build(*args, route_name=route_name, **kw)

    def post_raising(url: str, *_: Any) -> None:
        raise RuntimeError(f"unforeseen trouble with {url}")

    monkeypatch.setattr(messages, "build", build_with_a_bug)
    monkeypatch.setattr(messages, "post_webhook", post_raising)
    notifier = Notifier(settings(port), make, clock=Clock(T0))
    raise_alarm(make, T0)
    notifier.poll_once()
    rows = {n.route_id: n for n in outbox(make)}
    assert rows[mail].status == "sent" and [r for r, _ in box.received()] == [["ops@example.com"]]
    assert rows[broken].status == "pending" and rows[broken].attempts == 1
    assert "KeyError" in (rows[broken].last_error or "")
    assert rows[hook].status == "pending" and rows[hook].attempts == 1
    error = rows[hook].last_error or ""
    assert "RuntimeError" in error and masked_url(secret) in error and "XXXXsecretXXXX" not in error
    assert notifier.stats.retried == 2 and notifier.stats.errors == 0


def test_a_bug_in_the_loop_is_logged_with_its_traceback_and_the_loop_goes_on(
        tmp_path: Path, smtp: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture) -> None:
    box, port = smtp
    make = sessions_for(f"sqlite:///{tmp_path / 'plant.db'}")
    add_route(make, "email", "ops@example.com", at=datetime.now(UTC) - timedelta(minutes=1))
    raise_alarm(make, datetime.now(UTC))
    notifier = Notifier(settings(port), make)
    scan, calls = notifier.scan, []

    def buggy_scan() -> int:
        calls.append(1)
        if len(calls) <= 2:
            raise KeyError("a bug")
        return scan()

    notifier.scan = buggy_scan  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, logger="notifier")
    running = Running(notifier)
    try:
        wait_for(lambda: running.alive() and box.received(), 15, "the mail after the bug")
    finally:
        running.close()
    bugs = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert len(bugs) == 2 and "KeyError" in caplog.text and "a bug" in caplog.text


def test_an_escalation_acknowledged_before_it_could_be_sent_is_skipped(maria_url: str,
                                                                       smtp: tuple[Mailbox, int]) -> None:
    """The SMTP server is down when the escalation is due; by the time it is back the alarm has been
    acknowledged: the second-level contact is not woken (``skipped``, with the reason). A raise whose
    alarm has cleared meanwhile is still told: it happened."""
    box, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "email", "boss@example.com", events="escalate", escalate_after_min=30)
    add_route(make, "email", "ops@example.com", events="raise")
    clock = Clock(T0)
    notifier = Notifier(settings(free_port()), make, clock=clock)  # nothing listens there: SMTP down
    alarm_id = raise_alarm(make, T0)
    polls(notifier, 1)
    clock.now = T0 + timedelta(minutes=30)
    polls(notifier, 1)
    assert {n.event: (n.status, n.attempts) for n in outbox(make)} == {"raise": ("pending", 2),
                                                                       "escalate": ("pending", 1)}
    clock.now = T0 + timedelta(minutes=40)
    with make.begin() as s:
        row = s.get(orm.Alarm, alarm_id)
        assert row is not None
        row.acknowledged_at, row.acknowledged_by = T0 + timedelta(minutes=35), "operator"
        row.state, row.cleared_at = "cleared", T0 + timedelta(minutes=36)
    notifier.settings = settings(port)  # the SMTP server is back
    polls(notifier)
    assert [rcpts for rcpts, _ in box.received()] == [["ops@example.com"]]
    assert "Alarm raised" in box.received()[0][1]["Subject"]
    rows = {n.event: n for n in outbox(make)}
    assert rows["raise"].status == "sent"
    esc = rows["escalate"]
    assert esc.status == "skipped" and esc.next_attempt_at is None and esc.sent_at is None
    assert "acknowledged" in (esc.last_error or "") and "operator" in (esc.last_error or "")
    tries = attempts_of(make, esc.id)
    assert [t.ok for t in tries] == [False, False] and tries[-1].error == esc.last_error
    polls(notifier)
    assert len(box.received()) == 1 and {n.event: n.status for n in outbox(make)} == {"raise": "sent",
                                                                                   "escalate": "skipped"}


def test_routing_by_severity_and_scope(maria_url: str, smtp: tuple[Mailbox, int], receiver: Receiver) -> None:
    _, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "webhook", receiver.url + "/critical", min_severity="critical")
    add_route(make, "webhook", receiver.url + "/unit2", min_severity="info", scope="units/2")
    add_route(make, "webhook", receiver.url + "/a37", min_severity="info", scope="units/3/automates/7")
    notifier = Notifier(settings(port), make, clock=Clock(T0))
    warning_u3 = raise_alarm(make, T0, severity="warning")
    critical_u2 = raise_alarm(make, T0, unit=2, automate=1)
    raise_alarm(make, T0, unit=12, automate=7, severity="warning")  # units/12 is not units/2... nor 3/7
    polls(notifier)
    assert [b["alarm"]["id"] for b in receiver.received("/critical")] == [critical_u2]
    assert [b["alarm"]["id"] for b in receiver.received("/unit2")] == [critical_u2]
    assert [b["alarm"]["id"] for b in receiver.received("/a37")] == [warning_u3]


def test_history_is_not_notified(maria_url: str, smtp: tuple[Mailbox, int], receiver: Receiver) -> None:
    """Alarms raised before the route was saved, or before the horizon, are not told; their clear,
    when it comes after, is."""
    _, port = smtp
    make = sessions_for(maria_url)
    add_route(make, "webhook", receiver.url + "/h", at=T0)
    before_route = raise_alarm(make, T0 - timedelta(minutes=5))
    clock = Clock(T0 + timedelta(minutes=10))
    notifier = Notifier(settings(port), make, clock=clock)
    polls(notifier)
    assert receiver.received() == []  # raised before the route was saved
    clock.now = T0 + timedelta(hours=3)  # the notifier was away; meanwhile one more was raised
    old = raise_alarm(make, T0 + timedelta(minutes=20))  # after the route, but 2 h 40 ago: past the horizon
    polls(notifier)
    assert receiver.received() == []
    clear_alarm(make, before_route, clock.now - timedelta(seconds=1))
    polls(notifier)
    assert [(b["event"], b["alarm"]["id"]) for b in receiver.received()] == [("clear", before_route)]
    assert old != before_route


def test_first_routes_from_the_environment(tmp_path: Path, smtp: tuple[Mailbox, int], receiver: Receiver,
                                          caplog: pytest.LogCaptureFixture) -> None:
    _, port = smtp
    make = sessions_for(f"sqlite:///{tmp_path / 'plant.db'}")
    caplog.set_level(logging.INFO, logger="notifier")
    secret_url = receiver.url.replace("//", "//bot:pa55word@") + "/services/T0001/XXXXsecretXXXX"
    first = FirstRoutes(email_to="a@example.com", webhook_url=secret_url,
                        escalate_email_to="boss@example.com", escalate_after_min=15, min_severity="critical")
    notifier = Notifier(settings(port, first_routes=first), make)
    assert notifier.ensure_first_routes() == 3
    assert notifier.ensure_first_routes() == 0  # not an empty table any more: the admins' now
    with make() as s:
        rows = {r.name: r for r in s.scalars(select(orm.NotificationRoute))}
    assert {r.updated_by for r in rows.values()} == {"env"}
    assert rows["escalation (env)"].escalate_after_min == 15 and rows["escalation (env)"].events == "escalate"
    assert rows["webhook (env)"].min_severity == "critical" and rows["webhook (env)"].target == secret_url
    # The log says which route was made, never the webhook's secret (path, log-in).
    assert masked_url(secret_url) in caplog.text and "a@example.com" in caplog.text
    for leak in ("XXXXsecretXXXX", "services/T0001", "pa55word"):
        assert leak not in caplog.text


def test_two_notifier_processes_and_a_restart_never_duplicate(
        maria_url: str, smtp: tuple[Mailbox, int], receiver: Receiver,
        spawn: Callable[[str, list[str], dict[str, str]], Service]) -> None:
    box, port = smtp
    make = sessions_for(maria_url)
    now = datetime.now(UTC)
    add_route(make, "webhook", receiver.url + "/p", at=now - timedelta(minutes=1))
    add_route(make, "email", "ops@example.com", at=now - timedelta(minutes=1))
    env = {"DATABASE_URL": maria_url, "NOTIFY_POLL_S": "0.1", "NOTIFY_SMTP_HOST": "127.0.0.1",
           "NOTIFY_SMTP_PORT": str(port), "NOTIFY_SMTP_FROM": "plant@example.com", "PLANT_TZ": "Europe/Paris"}
    first = [spawn(f"notifier-{i}", ["notifier"], env) for i in (1, 2)]
    ids = [raise_alarm(make, now, unit=u) for u in (1, 2, 3, 4, 5)]
    wait_for(lambda: len(receiver.received()) >= 5 and len(box.received()) >= 5, 20, "5 posts and 5 mails",
             services=first)
    for service in first:
        assert service.stop() == 0
    again = spawn("notifier-3", ["notifier"], env)
    ids.append(raise_alarm(make, datetime.now(UTC), unit=6))  # proves the restarted one has scanned
    wait_for(lambda: len(receiver.received()) >= 6 and len(box.received()) >= 6, 20, "the 6th alarm told",
             services=[again])
    assert sorted(b["alarm"]["id"] for b in receiver.received()) == ids
    assert len(box.received()) == 6
    with make() as s:
        assert s.scalar(select(func.count()).select_from(orm.Notification)) == 12
        assert s.scalar(select(func.count()).select_from(orm.NotificationAttempt)) == 12
    assert again.stop() == 0
