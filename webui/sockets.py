"""Socket.IO handlers: who may connect, and which view (room) a browser follows.

Protocol (namespace ``/``):

- ``connect``: refused unless :func:`webui.auth.socket_user` finds a user (session cookie or
  ``auth={"token": ...}``). The client joins room ``alarms`` and gets ``hello`` {"user": {username,
  role}, "alarms": [open alarms, ``queries.alarm_dict``], "periods": {"automate", "meter"},
  "stale_after": 3, "summary": :func:`webui.snapshot.alarm_summary` of those alarms, "health": the
  web UI's own links (:meth:`webui.live.Health.to_dict`)}, then ``health`` (the same dict).
- ``watch`` {"view": "plant" | "unit" | "automate" | "meter" | "none", "unit"?, "automate"?,
  "meter"?}: the client leaves its previous view room, joins the new one and the ack is {"room",
  "snapshot"}; a bad or unknown view gives {"error": "..."} and leaves the current view as it was.
- Server -> client: ``update`` per view room (see :mod:`webui.push`), ``alarm`` to room ``alarms``,
  ``health`` to room ``alarms`` whenever the web UI's MQTT connection or database changes state,
  or the bridges' (``bridge``: their retained status; ``storing``: stored readings keep up with
  live ones; see :class:`webui.live.BridgeWatch`).

Updates to the new room can arrive before the ``watch`` ack (the room is joined before the
snapshot is read, so nothing falls in between): a client applies the snapshot, then keeps the
newer of the two per source (by ``ts``). A client waits for one ``watch``'s ack before sending the
next: Socket.IO handles each event in its own thread, so two in flight may be served in any order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import request
from flask_babel import force_locale, gettext
from flask_socketio import ConnectionRefusedError, SocketIO, emit, join_room, leave_room
from sqlalchemy.exc import SQLAlchemyError

from plantmodel.errors import ValidationError
from plantmodel.i18n import N_
from plantmodel.readings import MAX_UNIT
from plantmodel.sources import AutomateSource, MeterSource, check_meter_id, unit_key
from store import queries
from webui.auth import AuthUser, socket_user, still_valid
from webui.i18n import language_for
from webui.live import HEALTH_EVENT
from webui.push import ALARMS_ROOM, PLANT_ROOM
from webui.snapshot import alarm_summary, load_snapshot, meter_snapshot, unit_snapshot
from webui.state import WebState

log = logging.getLogger(__name__)

# A source silent for this many report periods shows as stale.
STALE_AFTER = 3
VIEWS = ("plant", "unit", "automate", "meter", "none")
# The keys each view takes besides "view".
_VIEW_KEYS: dict[str, tuple[str, ...]] = {
    "plant": (), "unit": ("unit",), "automate": ("unit", "automate"), "meter": ("meter",), "none": (),
}


@dataclass(frozen=True, slots=True)
class View:
    """A parsed ``watch`` request; ``room`` is None for view "none"."""

    name: str
    room: str | None
    unit: int | None = None
    automate: int | None = None
    meter: str | None = None


def parse_view(data: Any) -> View:
    """Validate a ``watch`` payload (unknown keys are refused, not ignored)."""
    if not isinstance(data, dict):
        raise ValidationError(N_('watch needs an object like {"view": "plant"}'))
    name = data.get("view")
    if name not in VIEWS:
        raise ValidationError(N_("unknown view %(view)s; known: %(known)s"), view=repr(name), known=", ".join(VIEWS))
    keys = _VIEW_KEYS[name]
    extra = sorted(set(data) - {"view", *keys})
    if extra:
        raise ValidationError(N_("view %(view)s takes no %(keys)s"), view=repr(name), keys=", ".join(map(repr, extra)))
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValidationError(N_("view %(view)s needs %(keys)s"), view=repr(name), keys=", ".join(map(repr, missing)))
    match name:
        case "plant":
            return View(name, PLANT_ROOM)
        case "unit":
            unit = _number(data, "unit")
            if not 1 <= unit <= MAX_UNIT:
                raise ValidationError(N_("unit %(unit)s is out of range 1..%(max)s"), unit=unit, max=MAX_UNIT)
            return View(name, unit_key(unit), unit=unit)
        case "automate":
            source = AutomateSource(_number(data, "unit"), _number(data, "automate"))
            return View(name, source.key, unit=source.unit, automate=source.automate)
        case "meter":
            meter = check_meter_id(data["meter"])
            return View(name, MeterSource(meter).key, meter=meter)
    return View(name, None)


def _number(data: dict[str, Any], key: str) -> int:
    value = data[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(N_("%(key)s must be an integer, got %(value)s"), key=repr(key), value=repr(value))
    return value


@dataclass(slots=True)
class _Client:
    user: AuthUser
    # Socket.IO runs each event in its own thread: the lock keeps one client's watches (and its
    # disconnect) from interleaving, so it is never left in two view rooms.
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False


SESSION_CHECK_S = 2.0  # how soon a logged-out, re-passworded, re-roled or deleted user's sockets close


class LiveSockets:
    """The handlers of one app; the current view per client lives in ``state.feed.views``."""

    def __init__(self, state: WebState, socketio: SocketIO | None = None) -> None:
        self.state = state
        self.socketio = socketio
        self._clients: dict[str, _Client] = {}  # sid -> client (single dict operations: GIL-atomic)
        self._checker_lock = threading.Lock()
        self._checking = False  # a checker thread runs (only while clients are connected)

    def on_connect(self, auth: Any = None) -> None:
        make_session = self.state.make_session
        try:
            user = socket_user(make_session, auth)
            if user is None:
                self.state.metrics.socket_refused()
                raise ConnectionRefusedError(self._say(None, N_("unauthorized")))
            with make_session() as session:
                alarms = [queries.alarm_dict(row) for row in queries.open_alarms(session)]
        except SQLAlchemyError as exc:
            self.state.metrics.socket_refused()
            log.warning("Socket.IO connection refused, database unavailable: %s", exc)
            raise ConnectionRefusedError(self._say(None, N_("database unavailable"))) from exc
        self._clients[_sid()] = _Client(user)
        self._ensure_checker()
        # Counted with the entry in _clients: on_disconnect takes one off only when it removes one.
        self.state.metrics.socket_connected()
        join_room(ALARMS_ROOM)
        settings = self.state.settings
        health = self.state.feed.health.to_dict()
        emit("hello", {
            "user": user.to_dict(),
            "alarms": alarms,
            "periods": {"automate": settings.report_period, "meter": settings.meter_period},
            "stale_after": STALE_AFTER,
            "summary": alarm_summary(alarms),
            "health": health,
        })
        self.state.metrics.pushed("hello")
        # Also as its own event: a page handles "health" in one place, at connect and on change.
        emit(HEALTH_EVENT, health)
        self.state.metrics.pushed(HEALTH_EVENT)

    def on_disconnect(self, _reason: Any = None) -> None:
        sid = _sid()
        client = self._clients.pop(sid, None)
        if client is not None:
            self.state.metrics.socket_disconnected()
            with client.lock:  # a watch in progress finishes first; none starts after
                client.closed = True
        self.state.feed.views.pop(sid)

    # -- sessions that end while connected -------------------------------------------------------
    def _ensure_checker(self) -> None:
        if self.socketio is None:
            return
        with self._checker_lock:
            if self._checking:
                return
            self._checking = True
        self.socketio.start_background_task(self._check_sessions)

    def _check_sessions(self) -> None:
        """Every :data:`SESSION_CHECK_S`, close the connections whose user logged out, changed
        password or role, lost the API token or was deleted. Exits when nobody is connected."""
        while True:
            time.sleep(SESSION_CHECK_S)
            with self._checker_lock:
                clients = list(self._clients.items())
                if not clients:
                    self._checking = False
                    return
            try:
                valid = still_valid(self.state.make_session, [c.user for _, c in clients])
            except SQLAlchemyError as exc:
                log.warning("cannot check the connected users' sessions: %s", exc)
                continue
            for (sid, client), ok in zip(clients, valid, strict=True):
                if not ok:
                    log.info("closing %s's Socket.IO connection: the session ended", client.user.username)
                    assert self.socketio is not None
                    self.socketio.server.disconnect(sid, namespace="/")

    def on_watch(self, data: Any = None) -> dict[str, Any]:
        client = self._clients.get(_sid())
        if client is None:
            return {"error": self._say(None, N_("not connected"))}
        with client.lock:
            if client.closed:
                return {"error": self._say(client, N_("not connected"))}
            try:
                return self._watch(client, data)
            except ValidationError as exc:
                with force_locale(self._language(client)):
                    return {"error": exc.translated(gettext)}
            except SQLAlchemyError as exc:
                log.warning("watch %r: database unavailable: %s", data, exc)
                return {"error": self._say(client, N_("database unavailable"))}
            except Exception:  # a bug must cost this answer only, not the connection
                log.exception("watch %r failed", data)
                return {"error": self._say(client, N_("internal error"))}

    def _language(self, client: _Client | None) -> str:
        """The language a connection's answers are in: its user's choice (read when it connected),
        else the browser's, else the plant's. Never the database's: an answer may say it is down."""
        return language_for(client.user if client is not None else None)

    def _say(self, client: _Client | None, message: str, **params: object) -> str:
        with force_locale(self._language(client)):
            return gettext(message, **params)

    def _watch(self, client: _Client, data: Any) -> dict[str, Any]:
        view = parse_view(data)
        sid = _sid()
        views = self.state.feed.views
        old = views.get(sid)
        if view.room is None:
            if old is not None:
                leave_room(old)
            views.set(sid, None)
            return {"room": None, "snapshot": None}
        # Join before reading: an update flushed meanwhile reaches the client instead of falling
        # between the snapshot and the join.
        join_room(view.room)
        snapshot, unknown = None, None
        try:
            snapshot, unknown = self._snapshot(view)
        finally:
            if snapshot is None and view.room != old:
                leave_room(view.room)  # failed: the client stays on its current view
        if snapshot is None:
            template, params = unknown or ("", {})
            return {"error": self._say(client, template, **params) if template else ""}
        if old is not None and old != view.room:
            leave_room(old)
        views.set(sid, view.room)
        return {"room": view.room, "snapshot": snapshot}

    def _snapshot(self, view: View) -> tuple[dict[str, Any] | None, tuple[str, dict[str, object]] | None]:
        """The view's snapshot, or None and why (a marked message and its params)."""
        make_session = self.state.make_session
        match view:
            case View(name="unit", unit=int(unit)):
                return unit_snapshot(make_session, unit), (N_("unit %(unit)s is unknown"), {"unit": unit})
            case View(name="automate", unit=int(unit), automate=int(automate)):
                return (unit_snapshot(make_session, unit, automate),
                        (N_("unit %(unit)s has no automate %(automate)s"), {"unit": unit, "automate": automate}))
            case View(name="meter", meter=str(meter)):
                return meter_snapshot(make_session, meter), (N_("meter %(meter)s is unknown"), {"meter": meter})
        return load_snapshot(make_session), None


def _sid() -> str:
    return request.sid  # type: ignore[attr-defined,no-any-return]


def register(socketio: SocketIO, state: WebState) -> LiveSockets:
    """Install the handlers on ``socketio`` (one app's server)."""
    sockets = LiveSockets(state, socketio)
    handlers: dict[str, Callable[..., Any]] = {
        "connect": sockets.on_connect, "disconnect": sockets.on_disconnect, "watch": sockets.on_watch,
    }
    for event, handler in handlers.items():
        socketio.on_event(event, handler)
    return sockets
