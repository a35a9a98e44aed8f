"""The live push coalescer, its routing and the view registry, with a fake emit."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from webui.push import Coalescer, Views, rooms_for

Sent = tuple[str, dict[str, Any], str]


class Recorder:
    def __init__(self, fail_room: str | None = None) -> None:
        self.sent: list[Sent] = []
        self.fail_room = fail_room
        self.event = threading.Event()

    def __call__(self, event: str, data: dict[str, Any], room: str) -> None:
        if room == self.fail_room:
            raise RuntimeError("client gone")
        self.sent.append((event, data, room))
        self.event.set()

    def by_room(self) -> dict[str, dict[str, Any]]:
        assert all(event == "update" for event, _, _ in self.sent)
        rooms = {room: data for _, data, room in self.sent}
        assert len(rooms) == len(self.sent), "more than one update for a room"
        return rooms


def reading(automate: int, seq: int) -> dict[str, Any]:
    return {"unit": 3, "automate": automate, "seq": seq}


def no_watchers() -> list[str]:
    raise AssertionError("only a unit's status needs the watched rooms")


@pytest.mark.parametrize(("source", "rooms"), [
    ("units/3/automates/2", ["plant", "units/3", "units/3/automates/2"]),
    ("meters/shellypro1pm-a1", ["plant", "meters/shellypro1pm-a1"]),
])
def test_rooms_of_a_reading_or_a_meter(source: str, rooms: list[str]) -> None:
    assert rooms_for(source, no_watchers) == rooms


def test_unit_status_goes_to_that_units_watched_automate_rooms_only() -> None:
    watched = ["plant", "units/3", "units/3/automates/7", "units/3/automates/2", "units/31/automates/2",
               "units/4/automates/2", "meters/units", "units/3/automates/2"]
    assert rooms_for("units/3", lambda: watched) == [
        "plant", "units/3", "units/3/automates/2", "units/3/automates/7"]


def test_fifty_readings_of_one_automate_give_one_update_with_the_latest() -> None:
    rec = Recorder()
    push = Coalescer(rec, 0.5)
    rooms = rooms_for("units/3/automates/2", no_watchers)
    for seq in range(1, 51):
        push.add(rooms, "readings", "units/3/automates/2", reading(2, seq))
    assert rec.sent == []
    assert push.pending() == 3  # one item per (room, kind, source), not 150
    assert push.flush() == 3
    assert rec.by_room() == {room: {"readings": [reading(2, 50)]} for room in rooms}
    assert push.flush() == 0 and len(rec.sent) == 3  # nothing left over


def test_one_update_per_room_carries_every_source_and_kind() -> None:
    rec = Recorder()
    push = Coalescer(rec, 0.5)
    status = {"device": "units/3", "state": "online", "ts": "2026-11-21T10:15:00.000Z"}
    push.add(["plant", "units/3"], "status", "units/3", status)
    push.add(["plant", "units/3"], "readings", "units/3/automates/2", reading(2, 1))
    push.add(["plant", "units/3"], "readings", "units/3/automates/4", reading(4, 1))
    push.add(["plant", "units/3"], "readings", "units/3/automates/2", reading(2, 2))
    push.add(["plant", "meters/m1"], "power", "meters/m1", {"meter": "m1", "apower": 1.0})
    push.flush()
    rooms = rec.by_room()
    assert rooms["units/3"] == {"readings": [reading(2, 2), reading(4, 1)], "status": [status]}
    assert list(rooms["plant"]) == ["readings", "power", "status"]  # fixed key order
    assert rooms["meters/m1"] == {"power": [{"meter": "m1", "apower": 1.0}]}  # empty keys omitted


def test_zero_interval_sends_each_item_at_once() -> None:
    rec = Recorder()
    push = Coalescer(rec, 0)
    push.add(["plant", "units/3"], "readings", "units/3/automates/2", reading(2, 1))
    push.add(["plant", "units/3"], "readings", "units/3/automates/2", reading(2, 2))
    assert [(room, data) for _, data, room in rec.sent] == [
        ("plant", {"readings": [reading(2, 1)]}), ("units/3", {"readings": [reading(2, 1)]}),
        ("plant", {"readings": [reading(2, 2)]}), ("units/3", {"readings": [reading(2, 2)]})]
    assert push.pending() == 0


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown update kind"):
        Coalescer(Recorder(), 0.5).add(["plant"], "reading", "units/3/automates/2", {})


def test_a_failing_room_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder(fail_room="units/3")
    push = Coalescer(rec, 0.5)
    push.add(["plant", "units/3", "units/3/automates/2"], "readings", "units/3/automates/2", reading(2, 1))
    with caplog.at_level(logging.ERROR, logger="webui.push"):
        assert push.flush() == 3
    assert set(rec.by_room()) == {"plant", "units/3/automates/2"}
    assert any("units/3" in r.getMessage() for r in caplog.records)


def test_background_thread_flushes_and_stop_sends_what_is_left() -> None:
    rec = Recorder()
    push = Coalescer(rec, 0.01)
    push.start()
    try:
        assert push.running
        push.add(["plant"], "readings", "units/3/automates/2", reading(2, 1))
        assert rec.event.wait(10), "the flush thread sent nothing"
    finally:
        push.stop()
    assert not push.running
    assert rec.sent[0] == ("update", {"readings": [reading(2, 1)]}, "plant")

    push.interval = 3600  # the thread would not come round again: stop() itself must flush
    push.start()
    push.add(["plant"], "readings", "units/3/automates/2", reading(2, 2))
    push.stop()
    assert rec.sent[-1] == ("update", {"readings": [reading(2, 2)]}, "plant")


def test_zero_interval_needs_no_thread() -> None:
    push = Coalescer(Recorder(), 0)
    push.start()
    assert not push.running


def test_views_remember_one_room_per_client() -> None:
    views = Views()
    views.set("a", "units/1")
    views.set("b", "units/1")
    views.set("c", "plant")
    views.set("a", "units/2/automates/3")  # a new view replaces the old one
    assert views.get("a") == "units/2/automates/3"
    assert views.rooms() == {"units/1", "plant", "units/2/automates/3"}
    views.set("c", None)  # view "none"
    assert views.pop("b") == "units/1"
    assert views.pop("b") is None
    assert views.rooms() == {"units/2/automates/3"} and len(views) == 1
