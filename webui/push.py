"""Coalesced live pushes: per Socket.IO room, the latest item per source, sent at most once per interval.

A browser watching one unit must not get 50 events a second when the plant is busy, nor data of
other units. :class:`Coalescer` keeps, per room, only the newest item of each (kind, source) until
the next :meth:`Coalescer.flush`, which sends one ``update`` event per room::

    {"readings": [Reading dicts], "power": [PowerSample dicts], "status": [{"device", "state", "ts"}]}

(empty keys omitted). Memory is bounded by one pending item per (room, kind, source), whatever the
message rate. The pure part is driven by hand in tests (fake ``emit``, manual ``flush``); ``start``
runs the flush loop in a daemon thread.

:func:`rooms_for` routes a source to its rooms and :class:`Views` remembers which view room each
Socket.IO client watches.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

PLANT_ROOM = "plant"
ALARMS_ROOM = "alarms"
UPDATE_EVENT = "update"
# The update's keys, in the order they appear in the event.
KINDS = ("readings", "power", "status")

Emit = Callable[[str, dict[str, Any], str], None]  # (event, data, room)


def rooms_for(source: str, watched: Callable[[], Iterable[str]]) -> list[str]:
    """The rooms an item of ``source`` goes to.

    ``units/3/automates/2`` -> plant, units/3, units/3/automates/2; ``units/3`` (the unit's status)
    -> plant, units/3 and every *watched* ``units/3/automates/N`` room (``watched`` is only called
    for unit statuses); ``meters/<id>`` -> plant, meters/<id>.
    """
    parts = source.split("/")
    if len(parts) == 4 and parts[0] == "units":
        return [PLANT_ROOM, f"units/{parts[1]}", source]
    if len(parts) == 2 and parts[0] == "units":
        prefix = f"{source}/automates/"
        return [PLANT_ROOM, source, *sorted(r for r in set(watched()) if r.startswith(prefix))]
    return [PLANT_ROOM, source]


class Coalescer:
    """Pending updates per room; ``interval <= 0`` sends each item at once (no coalescing)."""

    def __init__(self, emit: Emit, interval: float) -> None:
        self._emit = emit
        self.interval = interval
        self._lock = threading.Lock()
        # room -> kind -> source -> item; a newer item of a source replaces the pending one.
        self._pending: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, rooms: Iterable[str], kind: str, source: str, item: dict[str, Any]) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown update kind {kind!r}")
        if self.interval <= 0:
            for room in rooms:
                self._send(room, {kind: [item]})
            return
        with self._lock:
            for room in rooms:
                self._pending.setdefault(room, {}).setdefault(kind, {})[source] = item

    def pending(self) -> int:
        """How many items wait for the next flush."""
        with self._lock:
            return sum(len(items) for kinds in self._pending.values() for items in kinds.values())

    def flush(self) -> int:
        """Send one ``update`` per room with pending items; returns the number of events sent."""
        with self._lock:
            pending, self._pending = self._pending, {}
        # Emit outside the lock: a slow client must not hold up paho's thread adding items.
        for room, kinds in pending.items():
            self._send(room, {k: list(kinds[k].values()) for k in KINDS if k in kinds})
        return len(pending)

    def _send(self, room: str, data: dict[str, Any]) -> None:
        try:
            self._emit(UPDATE_EVENT, data, room)
        except Exception:  # one failed room must not stop the others (nor the flush thread)
            log.exception("could not push the update to room %r", room)

    # -- background flushing ------------------------------------------------------------------------

    def start(self) -> None:
        """Flush every ``interval`` seconds in a daemon thread (nothing to do when interval is 0)."""
        if self.interval <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="webui-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.flush()  # what was pending still goes out

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()


class Views:
    """Which view room each Socket.IO client (sid) watches. Thread-safe: the Socket.IO handlers
    write it, paho's thread reads it to route unit statuses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_sid: dict[str, str] = {}

    def get(self, sid: str) -> str | None:
        with self._lock:
            return self._by_sid.get(sid)

    def set(self, sid: str, room: str | None) -> None:
        with self._lock:
            if room is None:
                self._by_sid.pop(sid, None)
            else:
                self._by_sid[sid] = room

    def pop(self, sid: str) -> str | None:
        with self._lock:
            return self._by_sid.pop(sid, None)

    def rooms(self) -> set[str]:
        with self._lock:
            return set(self._by_sid.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_sid)
